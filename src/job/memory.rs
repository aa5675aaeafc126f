//! A job's memory bound, summed from its real parts, and the budget it must fit.
//!
//! The bound is computed once the input's header is read and the chain is prepared (stage state
//! depends on the stream's rate and channels) and before any audio is decoded; a job over its
//! budget is refused naming its largest part. Large buffers are zero-allocated (`vec![0.0; n]`),
//! which the allocator serves with untouched pages, so a refused job never became resident.
//!
//! Parts: the two block pools between the threads, the chain's per-stage blocks, each stage's
//! state ([`Stage::state_bytes`](crate::dsp::Stage::state_bytes)), the S3 transfer buffers in
//! use, and a fixed allowance for codec state (symphonia's packet and sample buffers, LAME's or
//! flacenc's frame state), doubled while an analysis pass keeps a second decoder open.

use crate::io::S3Settings;
use serde::Serialize;

const MIB: u64 = 1024 * 1024;

/// Memory of the process that is not any job's: the binary, the runtimes (tokio),
/// metrics, allocator slack. The worker's exported budget is this plus one job budget per slot.
pub const PROCESS_BASE_BYTES: u64 = 48 * MIB;

/// Codec state of one decoder plus one encoder, whatever the format (measured well below:
/// symphonia's largest packet buffers and flacenc's frame state are under 2 MiB at 8 channels).
pub const CODEC_BYTES: u64 = 8 * MIB;

/// Stage state a job may hold within the default budget, on top of its blocks and transfer
/// buffers: every preset at 48 kHz stereo needs under 2 MiB; a silence split with a
/// ten-minute `min_piece_ms` at 96 kHz stereo needs 440 MiB and is refused unless the budget is
/// raised.
pub const STAGE_STATE_ALLOWANCE: u64 = 24 * MIB;

/// The default budget of one job (one worker slot): its transfer buffers, the block pools of an
/// 8-channel stream at `block_memory` (at least 4 MiB), codec state and the stage allowance.
pub fn default_job_budget(s3: &S3Settings, block_memory: u64) -> u64 {
    s3.memory_bytes() + block_memory.max(4 * MIB) + CODEC_BYTES + STAGE_STATE_ALLOWANCE
}

/// One part of a job's bound, for the manifest and for naming what to lower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryPart {
    /// What it is, named as the user controls it: `"chain[0] (silence: min_piece_ms,
    /// min_silence_ms, keep_silence_ms)"`, `"block pools (--block-frames)"` …
    pub what: String,
    /// Its upper bound in bytes.
    pub bytes: u64,
}

/// A job's computed bound and the budget it was checked against; recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobMemory {
    /// Sum of `parts`.
    pub job_bound_bytes: u64,
    /// The budget the bound had to fit.
    pub budget_bytes: u64,
    /// What the process holds besides its jobs ([`PROCESS_BASE_BYTES`]): a process running one
    /// job stays within `process_base_bytes + job_bound_bytes`.
    pub process_base_bytes: u64,
    /// Every part, largest first.
    pub parts: Vec<MemoryPart>,
}

impl JobMemory {
    /// Sums `parts` against `budget`.
    pub fn new(mut parts: Vec<MemoryPart>, budget: u64) -> Self {
        parts.retain(|part| part.bytes > 0);
        parts.sort_by_key(|part| std::cmp::Reverse(part.bytes));
        Self {
            job_bound_bytes: parts.iter().map(|part| part.bytes).sum(),
            budget_bytes: budget,
            process_base_bytes: PROCESS_BASE_BYTES,
            parts,
        }
    }

    /// True when the bound fits the budget.
    pub fn fits(&self) -> bool {
        self.job_bound_bytes <= self.budget_bytes
    }

    /// The one-line reason a job over budget is refused: the need, the budget, the largest part
    /// (the parameter to lower) and how to raise the budget.
    pub fn refusal(&self) -> String {
        let largest = self
            .parts
            .first()
            .map(|part| format!("; the largest part is {} ({})", part.what, mib(part.bytes)))
            .unwrap_or_default();
        format!(
            "this job needs up to {} of memory, over its budget of {}{largest}: lower that \
             parameter, or raise the budget with --max-job-memory-mib \
             (LONGWAVE_MAX_JOB_MEMORY_MIB)",
            mib(self.job_bound_bytes),
            mib(self.budget_bytes)
        )
    }
}

/// `bytes` as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(what: &str, bytes: u64) -> MemoryPart {
        MemoryPart {
            what: what.to_owned(),
            bytes,
        }
    }

    #[test]
    fn the_bound_is_the_sum_and_the_refusal_names_the_largest_part() {
        let memory = JobMemory::new(
            vec![
                part("block pools (--block-frames)", 2 * MIB),
                part("chain[0] (gain)", 0),
                part("chain[1] (silence: min_piece_ms)", 460 * MIB),
            ],
            72 * MIB,
        );
        assert_eq!(memory.job_bound_bytes, 462 * MIB);
        assert!(!memory.fits());
        assert_eq!(memory.parts.len(), 2, "empty parts are left out");
        let reason = memory.refusal();
        assert!(reason.contains("462.0 MiB"), "{reason}");
        assert!(reason.contains("72.0 MiB"), "{reason}");
        assert!(
            reason.contains("chain[1] (silence: min_piece_ms) (460.0 MiB)"),
            "{reason}"
        );
        assert!(JobMemory::new(vec![part("x", 72 * MIB)], 72 * MIB).fits());
    }
}

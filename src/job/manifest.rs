//! The JSON manifest every run writes: what went in, what was done, what came out.

use super::StageSpec;
use serde::Serialize;

/// Everything a user or a downstream system needs to know about one finished job.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// longwave's version that produced the outputs.
    pub longwave_version: &'static str,
    /// The job's identity (digest of input version, chain, format and output location), also
    /// recorded on every S3 output as `x-amz-meta-longwave-job`: a redelivered job recognises
    /// and replaces what its own killed attempt committed, and nothing else.
    pub job_identity: String,
    /// The input and its properties.
    pub input: InputSummary,
    /// The preset used, if any.
    pub preset: Option<String>,
    /// The chain with every parameter's effective value.
    pub chain: Vec<StageSpec>,
    /// The job's computed memory bound, its parts and the budget it fit.
    pub memory: super::memory::JobMemory,
    /// What stages decided or measured (auto threshold, measured loudness …), by chain position.
    pub stage_reports: Vec<StageReport>,
    /// The outputs, in order.
    pub outputs: Vec<OutputEntry>,
    /// The waveform data file written beside the outputs, when the job asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waveform: Option<WaveformEntry>,
    /// Input packets that failed to decode and were skipped.
    pub skipped_packets: u64,
    /// Frames per processing block (does not change the result; recorded for diagnosis).
    pub block_frames: usize,
    /// Wall-clock time of the whole job, seconds.
    pub wall_time_s: f64,
    /// Input audio seconds processed per wall-clock second.
    pub realtime_factor: f64,
}

/// The input side of a manifest.
#[derive(Debug, Clone, Serialize)]
pub struct InputSummary {
    /// Where the input was read from.
    pub path: String,
    /// Container short name (`wav`, `mp3`, `mp4`, …).
    pub container: String,
    /// Codec short name.
    pub codec: String,
    /// Decoded duration in seconds.
    pub duration_s: f64,
    /// Decoded frames.
    pub frames: u64,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: usize,
    /// Decoded samples repaired before any stage saw them: NaN/±Inf replaced by 0, magnitudes
    /// beyond ±16.0 (+24 dBFS, a corrupt-data artefact) clamped.
    pub repaired_samples: crate::audio::SampleRepairs,
    /// Where the container's header and the audio disagreed and the audio was believed (a
    /// streaming WAV's placeholder sizes …); absent when they agreed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header_notes: Vec<String>,
    /// The S3 object's ETag as read (every range was pinned to it); absent for local files.
    /// The worker compares it to skip a redelivered job whose outputs are already complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// One output file.
#[derive(Debug, Clone, Serialize)]
pub struct OutputEntry {
    /// Where it was written.
    pub path: String,
    /// `wav`, `flac` or `mp3`.
    pub format: String,
    /// Format settings (sample format, bit depth, bitrate).
    pub settings: crate::encode::OutputFormat,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Frames written.
    pub frames: u64,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// Samples clamped to what the format carries (integer full scale for PCM WAV and FLAC;
    /// ±16.0 for float WAV and MP3). Non-zero means the output clips: lower the gain or add a
    /// limiter.
    pub clipped_samples: u64,
    /// NaN/±Inf samples written as 0 (only a stage can produce them: decoded input is repaired
    /// first, see [`InputSummary::repaired_samples`]).
    pub non_finite_samples: u64,
    /// For a piece of a split: where it starts in the source, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// For a piece of a split: where it ends in the source, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
}

/// One stage's report in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Position of the stage in the chain.
    pub index: usize,
    /// The stage's name.
    pub stage: &'static str,
    /// What it reported.
    pub report: serde_json::Value,
}

/// The waveform data file of a job (BBC audiowaveform format, version 2): peaks of the
/// decoded input, before any stage, so the positions of pieces and silent ranges (source
/// milliseconds) fall where the file shows them.
#[derive(Debug, Clone, Serialize)]
pub struct WaveformEntry {
    /// Where it was written.
    pub path: String,
    /// What was asked for: `format`, `samples_per_pixel`, `bits`, `split_channels`.
    #[serde(flatten)]
    pub settings: crate::encode::WaveformSettings,
    /// Channels of data (1 when the input's channels were mixed).
    pub channels: usize,
    /// Sample rate of the input.
    pub sample_rate: u32,
    /// Min/max pairs per channel.
    pub length: u64,
    /// Input frames it describes.
    pub frames: u64,
    /// Size in bytes.
    pub bytes: u64,
}

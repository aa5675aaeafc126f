//! A job's identity: the digest of everything that determines its outputs, recorded on every S3
//! output it writes so a later attempt of the *same* job can tell its own earlier work from
//! someone else's.
//!
//! Why: a worker killed after committing its outputs (or some pieces of a split) but before its
//! manifest used to leave a job no redelivery could finish: every attempt met "already exists".
//! Two attempts are the same job when they read the same version of the same input and apply
//! the same chain, format and output location; then the output bytes are the same too, and
//! replacing the earlier attempt's object loses nothing. The longwave version is deliberately
//! not part of it: a worker upgraded between two attempts still finishes the job.

use super::StageSpec;
use crate::encode::{OutputFormat, WaveformSettings};
use crate::io::ObjectRef;
use sha2::{Digest, Sha256};

/// Hex characters kept of the SHA-256 (128 bits: collisions between different jobs are out of
/// reach; short enough for S3 user metadata and a manifest field).
const ID_HEX_CHARS: usize = 32;

/// The identity of running `chain` as `format` on `input` into `output` (with `waveform` data
/// beside it). `input_version` pins
/// the input: the S3 ETag, or for a local file its size and modification time.
pub(crate) fn job_id(
    input: &ObjectRef,
    input_version: Option<&str>,
    chain: &[StageSpec],
    format: OutputFormat,
    output: &ObjectRef,
    waveform: Option<&WaveformSettings>,
) -> String {
    let mut described = serde_json::json!({
        "input": input.to_string(),
        "input_version": input_version,
        "chain": chain,
        "format": format,
        "output": output.to_string(),
    });
    // Only when asked for, so the identities of jobs without one stay what they were.
    if let Some(waveform) = waveform {
        described["waveform"] = serde_json::json!(waveform);
    }
    let digest = Sha256::digest(described.to_string().as_bytes());
    let mut hex = String::with_capacity(ID_HEX_CHARS);
    for byte in digest.iter().take(ID_HEX_CHARS / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// What pins a local input's version: its size and modification time (nanoseconds), so an
/// edited file at the same path is another job.
pub(crate) fn local_version(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("{}:{}", meta.len(), modified.as_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Mp3Rate;

    fn id(input: &str, version: Option<&str>, gain_db: f64, output: &str) -> String {
        job_id(
            &ObjectRef::parse(input).unwrap(),
            version,
            &[StageSpec::Gain { gain_db }],
            OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 192 },
            },
            &ObjectRef::parse(output).unwrap(),
            None,
        )
    }

    #[test]
    fn the_same_job_has_the_same_identity_and_any_difference_changes_it() {
        let base = id("s3://bkt/in.wav", Some("\"e1\""), -3.0, "s3://bkt/out.mp3");
        assert_eq!(base.len(), ID_HEX_CHARS);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            base,
            id("s3://bkt/in.wav", Some("\"e1\""), -3.0, "s3://bkt/out.mp3")
        );
        for other in [
            id("s3://bkt/in2.wav", Some("\"e1\""), -3.0, "s3://bkt/out.mp3"),
            id("s3://bkt/in.wav", Some("\"e2\""), -3.0, "s3://bkt/out.mp3"),
            id("s3://bkt/in.wav", None, -3.0, "s3://bkt/out.mp3"),
            id("s3://bkt/in.wav", Some("\"e1\""), -2.0, "s3://bkt/out.mp3"),
            id("s3://bkt/in.wav", Some("\"e1\""), -3.0, "s3://bkt/out2.mp3"),
        ] {
            assert_ne!(base, other);
        }
    }
}

//! The inputs of a workload: generated deterministically (`longwave generate`, then longwave's
//! own encoders, or ffmpeg for M4A/AAC, which longwave does not write), cached on disk, uploaded
//! once per bucket and reused by every job. A corrupt input (seeded random bytes named `.mp3`)
//! stands for the uploads that are not audio.

use crate::workload::{InputSpec, SplitMix64};
use anyhow::{bail, Context, Result};
use longwave::io::{ObjectRef, S3Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An input ready in the bucket.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Its key.
    pub key: String,
    /// Its length in seconds (0 for the corrupt input).
    pub seconds: f64,
}

/// The prefix inputs are uploaded under.
pub const INPUT_PREFIX: &str = "loadtest/inputs";

/// Generates (or finds in `cache`) every input of `specs` and the corrupt one, and uploads those
/// the bucket does not hold yet. Returns them in `specs` order, the corrupt one last.
///
/// # Errors
/// When generating, encoding or uploading fails.
pub fn prepare(
    specs: &[InputSpec],
    cache: &Path,
    longwave: &Path,
    s3: &S3Context,
    bucket: &str,
) -> Result<Vec<Uploaded>> {
    std::fs::create_dir_all(cache)?;
    let mut out = Vec::new();
    for spec in specs {
        let name = format!("speech-{}s.{}", spec.seconds, spec.format);
        let path = cache.join(&name);
        if !path.is_file() {
            generate(spec, &path, cache, longwave)
                .with_context(|| format!("cannot make the input {}", path.display()))?;
        }
        let key = format!("{INPUT_PREFIX}/{name}");
        upload(s3, &path, bucket, &key)?;
        out.push(Uploaded {
            key,
            seconds: spec.seconds,
        });
    }
    let corrupt = cache.join("corrupt.mp3");
    if !corrupt.is_file() {
        let mut rng = SplitMix64::new(0xC0FFEE);
        let bytes: Vec<u8> = (0..64 * 1024).map(|_| rng.next_u64() as u8).collect();
        std::fs::write(&corrupt, bytes)?;
    }
    let key = format!("{INPUT_PREFIX}/corrupt.mp3");
    upload(s3, &corrupt, bucket, &key)?;
    out.push(Uploaded { key, seconds: 0.0 });
    Ok(out)
}

fn generate(spec: &InputSpec, path: &Path, cache: &Path, longwave: &Path) -> Result<()> {
    let pending = path.with_extension(format!("{}.part", spec.format));
    let seconds = spec.seconds.to_string();
    match spec.format.as_str() {
        // longwave writes these itself.
        "wav" | "flac" | "mp3" => {
            let generated: PathBuf = pending.with_extension(&spec.format);
            run(Command::new(longwave)
                .arg("generate")
                .arg(&generated)
                .args(["--seconds", &seconds]))?;
            std::fs::rename(&generated, path)?;
        }
        "m4a" => {
            let wav = cache.join(format!("speech-{}s.wav", spec.seconds));
            if !wav.is_file() {
                run(Command::new(longwave)
                    .arg("generate")
                    .arg(&wav)
                    .args(["--seconds", &seconds]))?;
            }
            let tmp = pending.with_extension("m4a");
            run(Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
                .arg(&wav)
                .args(["-c:a", "aac", "-b:a", "128k"])
                .arg(&tmp))
            .context("ffmpeg makes the M4A inputs (scripts/setup-test-env.sh installs it)")?;
            std::fs::rename(&tmp, path)?;
        }
        other => bail!("unknown input format {other}"),
    }
    Ok(())
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Uploads `path` to `s3://bucket/key` through longwave's own multipart sink, unless the key
/// is already there.
fn upload(s3: &S3Context, path: &Path, bucket: &str, key: &str) -> Result<()> {
    use std::io::Read;
    if s3.head_etag(bucket, key)?.is_some() {
        return Ok(());
    }
    let object = ObjectRef::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    let mut sink = longwave::io::create_sink(Some(s3), &object, None)?;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        sink.write_all(&buffer[..n])?;
    }
    sink.commit()
        .with_context(|| format!("cannot upload {} to {object}", path.display()))?;
    Ok(())
}

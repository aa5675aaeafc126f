//! `analyze`: decode a file once and report what it is and how loud it is.

use super::runner::open_decoder;
use super::{BuildContext, JobError, StageSpec};
use crate::audio::Block;
use crate::decode::{AudioDecoder, DecodeError, DecodeOptions};
use crate::dsp::{Chain, SilenceAction, SilenceParams};
use crate::io::{ObjectRef, ObjectVersion, S3Context};
use serde::Serialize;
use std::path::Path;

/// What `longwave analyze` reports about one input.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The file analysed.
    pub path: String,
    /// Container short name.
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
    /// Largest absolute sample value over all channels, in dBFS; `null` for digital silence.
    pub peak_dbfs: Option<f64>,
    /// RMS over all samples of all channels pooled (pydub's convention: a full-scale sine reads
    /// −3.01 dBFS), in dBFS; `null` for digital silence or an empty file.
    pub rms_dbfs: Option<f64>,
    /// Packets that failed to decode and were skipped.
    pub skipped_packets: u64,
}

/// Decodes `path` completely (constant memory) and measures peak and RMS.
///
/// # Errors
/// Any [`DecodeError`]: missing, unsupported, corrupt or truncated input.
pub fn analyze_file(path: &Path, options: DecodeOptions) -> Result<Analysis, DecodeError> {
    let decoder = AudioDecoder::open_file(path, options)?;
    measure(decoder, path.display().to_string())
}

/// [`analyze_file`] for a file or an S3 object (read with ranged GETs, as `process` reads).
///
/// # Errors
/// A [`JobError`] naming the input: it cannot be read (S3 errors keep their kind) or decoded.
pub fn analyze_input(
    input: &ObjectRef,
    s3: Option<&S3Context>,
    options: DecodeOptions,
) -> Result<Analysis, JobError> {
    let (decoder, _) = open_decoder(input, s3, options, &ObjectVersion::default())?;
    Ok(measure(decoder, input.to_string())?)
}

/// Decodes `decoder` to the end and measures it; `path` names the input in the result.
fn measure(mut decoder: AudioDecoder, path: String) -> Result<Analysis, DecodeError> {
    let info = decoder.info().clone();
    let mut block = Block::new(info.spec.channels, 16_384);
    let mut peak = 0f32;
    let mut sum_squares = 0f64;
    loop {
        let frames = decoder.fill(&mut block)?;
        if frames == 0 {
            break;
        }
        for channel in block.channels() {
            let mut block_sum = 0f64;
            for &x in channel {
                peak = peak.max(x.abs());
                block_sum += f64::from(x) * f64::from(x);
            }
            sum_squares += block_sum;
        }
    }
    let frames = decoder.frames_decoded();
    let samples = frames as f64 * info.spec.channels as f64;
    let to_db = |x: f64| (x > 0.0).then(|| 20.0 * x.log10());
    Ok(Analysis {
        path,
        container: info.container,
        codec: info.codec,
        duration_s: info.spec.seconds(frames),
        frames,
        sample_rate: info.spec.sample_rate,
        channels: info.spec.channels,
        peak_dbfs: to_db(f64::from(peak)),
        rms_dbfs: if samples > 0.0 {
            to_db((sum_squares / samples).sqrt())
        } else {
            None
        },
        skipped_packets: decoder.skipped_packets(),
    })
}

/// Runs silence detection on `input` (an analysis pass when the threshold is `auto`, then a
/// detection pass, both in constant memory) and returns the stage's report: the threshold used
/// (the suggested one when `auto`), the level percentiles, and the silent and non-silent ranges
/// in ms.
///
/// # Errors
/// A [`JobError`] when the input cannot be decoded or the parameters are invalid.
pub fn analyze_silence(
    input: &ObjectRef,
    s3: Option<&S3Context>,
    options: DecodeOptions,
    params: SilenceParams,
) -> Result<serde_json::Value, JobError> {
    let open =
        || open_decoder(input, s3, options, &ObjectVersion::default()).map(|(decoder, _)| decoder);
    let params = SilenceParams {
        action: SilenceAction::Detect,
        ..params
    };
    let spec = StageSpec::Silence(params);
    spec.validate(0)?;
    let mut decoder = open()?;
    let info = decoder.info().clone();
    let build = BuildContext {
        source_bits: info.bits_per_sample,
    };
    let mut chain = Chain::new(vec![spec.build(&build)]);
    chain.prepare(info.spec, 16_384)?;
    let mut block = Block::new(info.spec.channels, 16_384);
    for index in chain.analysis_stages() {
        let mut pass = open()?;
        while pass.fill(&mut block)? > 0 {
            chain.observe(index, &block);
        }
        chain.end_observation(index);
    }
    while decoder.fill(&mut block)? > 0 {
        chain.process(&block);
    }
    while chain.flush().is_some() {}
    Ok(chain
        .reports()
        .into_iter()
        .find_map(|(_, report)| report)
        .unwrap_or(serde_json::Value::Null))
}

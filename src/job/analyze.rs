//! `analyze`: decode a file once and report what it is and how loud it is.

use super::envelope::{Envelope, EnvelopeColumns};
use super::runner::open_decoder;
use super::{BuildContext, JobError, StageSpec};
use crate::audio::Block;
use crate::decode::{AudioDecoder, DecodeError, DecodeOptions};
use crate::dsp::{Chain, SilenceAction, SilenceParams, StageEvent};
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

/// Most pieces [`plot_data`] lists (the count goes on beyond): as many as the silence report's
/// ranges, so a picture of a very long recording stays bounded.
pub const PLOT_PIECES_CAP: usize = 10_000;

/// What `longwave plot` draws: the recording's envelope and, when a silence split was asked
/// for, its threshold, silent ranges and pieces.
#[derive(Debug, Clone)]
pub struct PlotData {
    /// The input, as named.
    pub path: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: usize,
    /// Per-column min/max over all channels.
    pub envelope: EnvelopeColumns,
    /// The split, when one was run.
    pub silence: Option<SilenceMarks>,
}

/// A silence split's marks on a picture: the threshold used, the silent ranges and the pieces,
/// in milliseconds of the recording.
#[derive(Debug, Clone, Default)]
pub struct SilenceMarks {
    /// The threshold the detector used, dBFS (the chosen one when `auto`).
    pub threshold_db: Option<f64>,
    /// Silent ranges, at most the report's cap.
    pub silent_ranges_ms: Vec<(u64, u64)>,
    /// Pieces of the split, at most [`PLOT_PIECES_CAP`].
    pub pieces_ms: Vec<(u64, u64)>,
    /// Pieces in all (beyond the list when it was capped).
    pub pieces_count: u64,
}

impl SilenceMarks {
    /// The marks a silence stage's report gives (threshold and silent ranges); pieces are added
    /// by the caller.
    pub fn from_report(report: &serde_json::Value) -> Self {
        let ranges = report
            .get("silent_ranges_ms")
            .and_then(serde_json::Value::as_array)
            .map(|ranges| {
                ranges
                    .iter()
                    .filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        SilenceMarks {
            threshold_db: report
                .get("threshold_db")
                .and_then(serde_json::Value::as_f64),
            silent_ranges_ms: ranges,
            ..SilenceMarks::default()
        }
    }
}

/// Decodes `input` once (twice with an automatic threshold) and gathers what a picture of it
/// needs: its envelope in `columns` columns and, with `silence`, the split those parameters
/// make (the same detector and planner `process` runs; `action` is taken as `split`), in
/// memory bounded by `columns` and the caps, not by the length.
///
/// # Errors
/// A [`JobError`] when the input cannot be decoded or the parameters are invalid.
pub fn plot_data(
    input: &ObjectRef,
    s3: Option<&S3Context>,
    options: DecodeOptions,
    silence: Option<SilenceParams>,
    columns: usize,
) -> Result<PlotData, JobError> {
    let open =
        || open_decoder(input, s3, options, &ObjectVersion::default()).map(|(decoder, _)| decoder);
    let mut decoder = open()?;
    let info = decoder.info().clone();
    let mut chain = None;
    if let Some(params) = silence {
        let spec = StageSpec::Silence(SilenceParams {
            action: SilenceAction::Split,
            ..params
        });
        spec.validate(0)?;
        let build = BuildContext {
            source_bits: info.bits_per_sample,
        };
        let mut split = Chain::new(vec![spec.build(&build)]);
        split.prepare(info.spec, 16_384)?;
        chain = Some(split);
    }
    let mut block = Block::new(info.spec.channels, 16_384);
    if let Some(chain) = chain.as_mut() {
        for index in chain.analysis_stages() {
            let mut pass = open()?;
            while pass.fill(&mut block)? > 0 {
                chain.observe(index, &block);
            }
            chain.end_observation(index);
        }
    }
    let mut envelope = Envelope::new(columns);
    let mut pieces = Pieces::default();
    while decoder.fill(&mut block)? > 0 {
        envelope.add(&block);
        if let Some(chain) = chain.as_mut() {
            chain.process(&block);
            pieces.take(chain.events(), info.spec.sample_rate);
        }
    }
    let silence = chain.map(|mut chain| {
        // As the runner: a flush that returns a block may carry events, the last one none.
        while chain.flush().is_some() {
            pieces.take(chain.events(), info.spec.sample_rate);
        }
        let report = chain
            .reports()
            .into_iter()
            .find_map(|(_, report)| report)
            .unwrap_or(serde_json::Value::Null);
        SilenceMarks {
            pieces_ms: pieces.listed,
            pieces_count: pieces.count,
            ..SilenceMarks::from_report(&report)
        }
    });
    Ok(PlotData {
        path: input.to_string(),
        sample_rate: info.spec.sample_rate,
        channels: info.spec.channels,
        envelope: envelope.finish(),
        silence,
    })
}

/// Pieces gathered from a split's events, in ms of the source.
#[derive(Default)]
struct Pieces {
    open: Option<u64>,
    listed: Vec<(u64, u64)>,
    count: u64,
}

impl Pieces {
    fn take(&mut self, events: &[StageEvent], sample_rate: u32) {
        let ms = |frame: u64| frame * 1000 / u64::from(sample_rate.max(1));
        for event in events {
            match *event {
                StageEvent::PieceStart { source_frame, .. } => self.open = Some(source_frame),
                StageEvent::PieceEnd { source_frame, .. } => {
                    if let Some(start) = self.open.take() {
                        self.count += 1;
                        if self.listed.len() < PLOT_PIECES_CAP {
                            self.listed.push((ms(start), ms(source_frame)));
                        }
                    }
                }
            }
        }
    }
}

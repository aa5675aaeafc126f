//! Streaming encoders (WAV/RF64, FLAC, MP3) writing into a [`ByteSink`].
//!
//! An encoder takes [`Block`]s as they come and pushes bytes into its sink; nothing holds the
//! whole output. Formats whose header carries totals known only at the end (WAV sizes, FLAC
//! STREAMINFO, the MP3 LAME/Xing tag) write a placeholder first and overwrite it at the end with
//! [`ByteSink::patch`], the one shared "header written last" mechanism: a local file seeks back,
//! an S3 multipart upload keeps its first part in memory and sends it last.
//!
//! Depends on `audio` only; knows nothing of AWS or DSP.

mod error;
mod flac;
mod mp3;
mod pcm;
mod wav;
mod waveform;

pub use error::EncodeError;
pub use flac::{FlacEncoder, BLOCK_SIZE as FLAC_BLOCK_SIZE};
pub use mp3::{
    output_sample_rate as mp3_output_sample_rate, JoinStats, LameSettings, Mp3Encoder,
    ParallelMp3Encoder, CBR_KBPS as MP3_CBR_KBPS,
};
pub use wav::WavEncoder;
pub use waveform::{
    WaveformFormat, WaveformSettings, WaveformSummary, WaveformWriter, DEFAULT_SAMPLES_PER_PIXEL,
    MAX_SAMPLES_PER_PIXEL, MIN_SAMPLES_PER_PIXEL,
};

use crate::audio::{Block, ByteSink, StreamSpec};
use serde::{Deserialize, Serialize};

/// A streaming encoder. Call [`Encoder::write`] for every block in order, then
/// [`Encoder::finish`] once. Dropping an encoder without finishing aborts its sink, so no partial
/// output ever appears under the final name.
pub trait Encoder: Send {
    /// Encodes the valid frames of `block`.
    ///
    /// # Errors
    /// Fails when the sink fails (disk full, upload error) or the codec rejects the data.
    fn write(&mut self, block: &Block) -> Result<(), EncodeError>;

    /// Flushes the codec, patches the header with the totals and commits the sink.
    ///
    /// # Errors
    /// Fails when flushing, patching or committing fails; the output is then not committed.
    fn finish(self: Box<Self>) -> Result<EncodedOutput, EncodeError>;
}

/// What an encoder wrote, for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodedOutput {
    /// Frames of audio written (the output's exact length as a decoder will report it).
    pub frames: u64,
    /// Sample rate of the output.
    pub sample_rate: u32,
    /// Channels of the output.
    pub channels: usize,
    /// Bytes written to the sink.
    pub bytes: u64,
    /// Samples clamped to what the format carries: integer full scale for PCM WAV and FLAC,
    /// ±`audio::MAX_SAMPLE_MAGNITUDE` for float WAV and MP3.
    pub clipped_samples: u64,
    /// NaN/±Inf samples written as 0 (a stage produced them; decoded input is already clean).
    pub non_finite_samples: u64,
}

/// Sample encoding of a WAV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WavSampleFormat {
    /// 16-bit signed integer PCM (TPDF-free rounding, clipped).
    #[default]
    Pcm16,
    /// 24-bit signed integer PCM.
    Pcm24,
    /// 32-bit IEEE float.
    Float32,
}

/// MP3 rate control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Mp3Rate {
    /// Constant bitrate in kbit/s; one of LAME's CBR rates (8…320).
    Cbr {
        /// Bitrate in kbit/s.
        kbps: u32,
    },
    /// CBR at `kbps` where the output sample rate allows it, else the allowed rate nearest to it
    /// (below 32 kHz, MPEG-2/2.5 carries 8–160 kbps). Presets and defaults ask for this, so they
    /// work on every input rate (an 8 kHz phone recording gets 160 kbps instead of an error);
    /// a bitrate the user chose is [`Mp3Rate::Cbr`], which fails rather than change.
    /// [`Mp3Rate::fitted`] resolves it to the `Cbr` that is written.
    CbrPreferred {
        /// Preferred bitrate in kbit/s.
        kbps: u32,
    },
    /// LAME VBR at quality 0 (best) … 9 (smallest).
    Vbr {
        /// LAME `-V` quality.
        quality: u8,
    },
}

impl Default for Mp3Rate {
    /// 192 kbps where the rate allows it ([`Mp3Rate::CbrPreferred`]).
    fn default() -> Self {
        Mp3Rate::CbrPreferred { kbps: 192 }
    }
}

impl Mp3Rate {
    /// A constant bitrate the user chose, checked against LAME's CBR rates (the encoder checks
    /// it again against what the output's sample rate allows), so a bad one is refused before
    /// any byte of the input is read.
    ///
    /// # Errors
    /// The reason, listing the allowed rates.
    pub fn cbr(kbps: u32) -> Result<Mp3Rate, String> {
        if MP3_CBR_KBPS.contains(&kbps) {
            Ok(Mp3Rate::Cbr { kbps })
        } else {
            Err(mp3::not_a_cbr_rate(kbps))
        }
    }

    /// The rate control actually used for an input of `input_rate` Hz: a
    /// [`Mp3Rate::CbrPreferred`] becomes the [`Mp3Rate::Cbr`] nearest to it that the MP3's sample
    /// rate allows; the others are returned as they are.
    pub fn fitted(self, input_rate: u32) -> Mp3Rate {
        match self {
            Mp3Rate::CbrPreferred { kbps } => Mp3Rate::Cbr {
                kbps: mp3::nearest_cbr_kbps(kbps, mp3::output_sample_rate(input_rate)),
            },
            other => other,
        }
    }
}

/// An output format with its settings: what the user asked for, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "format")]
pub enum OutputFormat {
    /// RIFF WAVE (RF64 when the data passes 4 GiB).
    Wav {
        /// Sample encoding.
        sample_format: WavSampleFormat,
    },
    /// FLAC at the given bit depth (16 or 24).
    Flac {
        /// Bits per sample (16 or 24).
        bits_per_sample: u8,
    },
    /// MPEG-1/2 Layer III through LAME.
    Mp3 {
        /// Rate control.
        rate: Mp3Rate,
    },
}

impl OutputFormat {
    /// The names [`OutputFormat::from_name`] knows, for error messages.
    pub const NAMES: &'static str = "wav, flac, mp3";

    /// The format called `name` (`wav`, `flac`, `mp3`, in any case) with its default settings:
    /// 16-bit PCM WAV, 16-bit FLAC, MP3 at 192 kbps where the input's rate allows it (a default
    /// must work on every input).
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        match name.to_ascii_lowercase().as_str() {
            "wav" => Some(OutputFormat::Wav {
                sample_format: WavSampleFormat::Pcm16,
            }),
            "flac" => Some(OutputFormat::Flac {
                bits_per_sample: 16,
            }),
            "mp3" => Some(OutputFormat::Mp3 {
                rate: Mp3Rate::default(),
            }),
            _ => None,
        }
    }

    /// The conventional file extension, without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Wav { .. } => "wav",
            OutputFormat::Flac { .. } => "flac",
            OutputFormat::Mp3 { .. } => "mp3",
        }
    }

    /// A short lower-case name (metric label and manifest value).
    pub fn name(&self) -> &'static str {
        self.extension()
    }

    /// Checks that this format can carry a stream of `spec` with these settings, without
    /// creating anything, so a job fails before it writes a byte.
    ///
    /// # Errors
    /// As [`create_encoder`] for the format and settings.
    pub fn check(self, spec: StreamSpec) -> Result<(), EncodeError> {
        match self {
            OutputFormat::Wav { .. } => Ok(()),
            OutputFormat::Flac { bits_per_sample } => flac::check(spec, bits_per_sample),
            OutputFormat::Mp3 { rate } => mp3::check(spec, rate),
        }
    }

    /// The settings actually used for a stream of `spec` (see [`Mp3Rate::fitted`]); what the
    /// manifest records.
    pub fn fitted(self, spec: StreamSpec) -> OutputFormat {
        match self {
            OutputFormat::Mp3 { rate } => OutputFormat::Mp3 {
                rate: rate.fitted(spec.sample_rate),
            },
            other => other,
        }
    }
}

/// Creates the encoder for `format`, writing a stream of `spec` into `sink`.
///
/// MP3 output of a sample rate MPEG cannot carry is resampled by LAME (see
/// [`mp3_output_sample_rate`]); [`EncodedOutput::sample_rate`] then states the real rate.
///
/// # Errors
/// Fails when the format cannot carry this stream or these settings (MP3 with more than two
/// channels or a bitrate unavailable at the output rate, FLAC at a bit depth other than 16/24)
/// or the sink fails writing the initial header.
pub fn create_encoder(
    format: OutputFormat,
    spec: StreamSpec,
    sink: Box<dyn ByteSink>,
) -> Result<Box<dyn Encoder>, EncodeError> {
    Ok(match format {
        OutputFormat::Wav { sample_format } => {
            Box::new(WavEncoder::new(spec, sample_format, sink)?)
        }
        OutputFormat::Flac { bits_per_sample } => {
            Box::new(FlacEncoder::new(spec, bits_per_sample, sink)?)
        }
        OutputFormat::Mp3 { rate } => Box::new(Mp3Encoder::new(spec, rate, sink)?),
    })
}

/// [`create_encoder`] with `threads` for the formats that can use more than one: MP3 is encoded
/// in parallel segments ([`ParallelMp3Encoder`]) when `threads` > 1 and LAME does not resample;
/// everything else, and MP3 with one thread, is the single-thread encoder.
///
/// # Errors
/// As [`create_encoder`], or an encoder thread cannot be started.
pub fn create_encoder_threaded(
    format: OutputFormat,
    spec: StreamSpec,
    sink: Box<dyn ByteSink>,
    threads: usize,
) -> Result<Box<dyn Encoder>, EncodeError> {
    match format {
        OutputFormat::Mp3 { rate }
            if threads > 1 && mp3::output_sample_rate(spec.sample_rate) == spec.sample_rate =>
        {
            Ok(Box::new(ParallelMp3Encoder::new(
                LameSettings { spec, rate },
                threads,
                sink,
            )?))
        }
        _ => create_encoder(format, spec, sink),
    }
}

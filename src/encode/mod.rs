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
mod sink;
mod wav;

/// Shared with `io`, so file errors read the same in both layers.
pub(crate) use error::io_reason;
pub use error::{EncodeError, SinkError};
pub use flac::{FlacEncoder, BLOCK_SIZE as FLAC_BLOCK_SIZE};
pub use mp3::{output_sample_rate as mp3_output_sample_rate, Mp3Encoder};
pub use sink::{ByteSink, FileSink, MemoryOutput, MemorySink, PATCH_WINDOW};
pub use wav::WavEncoder;

use crate::audio::{Block, StreamSpec};
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
    /// LAME VBR at quality 0 (best) … 9 (smallest).
    Vbr {
        /// LAME `-V` quality.
        quality: u8,
    },
}

impl Default for Mp3Rate {
    fn default() -> Self {
        Mp3Rate::Cbr { kbps: 192 }
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

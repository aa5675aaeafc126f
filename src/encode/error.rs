//! Errors of the encode layer: [`EncodeError`] for the encoders (the byte destination's
//! [`SinkError`] is part of the sink contract in `audio`). Messages carry their context (the path, the format, the offending value) so that a
//! job failure can be reported to a user as is; [`EncodeError::kind`] gives a bounded metric label.

use crate::audio::SinkError;
use thiserror::Error;

/// A failure of an [`Encoder`](super::Encoder).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output format cannot carry this stream, or a setting is out of range. Detected when
    /// the encoder is created, before any byte is written.
    #[error("{format}: {reason}")]
    Unsupported {
        /// Format name ("wav", "flac", "mp3").
        format: &'static str,
        /// What is wrong and what to do instead.
        reason: String,
    },
    /// A block does not match the stream the encoder was created for (a pipeline bug).
    #[error("block has {got} channels but the {format} encoder was created for {expected}")]
    ChannelMismatch {
        /// Format name.
        format: &'static str,
        /// Channels of the stream.
        expected: usize,
        /// Channels of the block.
        got: usize,
    },
    /// The codec library failed.
    #[error("{format} encoder failed: {reason}")]
    Codec {
        /// Format name.
        format: &'static str,
        /// The library's message.
        reason: String,
    },
    /// The sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl EncodeError {
    /// A short, bounded label for metrics (`error_type`).
    pub fn kind(&self) -> &'static str {
        match self {
            EncodeError::Unsupported { .. } => "unsupported_output",
            EncodeError::ChannelMismatch { .. } => "channel_mismatch",
            EncodeError::Codec { .. } => "codec",
            EncodeError::Sink(SinkError::Io { .. }) => "sink_io",
            EncodeError::Sink(SinkError::PatchOutOfWindow { .. }) => "sink_patch",
            EncodeError::Sink(SinkError::Poisoned) => "sink_poisoned",
            EncodeError::Sink(SinkError::Remote { kind, .. }) => kind,
        }
    }

    pub(crate) fn unsupported(format: &'static str, reason: impl Into<String>) -> Self {
        EncodeError::Unsupported {
            format,
            reason: reason.into(),
        }
    }

    pub(crate) fn codec(format: &'static str, reason: impl std::fmt::Display) -> Self {
        EncodeError::Codec {
            format,
            reason: reason.to_string(),
        }
    }
}

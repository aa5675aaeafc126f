//! Errors of the encode layer: [`SinkError`] for the byte destination, [`EncodeError`] for the
//! encoders. Messages carry their context (the path, the format, the offending value) so that a
//! job failure can be reported to a user as is; [`EncodeError::kind`] gives a bounded metric label.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// A failure of a [`ByteSink`](super::ByteSink).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SinkError {
    /// An I/O operation on a local file failed.
    #[error("cannot {op} {path}: {reason}", reason = io_reason(.source))]
    Io {
        /// What was being done ("create", "write", "rename … to", …).
        op: &'static str,
        /// The file concerned (the final name, which is what the user knows).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// [`ByteSink::patch`](super::ByteSink::patch) was asked to overwrite bytes outside the
    /// patch window or beyond what was written: a bug in an encoder, never input-driven.
    #[error(
        "cannot patch {len} bytes at offset {offset}: only the first {window} bytes of the \
         {written} written may be patched"
    )]
    PatchOutOfWindow {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: usize,
        /// The patch window ([`PATCH_WINDOW`](super::PATCH_WINDOW)).
        window: u64,
        /// Bytes written so far.
        written: u64,
    },
    /// A remote store (S3) failed; the message names the object and the reason.
    #[error("cannot {op} {target}: {reason}")]
    Remote {
        /// What was being done ("upload", "commit", …).
        op: &'static str,
        /// The object concerned (`s3://bucket/key`).
        target: String,
        /// What went wrong, with the service's error code when there is one.
        reason: String,
        /// Whether trying the job again later may succeed (network trouble, throttling, 5xx).
        retryable: bool,
        /// The store's error kind as a metric label (`already_exists`, `access_denied`, …).
        kind: &'static str,
    },
    /// The sink was used after a failure left it in an unknown state.
    #[error("the output was abandoned after an earlier error")]
    Poisoned,
}

/// The human part of an I/O error: lower-case kind ("permission denied", "no such file or
/// directory") rather than the OS's "(os error 13)" suffix.
pub(crate) fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AlreadyExists => "already exists".to_owned(),
        _ => error.to_string(),
    }
}

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

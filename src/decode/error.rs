//! [`DecodeError`]: why a source could not be decoded, with a low-cardinality [`DecodeError::kind`]
//! for metrics and a [`DecodeError::retryable`] verdict for the job runner.

use crate::io::IoError;
use std::io;

/// The object-I/O error an S3 source wrapped into the `std::io::Error` symphonia passed back,
/// if that is what `source` carries: its kind and retryability are the real ones.
fn object_error(source: &io::Error) -> Option<&IoError> {
    source.get_ref()?.downcast_ref::<IoError>()
}

/// Why decoding failed. Every message names the source (file path or object name) and the reason.
///
/// Only [`DecodeError::Io`] with a transient I/O error is worth retrying; everything else is a
/// property of the input and will fail the same way again.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file does not exist.
    #[error("{file}: file not found")]
    NotFound {
        /// The source's name.
        file: String,
    },
    /// Reading the source failed (not an end-of-file inside the data: that is `Truncated`).
    #[error("{file}: I/O error: {source}")]
    Io {
        /// The source's name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path is not a regular file (a folder, a named pipe, a device): longwave reads files
    /// and S3 objects, whose length it can check.
    #[error("{file}: not a regular file ({what}); give an audio file or an s3:// object")]
    NotAFile {
        /// The source's name.
        file: String,
        /// What it is instead.
        what: &'static str,
    },
    /// The source has zero bytes.
    #[error("{file}: file is empty (0 bytes)")]
    Empty {
        /// The source's name.
        file: String,
    },
    /// The container is valid but holds no audio frames (a header with an empty data chunk).
    /// The decoder reads such a stream as empty; a job refuses it with this error, since there
    /// is nothing to process and an "empty" MP3 cannot even be opened by most players.
    #[error("{file}: contains no audio (0 frames)")]
    NoFrames {
        /// The source's name.
        file: String,
    },
    /// The bytes are not a container longwave recognises, or it holds no audio track.
    #[error("{file}: not an audio file ({reason})")]
    NotAudio {
        /// The source's name.
        file: String,
        /// What was found instead.
        reason: String,
    },
    /// Recognised audio that longwave cannot decode: an unsupported codec, channel count or rate.
    #[error("{file}: unsupported audio: {reason}")]
    Unsupported {
        /// The source's name.
        file: String,
        /// Names the codec or the out-of-range property.
        reason: String,
    },
    /// The container or stream is malformed beyond packet-level recovery.
    #[error("{file}: corrupt audio: {reason}")]
    Corrupt {
        /// The source's name.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// The data ends before the length the container announced (or inside a packet/box).
    #[error("{file}: truncated: the container announces {expected} frames but only {decoded} could be decoded")]
    Truncated {
        /// The source's name.
        file: String,
        /// Frames announced by the container (after gapless trimming).
        expected: u64,
        /// Frames actually decoded.
        decoded: u64,
    },
    /// The data ends in the middle of a packet or box and the container did not say how long it is.
    #[error("{file}: truncated: unexpected end of data after {decoded} frames")]
    UnexpectedEof {
        /// The source's name.
        file: String,
        /// Frames decoded before the end.
        decoded: u64,
    },
    /// More packets failed to decode than [`super::DecodeOptions::max_skipped_packets`] allows.
    #[error(
        "{file}: {skipped} packets failed to decode (limit {limit}); last error: {last_error}"
    )]
    TooManyBadPackets {
        /// The source's name.
        file: String,
        /// Packets skipped so far.
        skipped: u64,
        /// The configured limit.
        limit: u64,
        /// The last decoder error message.
        last_error: String,
    },
    /// symphonia panicked on this input; the panic was caught and the decoder is unusable.
    #[error("{file}: the decoder panicked ({message}); the input is probably malformed")]
    DecoderPanic {
        /// The source's name.
        file: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The caller passed a block whose channel count differs from the stream's (a pipeline bug).
    #[error("{file}: block has {block_channels} channels but the stream has {stream_channels}")]
    BlockMismatch {
        /// The source's name.
        file: String,
        /// Channels of the block passed to `fill`.
        block_channels: usize,
        /// Channels of the stream.
        stream_channels: usize,
    },
}

impl DecodeError {
    /// A low-cardinality label for metrics (`error_type`): one of `not_found`, `io`, `empty`,
    /// `not_audio`, `unsupported`, `corrupt`, `truncated`, `too_many_bad_packets`,
    /// `decoder_panic`, `block_mismatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::NotAFile { .. } => "not_a_file",
            Self::Io { source, .. } => object_error(source).map_or("io", IoError::kind),
            Self::Empty { .. } | Self::NoFrames { .. } => "empty",
            Self::NotAudio { .. } => "not_audio",
            Self::Unsupported { .. } => "unsupported",
            Self::Corrupt { .. } => "corrupt",
            Self::Truncated { .. } | Self::UnexpectedEof { .. } => "truncated",
            Self::TooManyBadPackets { .. } => "too_many_bad_packets",
            Self::DecoderPanic { .. } => "decoder_panic",
            Self::BlockMismatch { .. } => "block_mismatch",
        }
    }

    /// True only for transient I/O failures (interrupted, timed out, connection reset...), where
    /// running the job again may succeed. Input problems are never retryable.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Io { source, .. } => match object_error(source) {
                // An S3 reader's error keeps its own verdict (a 503 SlowDown is retryable).
                Some(error) => error.retryable(),
                None => matches!(
                    source.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::NotConnected
                        | io::ErrorKind::BrokenPipe
                ),
            },
            _ => false,
        }
    }

    /// The name of the source the error is about.
    pub fn file(&self) -> &str {
        match self {
            Self::NotFound { file }
            | Self::Io { file, .. }
            | Self::Empty { file }
            | Self::NoFrames { file }
            | Self::NotAFile { file, .. }
            | Self::NotAudio { file, .. }
            | Self::Unsupported { file, .. }
            | Self::Corrupt { file, .. }
            | Self::Truncated { file, .. }
            | Self::UnexpectedEof { file, .. }
            | Self::TooManyBadPackets { file, .. }
            | Self::DecoderPanic { file, .. }
            | Self::BlockMismatch { file, .. } => file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_io_is_retryable() {
        let timed_out = DecodeError::Io {
            file: "a.wav".into(),
            source: io::Error::new(io::ErrorKind::TimedOut, "slow"),
        };
        assert!(timed_out.retryable());
        assert_eq!(timed_out.kind(), "io");
        let denied = DecodeError::Io {
            file: "a.wav".into(),
            source: io::Error::new(io::ErrorKind::PermissionDenied, "no"),
        };
        assert!(!denied.retryable());
        let truncated = DecodeError::Truncated {
            file: "a.wav".into(),
            expected: 10,
            decoded: 5,
        };
        assert!(!truncated.retryable());
        assert!(truncated.to_string().contains("a.wav"));
    }
}

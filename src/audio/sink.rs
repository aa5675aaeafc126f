//! The byte-sink contract: where encoded bytes go. [`ByteSink`] (append, patch the first
//! [`PATCH_WINDOW`] bytes, commit or drop to abort), its error [`SinkError`], and
//! [`MemorySink`] for tests and benches.
//!
//! It lives on the bottom floor so that `encode` (which writes into sinks) and `io` (which
//! implements them: the file sink and the S3 multipart sink) both depend on it and not on each
//! other. The trait exists so that encoders never need `Seek`: an S3 multipart upload cannot
//! seek, but every format we write only needs to rewrite a header near the start once the
//! totals are known. That one need is captured by [`ByteSink::patch`] with a bounded
//! [`PATCH_WINDOW`], which a multipart sink satisfies by keeping its first part in memory and
//! uploading it last.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;

/// How many bytes at the start of an output may be overwritten by [`ByteSink::patch`].
///
/// 64 KiB covers every header we patch (a 80-byte WAV/RF64 header, the 42-byte FLAC STREAMINFO,
/// a ≤ 2 KiB MP3 LAME/Xing frame) with a wide margin, and is far below S3's 5 MiB minimum part
/// size, so a multipart sink can always hold the window inside its first part.
pub const PATCH_WINDOW: u64 = 64 * 1024;

/// The destination of an encoder's bytes: an append-only stream with one exception, the
/// [`patch`](ByteSink::patch) of already-written bytes inside the first [`PATCH_WINDOW`] bytes.
///
/// # Lifecycle
/// 1. [`write_all`](ByteSink::write_all) any number of times (bytes are appended);
/// 2. [`patch`](ByteSink::patch) any number of times, interleaved with writes, as long as the
///    patched range lies inside the window and inside what was written;
/// 3. [`commit`](ByteSink::commit) once: only then does the output become visible under its
///    final name (a file is renamed into place, a multipart upload is completed).
///
/// **Dropping a sink without committing aborts it**: the temporary file is removed, the multipart
/// upload is aborted. No partial output ever appears under the final name, so a failed or
/// cancelled job needs no cleanup.
///
/// # For implementors
/// * `patch` must reject (with [`SinkError::PatchOutOfWindow`]) any range with
///   `offset + bytes.len() > PATCH_WINDOW` or `offset + bytes.len() > position()`. Within those
///   bounds it must be honoured whatever was written since; an implementation that cannot seek
///   keeps the first `PATCH_WINDOW` bytes (or its whole first part) in memory until `commit`.
/// * `position` is the number of bytes appended so far (patches do not move it).
/// * `commit` returns the final size in bytes. After any error the sink may be left unusable
///   (later calls return [`SinkError::Poisoned`]); dropping it must still clean up.
/// * Sinks are `Send`: an encoder may run on another thread than the one that made the sink.
pub trait ByteSink: Send {
    /// Appends `bytes`.
    ///
    /// # Errors
    /// Fails when the underlying storage fails (disk full, network error).
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError>;

    /// Overwrites already-written bytes at `offset`; the range must lie within both
    /// [`PATCH_WINDOW`] and [`position`](ByteSink::position).
    ///
    /// # Errors
    /// [`SinkError::PatchOutOfWindow`] for a range outside those bounds; otherwise storage
    /// failures.
    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SinkError>;

    /// Bytes appended so far.
    fn position(&self) -> u64;

    /// Makes the output visible under its final name and returns its size in bytes.
    ///
    /// # Errors
    /// Fails when flushing or publishing fails; the output is then discarded.
    fn commit(self: Box<Self>) -> Result<u64, SinkError>;
}

/// Checks the [`ByteSink::patch`] contract; shared by every implementation.
///
/// # Errors
/// [`SinkError::PatchOutOfWindow`] when the range leaves the window or what was written.
pub fn check_patch(offset: u64, len: usize, written: u64) -> Result<(), SinkError> {
    let end = offset.checked_add(len as u64);
    match end {
        Some(end) if end <= PATCH_WINDOW && end <= written => Ok(()),
        _ => Err(SinkError::PatchOutOfWindow {
            offset,
            len,
            window: PATCH_WINDOW,
            written,
        }),
    }
}

/// A failure of a [`ByteSink`].
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
    /// [`ByteSink::patch`] was asked to overwrite bytes outside the
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
        /// The patch window ([`PATCH_WINDOW`]).
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

/// The human part of an I/O error, shared by every layer that reports file errors: lower-case kind ("permission denied", "no such file or
/// directory") rather than the OS's "(os error 13)" suffix.
pub fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AlreadyExists => "already exists".to_owned(),
        _ => error.to_string(),
    }
}

/// An in-memory sink for tests and benches. Read the bytes after commit through the
/// [`MemoryOutput`] handle from [`MemorySink::output`].
#[derive(Debug, Default)]
pub struct MemorySink {
    bytes: Vec<u8>,
    output: MemoryOutput,
}

/// Shared handle to the bytes a [`MemorySink`] committed.
#[derive(Debug, Clone, Default)]
pub struct MemoryOutput {
    slot: Arc<Mutex<Option<Vec<u8>>>>,
}

impl MemoryOutput {
    /// The committed bytes, or `None` if the sink was not (yet) committed. Takes them out.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sink with room for `capacity` bytes before it reallocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
            output: MemoryOutput::default(),
        }
    }

    /// A handle through which the bytes can be read after commit.
    pub fn output(&self) -> MemoryOutput {
        self.output.clone()
    }

    /// The bytes written so far (before commit).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl ByteSink for MemorySink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SinkError> {
        check_patch(offset, bytes.len(), self.bytes.len() as u64)?;
        // In range: checked above against the written length, which fits in usize.
        let start = offset as usize;
        self.bytes[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn position(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn commit(mut self: Box<Self>) -> Result<u64, SinkError> {
        let bytes = std::mem::take(&mut self.bytes);
        let len = bytes.len() as u64;
        *self
            .output
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(len)
    }
}

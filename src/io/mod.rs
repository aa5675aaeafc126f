//! Object I/O: where a job's bytes come from and go to, local files or S3 objects, behind the
//! two interfaces the pipeline already speaks: a seekable [`MediaSource`] for the decoder and a
//! [`ByteSink`] for the encoders.
//!
//! # Why this module exists
//! Long inputs and outputs (hours of audio, gigabytes) must stream through constant memory, and
//! S3 has no seekable file handle: reads are ranged GETs, writes are multipart uploads. This
//! module turns those into the synchronous `Read + Seek` / append-and-patch shapes the decode
//! and encode layers use, with every buffer bounded by [`S3Settings`]
//! ([`S3Settings::memory_bytes`]):
//! - [`S3Reader`]: ranged GETs with bounded read-ahead, seeks (MP4 `moov` at the end works),
//!   resume of broken bodies, pinned to one object version by ETag;
//! - [`S3Sink`]: multipart upload with part 1 held for the header patch and uploaded last,
//!   bounded parts in flight (backpressure), conditional commit, abort on failure and on drop.
//!
//! # Dependencies and threads
//! Knows no DSP, codec or job logic; depends on `audio` only, for the [`ByteSink`] trait and
//! `SinkError`. The AWS SDK is async: [`S3Context`] owns a private tokio runtime and blocks on
//! it, so every function here is called from plain threads (the decode thread, the encoder's
//! thread), **never from inside an async runtime**.
//!
//! # Errors
//! [`IoError`] names the object (`s3://bucket/key` or the path) and the reason, and classifies
//! itself ([`IoError::kind`] for metrics, [`IoError::retryable`] for redelivery).

mod backoff;
mod context;
mod error;
mod file;
mod object;
mod reader;
mod sink;
mod status;

pub use backoff::Backoff;
pub use context::{S3Context, S3Settings, MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
pub use error::IoError;
pub use file::{file_kind, move_into_place, open_file, FileSink};
pub use object::ObjectRef;
pub use reader::{ObjectVersion, ReadStats, S3Reader};
pub use sink::{S3Sink, WriteMode};
pub use status::{JobStatus, StatusError, StatusTable, StatusWrite, MAX_STRING_CHARS};

use crate::audio::ByteSink;
use std::io;
use symphonia::core::io::MediaSource;

/// The context an S3 object needs; `None` (local-only runs) is an error for S3 objects.
fn need_ctx<'a>(ctx: Option<&'a S3Context>, obj: &ObjectRef) -> Result<&'a S3Context, IoError> {
    ctx.ok_or_else(|| IoError::Setup(format!("{obj} needs S3 access, but none was configured")))
}

/// Opens `obj` for decoding: a local file, or an [`S3Reader`] (seekable, known length).
/// Local-only callers pass `ctx = None` and need no AWS configuration.
///
/// # Errors
/// For files [`IoError::NotAFile`] or [`IoError::Local`] (not found, permission denied); for S3 see
/// [`S3Reader::open`]; [`IoError::Setup`] for an S3 object without a context, or a prefix.
pub fn open_source(
    ctx: Option<&S3Context>,
    obj: &ObjectRef,
) -> Result<Box<dyn MediaSource>, IoError> {
    open_source_versioned(ctx, obj, &ObjectVersion::default()).map(|(source, _)| source)
}

/// [`open_source`] of the S3 version `pin` names ([`S3Reader::open_pinned`]; ignored for
/// files), also returning the S3 object's ETag (the version every read is pinned to; `None` for
/// files), which the manifest records for idempotency checks.
///
/// # Errors
/// As [`open_source`]; [`IoError::Changed`] when the object no longer has the pinned ETag.
pub fn open_source_versioned(
    ctx: Option<&S3Context>,
    obj: &ObjectRef,
    pin: &ObjectVersion,
) -> Result<(Box<dyn MediaSource>, Option<String>), IoError> {
    match obj {
        ObjectRef::File(path) => Ok((Box::new(open_file(path)?), None)),
        ObjectRef::S3 { bucket, key } => {
            if obj.is_prefix() {
                return Err(IoError::InvalidRef {
                    input: obj.to_string(),
                    reason: "an input must be an object, not a prefix".to_owned(),
                });
            }
            let ctx = need_ctx(ctx, obj)?;
            let reader = S3Reader::open_pinned(ctx, bucket, key, pin)?;
            let etag = Some(reader.etag().to_owned()).filter(|e| !e.is_empty());
            Ok((Box::new(reader), etag))
        }
    }
}

/// Creates an output for `obj`: a [`FileSink`] (atomic rename at commit) or an [`S3Sink`] that
/// refuses to overwrite an existing object ([`WriteMode::CreateNew`]; use [`S3Sink::create`]
/// for another mode) unless it carries the same `owner` ([`S3Sink::owned_by`]: the job's
/// identity, so a redelivered job can replace what its own killed attempt committed).
///
/// # Errors
/// For files the [`FileSink::create`] failure ([`IoError::LocalSink`]); for S3
/// [`IoError::Setup`] without a context or [`IoError::InvalidRef`] for a prefix. S3 problems
/// (missing bucket, permissions) surface on the first upload or at commit.
pub fn create_sink(
    ctx: Option<&S3Context>,
    obj: &ObjectRef,
    owner: Option<&str>,
) -> Result<Box<dyn ByteSink>, IoError> {
    match obj {
        ObjectRef::File(path) => Ok(Box::new(FileSink::create(path)?)),
        ObjectRef::S3 { bucket, key } => {
            if obj.is_prefix() {
                return Err(IoError::InvalidRef {
                    input: obj.to_string(),
                    reason: "an output must be an object, not a prefix".to_owned(),
                });
            }
            let ctx = need_ctx(ctx, obj)?;
            Ok(Box::new(
                S3Sink::create(ctx, bucket, key, WriteMode::CreateNew).owned_by(owner),
            ))
        }
    }
}

/// Writes a small object in one piece (a manifest, a report), replacing any existing one; a
/// local file is written atomically (temporary file + rename).
///
/// # Errors
/// As [`S3Context::put_object_bytes`], or the local file failure.
pub fn put_bytes(
    ctx: Option<&S3Context>,
    obj: &ObjectRef,
    bytes: Vec<u8>,
    content_type: Option<&str>,
) -> Result<(), IoError> {
    match obj {
        ObjectRef::File(path) => {
            let mut sink = FileSink::create(path)?;
            sink.write_all(&bytes)?;
            Box::new(sink).commit()?;
            Ok(())
        }
        ObjectRef::S3 { bucket, key } => {
            need_ctx(ctx, obj)?.put_object_bytes(bucket, key, bytes, content_type)
        }
    }
}

/// Copies `from` to `to` (for `preserveOriginal`): server-side for S3 → S3 (≤ 5 GiB), a file
/// copy for local → local. Replaces an existing target.
///
/// # Errors
/// [`IoError::Unsupported`] between a file and S3; otherwise as
/// [`S3Context::copy_s3_object`] or the local copy failure.
pub fn copy_object(
    ctx: Option<&S3Context>,
    from: &ObjectRef,
    to: &ObjectRef,
) -> Result<(), IoError> {
    match (from, to) {
        (
            ObjectRef::S3 {
                bucket: from_bucket,
                key: from_key,
            },
            ObjectRef::S3 {
                bucket: to_bucket,
                key: to_key,
            },
        ) => need_ctx(ctx, from)?.copy_s3_object(from_bucket, from_key, to_bucket, to_key),
        (ObjectRef::File(a), ObjectRef::File(b)) => {
            std::fs::copy(a, b).map_err(|source| IoError::Local {
                op: "copy to",
                path: b.clone(),
                source: io::Error::new(
                    source.kind(),
                    format!("{} → {}: {source}", a.display(), b.display()),
                ),
            })?;
            Ok(())
        }
        _ => Err(IoError::Unsupported(format!(
            "cannot copy {from} to {to}: copies between a local file and S3 are not supported"
        ))),
    }
}

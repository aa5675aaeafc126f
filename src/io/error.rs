//! [`IoError`]: every failure of the object I/O layer, with the object named (`s3://bucket/key` or
//! the file path) and the reason, plus a bounded [`kind`](IoError::kind) for metric labels and a
//! [`retryable`](IoError::retryable) flag for the job layer's redelivery decision.

use crate::audio::{io_reason, SinkError};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// A failure of the object I/O layer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IoError {
    /// A string is not a valid object reference (`s3://bucket/key` or a local path).
    #[error("invalid object reference {input:?}: {reason}")]
    InvalidRef {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`S3Settings`](super::S3Settings) out of range.
    #[error("invalid S3 settings: {0}")]
    InvalidSettings(String),
    /// The S3 client could not be set up (no region, runtime creation failed, called from inside
    /// an async runtime, an S3 object used without an S3 context).
    #[error("cannot set up S3 access: {0}")]
    Setup(String),
    /// The bucket does not exist.
    #[error("{target}: no such bucket")]
    NoSuchBucket {
        /// The object or prefix concerned (`s3://bucket/key`).
        target: String,
    },
    /// The bucket exists but the key does not.
    #[error("{target}: no such key")]
    NoSuchKey {
        /// The object concerned.
        target: String,
    },
    /// The credentials in use may not perform `op` on the object.
    #[error("{target}: access denied ({op})")]
    AccessDenied {
        /// The S3 operation (`HeadObject`, `GetObject`, `PutObject`, …).
        op: &'static str,
        /// The object concerned.
        target: String,
    },
    /// The object was replaced while it was being read: continuing would mix two versions.
    #[error("{target}: the object changed while it was being read ({detail})")]
    Changed {
        /// The object concerned.
        target: String,
        /// Expected and found ETag (or the server's precondition failure).
        detail: String,
    },
    /// The output already exists and the write was conditional on it not existing
    /// (`If-None-Match: *`): typically a duplicate run of the same job.
    #[error("{target}: already exists (refusing to overwrite)")]
    AlreadyExists {
        /// The object concerned.
        target: String,
    },
    /// An S3 request failed for another reason (network, throttling, server error, bad request).
    #[error("{op} {target} failed: {reason}")]
    Remote {
        /// The S3 operation.
        op: &'static str,
        /// The object or prefix concerned.
        target: String,
        /// The SDK's message, with the service error code when there is one.
        reason: String,
        /// Whether trying again later may succeed (network error, timeout, 5xx, throttling).
        retryable: bool,
    },
    /// A local input is not a regular file (a folder, a named pipe, a device): longwave reads
    /// files and S3 objects, whose length it can check.
    #[error("{}: not a regular file ({what}); give an audio file or an s3:// object", .path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead (`a named pipe`).
        what: &'static str,
    },
    /// A local file operation failed.
    #[error("cannot {op} {path}: {reason}", reason = io_reason(.source))]
    Local {
        /// What was being done ("open", "copy to", …).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Creating a local output failed.
    #[error(transparent)]
    LocalSink(#[from] SinkError),
    /// The operation is not available for this combination of objects.
    #[error("{0}")]
    Unsupported(String),
}

impl IoError {
    /// A short, bounded label for metrics (`error_type`).
    pub fn kind(&self) -> &'static str {
        match self {
            IoError::InvalidRef { .. } => "invalid_ref",
            IoError::InvalidSettings(_) => "invalid_settings",
            IoError::Setup(_) => "s3_setup",
            IoError::NoSuchBucket { .. } => "no_such_bucket",
            IoError::NoSuchKey { .. } => "no_such_key",
            IoError::AccessDenied { .. } => "access_denied",
            IoError::Changed { .. } => "object_changed",
            IoError::AlreadyExists { .. } => "already_exists",
            IoError::Remote { .. } => "s3_remote",
            IoError::NotAFile { .. } => "not_a_file",
            IoError::Local { .. } | IoError::LocalSink(_) => "local_io",
            IoError::Unsupported(_) => "unsupported",
        }
    }

    /// Whether the same operation may succeed if tried again later (transient network or server
    /// trouble). Missing objects, permissions, changed objects and bad input are not retryable.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            IoError::Remote {
                retryable: true,
                ..
            }
        )
    }

    /// Classifies an SDK error of operation `op` on `target`.
    ///
    /// 404 becomes [`IoError::NoSuchBucket`] or [`IoError::NoSuchKey`] by the service's error
    /// code (a HEAD response has no body, hence no code: callers of HEAD disambiguate
    /// themselves), 403 [`IoError::AccessDenied`]; everything else is [`IoError::Remote`].
    pub(crate) fn from_sdk<E>(
        op: &'static str,
        target: &str,
        error: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = error.raw_response().map(|r| r.status().as_u16());
        let code = error.code().map(str::to_owned);
        let target = target.to_owned();
        match (status, code.as_deref()) {
            (_, Some("NoSuchBucket")) => return IoError::NoSuchBucket { target },
            (_, Some("NoSuchKey")) => return IoError::NoSuchKey { target },
            (Some(403), _) | (_, Some("AccessDenied")) => {
                return IoError::AccessDenied { op, target }
            }
            _ => {}
        }
        let retryable = match &error {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            _ => match (status, code.as_deref()) {
                (Some(s), _) if s >= 500 || s == 429 => true,
                (_, Some("SlowDown" | "RequestTimeout" | "Throttling" | "InternalError")) => true,
                _ => false,
            },
        };
        let mut reason = DisplayErrorContext(&error).to_string();
        if let Some(s) = status {
            reason = format!("HTTP {s}: {reason}");
        }
        IoError::Remote {
            op,
            target,
            reason,
            retryable,
        }
    }

    /// The HTTP status of an SDK error, if a response arrived.
    pub(crate) fn sdk_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
        error.raw_response().map(|r| r.status().as_u16())
    }

    /// Converts into the encode layer's error for a sink writing to `target`.
    pub(crate) fn into_sink_error(self, op: &'static str, target: &str) -> SinkError {
        match self {
            IoError::LocalSink(e) => e,
            other => SinkError::Remote {
                op,
                target: target.to_owned(),
                retryable: other.retryable(),
                kind: other.kind(),
                reason: other.reason(),
            },
        }
    }

    /// The message without the object's name (for callers that print the name themselves).
    fn reason(&self) -> String {
        match self {
            IoError::NoSuchBucket { .. } => "no such bucket".to_owned(),
            IoError::NoSuchKey { .. } => "no such key".to_owned(),
            IoError::AccessDenied { op, .. } => format!("access denied ({op})"),
            IoError::Changed { detail, .. } => {
                format!("the object changed while it was being read ({detail})")
            }
            IoError::AlreadyExists { .. } => "already exists (refusing to overwrite)".to_owned(),
            IoError::Remote { op, reason, .. } => format!("{op} failed: {reason}"),
            other => other.to_string(),
        }
    }
}

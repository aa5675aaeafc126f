//! [`JobError`]: everything that can end a job, with a metric-friendly kind.

use super::SpecError;
use crate::audio::SinkError;
use crate::decode::DecodeError;
use crate::dsp::StageError;
use crate::encode::EncodeError;
use crate::io::IoError;

/// Why a job failed. Every message names the file or field at fault and the reason.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The chain or output specification was rejected.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The input could not be read or decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A stage cannot process this stream.
    #[error("{0}")]
    Stage(#[from] StageError),
    /// An output could not be encoded or written.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The output format cannot carry the processed stream (checked before anything is
    /// written).
    #[error("output {path}: {source}")]
    Format {
        /// The output path, folder or prefix.
        path: String,
        /// Why the format does not fit.
        #[source]
        source: EncodeError,
    },
    /// An output file could not be created or written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// An input or output object could not be read or written (S3 or local).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The output location is unusable (e.g. it would overwrite the input).
    #[error("output {path}: {reason}")]
    Output {
        /// The output path or object.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The manifest could not be written.
    #[error("cannot write manifest {path}: {reason}")]
    Manifest {
        /// The manifest path or object.
        path: String,
        /// Why.
        reason: String,
        /// The write failed transiently (an S3 503, a timeout): running the job again may
        /// succeed, so the worker retries it instead of dead-lettering it.
        retryable: bool,
    },
    /// The job's computed memory bound exceeds its budget (checked after the header is read,
    /// before any audio is decoded). Permanent: the same job needs the same memory.
    #[error("{input}: {reason}")]
    OverBudget {
        /// The job's input.
        input: String,
        /// The need, the budget and the largest part, naming the parameter to lower.
        reason: String,
    },
    /// The job was asked to stop (worker shutdown) before it finished; nothing was committed.
    #[error("processing of {input} was cancelled before it finished")]
    Cancelled {
        /// The job's input.
        input: String,
    },
    /// A pipeline thread panicked; the job is failed, the process carries on.
    #[error("internal error while processing {input}: {what}")]
    Panic {
        /// The job's input.
        input: String,
        /// Which part panicked, and its message.
        what: String,
    },
}

impl JobError {
    /// Low-cardinality error kind, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::Spec(_) => "invalid_spec",
            JobError::Decode(e) => e.kind(),
            JobError::Stage(_) => "unsupported_stream",
            JobError::Encode(e) | JobError::Format { source: e, .. } => e.kind(),
            JobError::Io(e) => e.kind(),
            JobError::Sink(SinkError::Remote { kind, .. }) => kind,
            JobError::Output { .. } | JobError::Sink(_) => "output",
            JobError::Manifest { .. } => "manifest",
            JobError::Panic { .. } => "panic",
            JobError::OverBudget { .. } => "over_budget",
            JobError::Cancelled { .. } => "cancelled",
        }
    }

    /// Whether retrying the same job later could succeed (transient I/O), as opposed to a bad
    /// input or spec that will fail again.
    pub fn retryable(&self) -> bool {
        match self {
            JobError::Decode(e) => e.retryable(),
            JobError::Io(e) => e.retryable(),
            JobError::Sink(SinkError::Remote { retryable, .. })
            | JobError::Encode(EncodeError::Sink(SinkError::Remote { retryable, .. })) => {
                *retryable
            }
            JobError::Manifest { retryable, .. } => *retryable,
            JobError::Cancelled { .. } => true,
            _ => false,
        }
    }
}

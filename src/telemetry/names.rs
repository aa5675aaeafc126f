//! The one catalogue of metric names, types, labels and buckets.
//!
//! Every metric longwave emits is listed here and nowhere else: code refers to the constants,
//! the exporter takes the histogram buckets from [`CATALOGUE`], and the dashboards test checks
//! every query against it. Conventions (Prometheus naming, as Vector's catalogue does): `longwave_` prefix, base units
//! (seconds, bytes, frames), counters end in `_total`, labels from bounded sets only — never a
//! job id or an object key (those go in log fields).

/// Deliveries taken off the queue, by message shape.
pub const JOBS_RECEIVED_TOTAL: &str = "longwave_jobs_received_total";
/// Jobs that ended, by outcome and error kind.
pub const JOBS_FINISHED_TOTAL: &str = "longwave_jobs_finished_total";
/// End-to-end wall time of a job, by outcome.
pub const JOB_DURATION_SECONDS: &str = "longwave_job_duration_seconds";
/// Time a message waited in the queue before a worker took it.
pub const QUEUE_WAIT_SECONDS: &str = "longwave_queue_wait_seconds";
/// Job slots of this process (the worker's `--max-jobs`).
pub const JOB_SLOTS: &str = "longwave_job_slots";
/// Job slots running a job now.
pub const JOB_SLOTS_BUSY: &str = "longwave_job_slots_busy";
/// Seconds of input audio decoded and processed.
pub const AUDIO_PROCESSED_SECONDS_TOTAL: &str = "longwave_audio_processed_seconds_total";
/// Corrupt packets the decoder skipped, by codec.
pub const DECODE_SKIPPED_PACKETS_TOTAL: &str = "longwave_decode_skipped_packets_total";
/// Decoded samples repaired before any stage saw them, by kind (`non_finite`, `out_of_range`).
pub const DECODE_REPAIRED_SAMPLES_TOTAL: &str = "longwave_decode_repaired_samples_total";
/// Samples an encoder had to clamp or zero, by kind (`clipped`, `non_finite`).
pub const ENCODE_REPAIRED_SAMPLES_TOTAL: &str = "longwave_encode_repaired_samples_total";
/// Frames each stage processed, by stage.
pub const STAGE_PROCESSED_FRAMES_TOTAL: &str = "longwave_stage_processed_frames_total";
/// Time one stage spends on one block, by stage.
pub const STAGE_BLOCK_DURATION_SECONDS: &str = "longwave_stage_block_duration_seconds";
/// Bytes read from inputs.
pub const SOURCE_READ_BYTES_TOTAL: &str = "longwave_source_read_bytes_total";
/// Bytes written to outputs (audio and manifests).
pub const SINK_WRITTEN_BYTES_TOTAL: &str = "longwave_sink_written_bytes_total";
/// Latency of S3 requests, by operation and outcome.
pub const S3_REQUEST_DURATION_SECONDS: &str = "longwave_s3_request_duration_seconds";
/// Writes sent without `If-None-Match` because the S3 server does not implement it (only with
/// `--s3-allow-unconditional-writes`).
pub const S3_UNCONDITIONAL_WRITES_TOTAL: &str = "longwave_s3_unconditional_writes_total";
/// Visibility-timeout extensions (heartbeats) of in-flight messages.
pub const QUEUE_VISIBILITY_EXTENSIONS_TOTAL: &str = "longwave_queue_visibility_extensions_total";
/// Visibility-timeout extensions SQS refused or that did not arrive (the message may reappear).
pub const QUEUE_VISIBILITY_EXTENSION_FAILURES_TOTAL: &str =
    "longwave_queue_visibility_extension_failures_total";
/// Messages in the job queue as SQS approximates them, by state (visible = the backlog,
/// in_flight = received and not yet deleted), sampled by each worker.
pub const QUEUE_MESSAGES: &str = "longwave_queue_messages";
/// Messages sent to the dead-letter queue (explicitly, or left for the redrive policy).
pub const DEAD_LETTERED_MESSAGES_TOTAL: &str = "longwave_dead_lettered_messages_total";
/// The computed memory bound of this process at its configured job slots.
pub const MEMORY_BUDGET_BYTES: &str = "longwave_memory_budget_bytes";
/// Resident set size of this process.
pub const MEMORY_RSS_BYTES: &str = "longwave_memory_rss_bytes";
/// Writes of job status records (`--status-table`), by status written and outcome.
pub const STATUS_WRITES_TOTAL: &str = "longwave_status_writes_total";
/// Constant 1, labelled with the version and git commit.
pub const BUILD_INFO: &str = "longwave_build_info";

/// What kind of Prometheus metric a catalogue entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic count (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution with explicit buckets (rendered as `_bucket`, `_sum`, `_count`).
    Histogram,
}

impl MetricKind {
    /// The `# TYPE` word Prometheus uses.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Full metric name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names this metric carries (always all of them).
    pub labels: &'static [&'static str],
    /// One line for `# HELP`.
    pub help: &'static str,
    /// Bucket upper bounds, histograms only.
    pub buckets: &'static [f64],
}

/// Job-length buckets, seconds: from a second to four hours.
const JOB_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
    14400.0,
];
/// Per-block stage cost, seconds: 4096 frames take tens of microseconds to a few milliseconds.
const BLOCK_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
];
/// S3 request latency, seconds.
const S3_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric longwave emits.
pub const CATALOGUE: &[MetricDef] = &[
    MetricDef {
        name: JOBS_RECEIVED_TOTAL,
        kind: MetricKind::Counter,
        labels: &["source"],
        help: "Queue deliveries taken, by message shape (job, legacy, s3, eventbridge, sns, test_event, invalid).",
        buckets: &[],
    },
    MetricDef {
        name: JOBS_FINISHED_TOTAL,
        kind: MetricKind::Counter,
        labels: &["outcome", "error_type"],
        help: "Jobs ended, by outcome (success, duplicate, failed, retry, released) and error kind (none when successful).",
        buckets: &[],
    },
    MetricDef {
        name: JOB_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["outcome"],
        help: "Wall time of a job from receipt to its end, by outcome.",
        buckets: JOB_BUCKETS,
    },
    MetricDef {
        name: QUEUE_WAIT_SECONDS,
        kind: MetricKind::Histogram,
        labels: &[],
        help: "Time from a message being sent to a worker receiving it.",
        buckets: JOB_BUCKETS,
    },
    MetricDef {
        name: JOB_SLOTS,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Job slots of this process.",
        buckets: &[],
    },
    MetricDef {
        name: JOB_SLOTS_BUSY,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Job slots running a job now.",
        buckets: &[],
    },
    MetricDef {
        name: AUDIO_PROCESSED_SECONDS_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Seconds of input audio processed (whole seconds per job).",
        buckets: &[],
    },
    MetricDef {
        name: DECODE_SKIPPED_PACKETS_TOTAL,
        kind: MetricKind::Counter,
        labels: &["codec"],
        help: "Corrupt packets skipped by the decoder, by codec.",
        buckets: &[],
    },
    MetricDef {
        name: DECODE_REPAIRED_SAMPLES_TOTAL,
        kind: MetricKind::Counter,
        labels: &["kind"],
        help: "Decoded samples repaired before processing: NaN/Inf zeroed (non_finite), \
               magnitudes beyond +24 dBFS clamped (out_of_range).",
        buckets: &[],
    },
    MetricDef {
        name: ENCODE_REPAIRED_SAMPLES_TOTAL,
        kind: MetricKind::Counter,
        labels: &["kind"],
        help: "Samples an encoder clamped to its range (clipped) or wrote as 0 (non_finite).",
        buckets: &[],
    },
    MetricDef {
        name: STAGE_PROCESSED_FRAMES_TOTAL,
        kind: MetricKind::Counter,
        labels: &["stage"],
        help: "Frames processed by each DSP stage.",
        buckets: &[],
    },
    MetricDef {
        name: STAGE_BLOCK_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["stage"],
        help: "Time one DSP stage takes for one block.",
        buckets: BLOCK_BUCKETS,
    },
    MetricDef {
        name: SOURCE_READ_BYTES_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Bytes read from inputs.",
        buckets: &[],
    },
    MetricDef {
        name: SINK_WRITTEN_BYTES_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Bytes written to outputs and manifests.",
        buckets: &[],
    },
    MetricDef {
        name: S3_REQUEST_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["op", "outcome"],
        help: "Latency of S3 requests, by operation and outcome (ok, error).",
        buckets: S3_BUCKETS,
    },
    MetricDef {
        name: S3_UNCONDITIONAL_WRITES_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "S3 writes sent without If-None-Match because the server does not implement it (allowed by --s3-allow-unconditional-writes): an existing object may have been replaced.",
        buckets: &[],
    },
    MetricDef {
        name: QUEUE_VISIBILITY_EXTENSIONS_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Visibility-timeout extensions of in-flight messages.",
        buckets: &[],
    },
    MetricDef {
        name: QUEUE_VISIBILITY_EXTENSION_FAILURES_TOTAL,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Visibility-timeout extensions that failed; the message may reappear and run twice.",
        buckets: &[],
    },
    MetricDef {
        name: QUEUE_MESSAGES,
        kind: MetricKind::Gauge,
        labels: &["state"],
        help: "Messages in the job queue as SQS approximates them, by state (visible, in_flight), sampled every 30 s.",
        buckets: &[],
    },
    MetricDef {
        name: DEAD_LETTERED_MESSAGES_TOTAL,
        kind: MetricKind::Counter,
        labels: &["route"],
        help: "Messages bound for the dead-letter queue, by route (explicit: sent by the worker; redrive: left to the queue's redrive policy).",
        buckets: &[],
    },
    MetricDef {
        name: MEMORY_BUDGET_BYTES,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Computed memory bound of this process at its job slots.",
        buckets: &[],
    },
    MetricDef {
        name: MEMORY_RSS_BYTES,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Resident set size of this process.",
        buckets: &[],
    },
    MetricDef {
        name: STATUS_WRITES_TOTAL,
        kind: MetricKind::Counter,
        labels: &["status", "outcome"],
        help: "Job status record writes (--status-table), by status (processing, complete, failed) and outcome (applied, kept_complete: the record was already complete for this input version, failed).",
        buckets: &[],
    },
    MetricDef {
        name: BUILD_INFO,
        kind: MetricKind::Gauge,
        labels: &["version", "git_sha"],
        help: "Constant 1, labelled with the build's version and git commit.",
        buckets: &[],
    },
];

/// The catalogue entry named `name`, if any.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        for m in CATALOGUE {
            assert!(m.name.starts_with("longwave_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == MetricKind::Counter,
                m.name.ends_with("_total"),
                "only counters end in _total: {}",
                m.name
            );
            assert_eq!(m.kind == MetricKind::Histogram, !m.buckets.is_empty());
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
            for label in m.labels {
                assert!(!["job_id", "key", "bucket", "message_id"].contains(label));
            }
        }
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len(), "duplicate names");
    }

    #[test]
    fn job_buckets_reach_hours() {
        let job = lookup(JOB_DURATION_SECONDS).map(|m| m.buckets);
        assert!(job.is_some_and(|b| b.last().is_some_and(|&top| top >= 3600.0)));
    }
}

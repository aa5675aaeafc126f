//! One message, start to end: parse it, skip jobs whose outputs are already complete, run the
//! others, and decide what becomes of the message ([`Disposition`]).
//!
//! Runs on a job thread; the S3 and pipeline calls block. Nothing here touches the queue: the
//! caller acts on the disposition, so the message is deleted only after every output and
//! manifest is complete.

use super::message::{parse_message, MessageError, Routing, WorkItem};
use super::queue::Received;
use crate::io::{ObjectRef, ObjectVersion, S3Context, StatusError, StatusTable, StatusWrite};
use crate::job::status::StatusRecord;
use crate::job::{self, Job, JobError, PlannedJob, Progress, RunnerConfig};
use crate::telemetry::{names, OUTCOMES};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the worker does with a message once its jobs ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Every job is complete (or was already): delete the message.
    Delete,
    /// A transient failure: make the message visible again after `delay`.
    Retry {
        /// Backoff before the next attempt.
        delay: Duration,
    },
    /// A permanent failure: to the dead-letter queue.
    DeadLetter {
        /// The failing job's error kind.
        error_type: &'static str,
        /// The error message.
        reason: String,
    },
    /// The worker is shutting down and cancelled the job: visible again at once.
    Release,
    /// A permanent failure already copied to the explicit dead-letter queue: delete.
    SentToDlq,
}

/// What one job's run came to.
#[derive(Debug)]
enum JobOutcome {
    Success,
    /// Complete outputs for this input version were already there.
    Duplicate,
    /// The event named an object version that has been replaced since (no version id to read
    /// it by): the newer version's own event processes the object.
    Superseded,
    Failed {
        error_type: &'static str,
        reason: String,
        retryable: bool,
    },
    Cancelled,
}

/// Everything a job thread needs, shared by all job threads.
pub struct JobContext {
    /// S3 access for inputs, outputs and manifests.
    pub s3: Arc<S3Context>,
    /// Pipeline tuning.
    pub runner: RunnerConfig,
    /// Output routing for event messages.
    pub routing: Routing,
    /// Set at the end of the shutdown grace period: running jobs stop without committing.
    pub cancel: Arc<AtomicBool>,
    /// Where job status records go (`--status-table`); `None` = nowhere.
    pub status: Option<StatusTable>,
    /// This worker in status records (`workerId`): host name and process id.
    pub worker_id: String,
}

/// Progress of a worker job: nothing to show, but it carries the cancellation flag.
struct CancelFlag<'a>(&'a AtomicBool);

impl Progress for CancelFlag<'_> {
    fn start(&self, _total_frames: Option<u64>) {}
    fn advance(&self, _frames: u64) {}
    fn finish(&self) {}
    fn should_stop(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Handles one delivery and says what to do with the message.
pub fn handle_message(cx: &JobContext, message: &Received) -> Disposition {
    let parsed = match parse_message(&message.body, &cx.routing) {
        Ok(parsed) => parsed,
        Err(error) => return rejected(message, &error),
    };
    metrics::counter!(names::JOBS_RECEIVED_TOTAL, "source" => parsed.kind.label()).increment(1);
    if parsed.items.is_empty() {
        tracing::info!(
            job_id = %message.message_id,
            source = parsed.kind.label(),
            "Message has no job (test event or no object-created record); deleting it."
        );
        return Disposition::Delete;
    }
    let total: usize = parsed.items.iter().map(|i| i.plan.jobs.len()).sum();
    let mut disposition = Disposition::Delete;
    let mut n = 0;
    for item in &parsed.items {
        let mut status = ItemStatus::new(cx, item);
        if let Some(copy) = &item.plan.preserve_original {
            if let Err(error) = crate::io::copy_object(Some(&cx.s3), &item.plan.input, copy) {
                let failed = JobOutcome::Failed {
                    error_type: error.kind(),
                    reason: error.to_string(),
                    retryable: error.retryable(),
                };
                let failed = match status.as_mut() {
                    Some(status) => status.after_job(failed, None),
                    None => failed,
                };
                record(&failed, 0.0);
                tracing::warn!(
                    job_id = %message.message_id,
                    key = %item.plan.input,
                    error_type = error.kind(),
                    error = %error,
                    "Cannot preserve the original; its jobs are not run."
                );
                disposition = merge(disposition, to_disposition(&failed, message));
                continue;
            }
        }
        for (index, task_job) in item.plan.jobs.iter().enumerate() {
            n += 1;
            let last_of_item = index + 1 == item.plan.jobs.len();
            let job_id = if total > 1 {
                format!("{}#{n}", message.message_id)
            } else {
                message.message_id.clone()
            };
            let span = tracing::info_span!(
                "job",
                job_id = %job_id,
                key = %item.plan.input,
                receive_count = message.receive_count
            );
            let _entered = span.enter();
            let started = Instant::now();
            tracing::info!(output = %task_job.output, "Job started.");
            let (outcome, manifest) = run_job(cx, message, item, task_job, status.as_mut());
            let outcome = match status.as_mut() {
                Some(status) => {
                    let outcome = status.after_job(outcome, manifest);
                    // The item's COMPLETE is written with its last job, so a failed write is
                    // that job's outcome (a retry), counted once.
                    if last_of_item {
                        status.finish(outcome, item.plan.jobs.len())
                    } else {
                        outcome
                    }
                }
                None => outcome,
            };
            let elapsed = started.elapsed().as_secs_f64();
            record(&outcome, elapsed);
            match &outcome {
                JobOutcome::Success => {
                    tracing::info!(outcome = "success", duration_s = elapsed, "Job finished.")
                }
                JobOutcome::Duplicate => tracing::info!(
                    outcome = "duplicate",
                    duration_s = elapsed,
                    "Outputs for this input version are already complete; not reprocessing."
                ),
                JobOutcome::Superseded => tracing::info!(
                    outcome = "superseded",
                    duration_s = elapsed,
                    "The object was replaced after this event; its newer event processes it."
                ),
                JobOutcome::Failed {
                    error_type,
                    reason,
                    retryable: true,
                } => tracing::warn!(
                    outcome = "retry",
                    error_type,
                    error = %reason,
                    duration_s = elapsed,
                    "Job failed; the message will be retried."
                ),
                JobOutcome::Failed {
                    error_type, reason, ..
                } => tracing::warn!(
                    outcome = "failed",
                    error_type,
                    error = %reason,
                    duration_s = elapsed,
                    "Job failed permanently; the message goes to the dead-letter queue."
                ),
                JobOutcome::Cancelled => tracing::info!(
                    outcome = "released",
                    duration_s = elapsed,
                    "Job cancelled by shutdown; nothing was committed."
                ),
            }
            disposition = merge(disposition, to_disposition(&outcome, message));
            if matches!(
                disposition,
                Disposition::Release | Disposition::Retry { .. }
            ) {
                // The whole message comes back; the jobs after this one run then.
                return disposition;
            }
        }
    }
    disposition
}

/// The status record of one work item (one input, one request: a legacy message asking for
/// several formats is several jobs and one record). PROCESSING is written before the first job
/// that runs, COMPLETE after the last when every job's outputs are complete, FAILED when a job
/// fails.
struct ItemStatus<'a> {
    record: StatusRecord<'a>,
    /// PROCESSING was written by this delivery.
    processing: bool,
    /// A job failed (and FAILED was written): no COMPLETE for this delivery.
    failed: bool,
    /// The record was already COMPLETE for this input version: nothing more to write.
    kept_complete: bool,
    /// The manifests of the jobs that are complete (run now or found complete), with where
    /// each was written.
    manifests: Vec<(serde_json::Value, String)>,
}

impl<'a> ItemStatus<'a> {
    /// The item's record, when the worker keeps status records; pinned to the input's current
    /// version (a COMPLETE record of an earlier version, a replaced recording, does not stop
    /// this one). When the version cannot be read the jobs report the input's error anyway.
    fn new(cx: &'a JobContext, item: &WorkItem) -> Option<Self> {
        let table = cx.status.as_ref()?;
        let version = match &item.plan.input {
            ObjectRef::S3 { bucket, key } => cx.s3.head_etag(bucket, key).ok().flatten(),
            ObjectRef::File(_) => None,
        };
        let key = item
            .status_key
            .clone()
            .unwrap_or_else(|| item.plan.input.to_string());
        Some(Self {
            record: StatusRecord::new(table, key, version.unwrap_or_default()),
            processing: false,
            failed: false,
            kept_complete: false,
            manifests: Vec::new(),
        })
    }

    /// Before a job runs (after its duplicate check): PROCESSING, once per delivery. `Some`
    /// stops the job: the record is COMPLETE for this version already (a duplicate), or it
    /// cannot be written (a retry).
    fn before_run(&mut self, cx: &JobContext, input: &str, delivery: u32) -> Option<JobOutcome> {
        if self.processing {
            return None;
        }
        match self.record.processing(input, &cx.worker_id, Some(delivery)) {
            Ok(StatusWrite::Applied) => {
                self.processing = true;
                None
            }
            // COMPLETE for this version already (its manifest is gone or elsewhere): a late
            // delivery never moves a finished record back, nor runs the job again.
            Ok(StatusWrite::KeptComplete) => {
                self.kept_complete = true;
                Some(JobOutcome::Duplicate)
            }
            Err(error) => Some(status_failure(&error)),
        }
    }

    /// After a job: keeps its manifest, or writes FAILED. A failed status write turns the
    /// outcome into a retry.
    fn after_job(
        &mut self,
        outcome: JobOutcome,
        manifest: Option<(serde_json::Value, String)>,
    ) -> JobOutcome {
        match &outcome {
            JobOutcome::Success | JobOutcome::Duplicate => {
                if let Some(manifest) = manifest {
                    self.manifests.push(manifest);
                }
                outcome
            }
            JobOutcome::Failed {
                error_type: "status_write",
                ..
            } => outcome,
            JobOutcome::Failed {
                error_type,
                reason,
                retryable,
            } => {
                self.failed = true;
                match self.record.failed(error_type, reason, *retryable) {
                    Ok(_) => outcome,
                    Err(error) => status_failure(&error),
                }
            }
            JobOutcome::Superseded | JobOutcome::Cancelled => outcome,
        }
    }

    /// After the item's last job (whose outcome is `outcome`) of `jobs`: COMPLETE when every
    /// one is complete. A failed write makes the outcome a retry.
    fn finish(&mut self, outcome: JobOutcome, jobs: usize) -> JobOutcome {
        let complete = matches!(outcome, JobOutcome::Success | JobOutcome::Duplicate)
            && !self.failed
            && !self.kept_complete
            && self.manifests.len() == jobs;
        if !complete {
            return outcome;
        }
        match self.record.complete(&self.manifests) {
            Ok(_) => outcome,
            Err(error) => status_failure(&error),
        }
    }
}

/// A message that could not be parsed: counted, logged, dead-lettered.
fn rejected(message: &Received, error: &MessageError) -> Disposition {
    metrics::counter!(names::JOBS_RECEIVED_TOTAL, "source" => "invalid").increment(1);
    let outcome = JobOutcome::Failed {
        error_type: error.kind(),
        reason: error.to_string(),
        retryable: false,
    };
    record(&outcome, 0.0);
    tracing::warn!(
        job_id = %message.message_id,
        outcome = "failed",
        error_type = error.kind(),
        error = %error,
        "Message rejected; it goes to the dead-letter queue."
    );
    to_disposition(&outcome, message)
}

/// The more severe of two dispositions: release > retry > dead letter > delete.
fn merge(a: Disposition, b: Disposition) -> Disposition {
    fn rank(d: &Disposition) -> u8 {
        match d {
            Disposition::Delete => 0,
            Disposition::DeadLetter { .. } | Disposition::SentToDlq => 1,
            Disposition::Retry { .. } => 2,
            Disposition::Release => 3,
        }
    }
    if rank(&b) > rank(&a) {
        b
    } else {
        a
    }
}

fn to_disposition(outcome: &JobOutcome, message: &Received) -> Disposition {
    match outcome {
        JobOutcome::Success | JobOutcome::Duplicate | JobOutcome::Superseded => Disposition::Delete,
        JobOutcome::Cancelled => Disposition::Release,
        JobOutcome::Failed {
            retryable: true, ..
        } => Disposition::Retry {
            delay: retry_delay(message.receive_count),
        },
        JobOutcome::Failed {
            error_type, reason, ..
        } => Disposition::DeadLetter {
            error_type,
            reason: reason.clone(),
        },
    }
}

/// Backoff before a retry: 10 s × 2^(deliveries − 1), capped at 15 min, with ±25 % jitter so
/// messages that failed together do not come back together.
pub fn retry_delay(receive_count: u32) -> Duration {
    const MESSAGES: crate::io::Backoff = crate::io::Backoff {
        first: Duration::from_secs(10),
        cap: Duration::from_secs(900),
        jitter: (0.75, 1.25),
    };
    MESSAGES.delay(receive_count.saturating_sub(1))
}

fn record(outcome: &JobOutcome, seconds: f64) {
    let (label, error_type) = match outcome {
        JobOutcome::Success => ("success", "none"),
        JobOutcome::Duplicate => ("duplicate", "none"),
        JobOutcome::Superseded => ("superseded", "none"),
        JobOutcome::Failed {
            error_type,
            retryable: true,
            ..
        } => ("retry", *error_type),
        JobOutcome::Failed { error_type, .. } => ("failed", *error_type),
        JobOutcome::Cancelled => ("released", "cancelled"),
    };
    debug_assert!(OUTCOMES.contains(&label));
    metrics::counter!(names::JOBS_FINISHED_TOTAL, "outcome" => label, "error_type" => error_type)
        .increment(1);
    metrics::histogram!(names::JOB_DURATION_SECONDS, "outcome" => label).record(seconds);
}

/// Where a job's manifest goes ([`job::manifest_path_for`] of the output as planned): known
/// before processing, so a redelivery can find it.
pub fn manifest_location(output: &ObjectRef) -> ObjectRef {
    job::manifest_path_for(&job::OutputTarget::named_by(output))
}

/// The largest manifest the worker reads back (a split into thousands of pieces stays far
/// below it).
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Runs one job of a message (idempotency check, the item's PROCESSING record before the run,
/// the run, the failure manifest). Returns the outcome and, for a success or a duplicate whose
/// manifest was read, the manifest as JSON with its location (for the COMPLETE record).
fn run_job(
    cx: &JobContext,
    message: &Received,
    item: &WorkItem,
    task: &PlannedJob,
    status: Option<&mut ItemStatus<'_>>,
) -> (JobOutcome, Option<(serde_json::Value, String)>) {
    let location = manifest_location(&task.output).to_string();
    let (outcome, manifest) = run_job_unrecorded(cx, message, item, task, status);
    (outcome, manifest.map(|m| (m, location)))
}

/// A status write that failed: the job is retried (outputs already committed stay, and the
/// redelivery finds them complete and writes the record again).
fn status_failure(error: &StatusError) -> JobOutcome {
    tracing::warn!(error = %error, "Cannot write the job's status record; retrying the job.");
    JobOutcome::Failed {
        error_type: "status_write",
        reason: error.to_string(),
        retryable: true,
    }
}

/// [`run_job`] without the manifest's location: a duplicate the record itself stopped has no
/// manifest (its record stays COMPLETE).
fn run_job_unrecorded(
    cx: &JobContext,
    message: &Received,
    item: &WorkItem,
    task: &PlannedJob,
    status: Option<&mut ItemStatus<'_>>,
) -> (JobOutcome, Option<serde_json::Value>) {
    let manifest = manifest_location(&task.output);
    let ObjectRef::S3 {
        bucket: in_bucket,
        key: in_key,
    } = &item.plan.input
    else {
        let outcome = JobOutcome::Failed {
            error_type: "invalid_message",
            reason: format!("{}: the worker reads S3 objects only", item.plan.input),
            retryable: false,
        };
        return (outcome, None);
    };
    // Idempotency: the current input version against a complete manifest.
    match already_complete(cx, in_bucket, in_key, &manifest, task) {
        Ok(Some(existing)) => return (JobOutcome::Duplicate, Some(existing)),
        Ok(None) => {}
        Err(error) => {
            let outcome = JobOutcome::Failed {
                error_type: error.kind(),
                reason: error.to_string(),
                retryable: error.retryable(),
            };
            return (outcome, None);
        }
    }
    if let Some(status) = status {
        let input = item.plan.input.to_string();
        if let Some(stop) = status.before_run(cx, &input, message.receive_count) {
            return (stop, None);
        }
    }
    let job = Job {
        input: item.plan.input.clone(),
        output: Some(task.output.clone()),
        preset: task.preset.clone(),
        chain: task.chain.clone(),
        format: task.format,
        manifest: Some(manifest.clone()),
        overwrite: false,
        // The version the event reported (job messages name none: the current object).
        input_version: ObjectVersion {
            version_id: item.version_id.clone(),
            etag: item.etag.clone(),
        },
        waveform: task.waveform,
    };
    let progress = CancelFlag(&cx.cancel);
    let result = catch_unwind(AssertUnwindSafe(|| {
        job::run(&job, Some(&cx.s3), &cx.runner, &progress)
    }));
    let error = match result {
        Ok(Ok(done)) => {
            let written = serde_json::to_value(&done).unwrap_or(serde_json::Value::Null);
            return (JobOutcome::Success, Some(written));
        }
        Ok(Err(JobError::Cancelled { .. })) => return (JobOutcome::Cancelled, None),
        Ok(Err(error)) if error.kind() == "object_changed" && item.version_id.is_none() => {
            // Read pinned to the event's ETag (or the ETag at open) and the object is another
            // one now: S3 sends an event for the newer version, which is processed then.
            if item.etag.is_some() {
                return (JobOutcome::Superseded, None);
            }
            error
        }
        Ok(Err(error)) if error.kind() == "already_exists" => {
            // An output of this job's own earlier attempt (a run killed before its manifest) is
            // replaced by the sink (it carries this job's identity), so an existing output here
            // belongs to another job: another input, or another version of this input. Unless a
            // concurrent delivery's manifest for this very input appears, it must not be
            // acknowledged silently.
            if let Some(existing) = manifest_appears(cx, in_bucket, in_key, &manifest, task) {
                return (JobOutcome::Duplicate, Some(existing));
            }
            JobError::Output {
                path: task.output.to_string(),
                reason: format!(
                    "an output already exists and was written by another job (another input, or \
                     another version of this one), which {manifest} does not describe; remove it \
                     to process again ({error})"
                ),
            }
        }
        Ok(Err(error)) => error,
        Err(panic) => JobError::Panic {
            input: item.plan.input.to_string(),
            what: format!("panic: {}", crate::audio::panic_message(panic.as_ref())),
        },
    };
    let retryable = error.retryable();
    if !retryable {
        write_failure_manifest(cx, &manifest, message, item, task, &error);
    }
    let outcome = JobOutcome::Failed {
        error_type: error.kind(),
        reason: error.to_string(),
        retryable,
    };
    (outcome, None)
}

/// Waits a little (10 s at most) for a concurrent run's manifest to appear; returns it.
fn manifest_appears(
    cx: &JobContext,
    bucket: &str,
    key: &str,
    manifest: &ObjectRef,
    task: &PlannedJob,
) -> Option<serde_json::Value> {
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        if let Ok(Some(existing)) = already_complete(cx, bucket, key, manifest, task) {
            return Some(existing);
        }
    }
    None
}

/// The manifest at `manifest`, when it exists and describes a successful run of the same chain
/// on the input's current version (same ETag).
fn already_complete(
    cx: &JobContext,
    bucket: &str,
    key: &str,
    manifest: &ObjectRef,
    task: &PlannedJob,
) -> Result<Option<serde_json::Value>, crate::io::IoError> {
    let ObjectRef::S3 {
        bucket: m_bucket,
        key: m_key,
    } = manifest
    else {
        return Ok(None);
    };
    let Some(etag) = cx.s3.head_etag(bucket, key)? else {
        return Ok(None); // the run reports the missing input
    };
    let Some(bytes) = cx
        .s3
        .get_small_object(m_bucket, m_key, MAX_MANIFEST_BYTES)?
    else {
        return Ok(None);
    };
    let Ok(existing) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(None); // unreadable: process again, which rewrites it
    };
    let chain = serde_json::to_value(&task.chain).ok();
    let complete = existing.get("status").is_none()
        && existing.pointer("/input/etag").and_then(|v| v.as_str()) == Some(etag.as_str())
        && existing.get("chain") == chain.as_ref()
        && has_waveform(&existing, task.waveform.as_ref());
    Ok(complete.then_some(existing))
}

/// Whether a manifest lists the waveform file a job asks for, with the same settings (a job
/// asking for none is satisfied either way).
fn has_waveform(manifest: &serde_json::Value, wanted: Option<&impl serde::Serialize>) -> bool {
    let Some(wanted) = wanted else {
        return true;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(wanted) else {
        return false;
    };
    fields
        .iter()
        .all(|(name, value)| manifest.get("waveform").and_then(|w| w.get(name)) == Some(value))
}

/// Writes `{"status":"failed", …}` where the manifest would have gone, so whoever looks for the
/// result finds the reason. Best effort: a failure to write it is logged, the message still
/// goes to the dead-letter queue with the reason.
fn write_failure_manifest(
    cx: &JobContext,
    manifest: &ObjectRef,
    message: &Received,
    item: &WorkItem,
    task: &PlannedJob,
    error: &JobError,
) {
    let failed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = serde_json::json!({
        "status": "failed",
        "longwave_version": env!("CARGO_PKG_VERSION"),
        "input": {
            "path": item.plan.input.to_string(),
            "etag": item.etag,
            "version_id": item.version_id,
        },
        "preset": task.preset,
        "chain": task.chain,
        "output": task.output.to_string(),
        "error": {
            "kind": error.kind(),
            "message": error.to_string(),
            "retryable": false,
        },
        "message_id": message.message_id,
        "receive_count": message.receive_count,
        "failed_at_unix_s": failed_at,
    });
    let mut json = serde_json::to_vec_pretty(&body).unwrap_or_default();
    json.push(b'\n');
    if let Err(e) = crate::io::put_bytes(Some(&cx.s3), manifest, json, Some("application/json")) {
        tracing::warn!(error = %e, manifest = %manifest, "Cannot write the failure manifest.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_satisfies_a_waveform_request_only_with_the_same_settings() {
        use crate::encode::{WaveformFormat, WaveformSettings};
        let asked = WaveformSettings::default();
        let manifest = |settings: WaveformSettings| {
            let mut waveform = serde_json::to_value(settings).unwrap();
            waveform["length"] = serde_json::json!(10);
            serde_json::json!({ "waveform": waveform })
        };
        assert!(has_waveform(&manifest(asked), Some(&asked)));
        assert!(has_waveform(
            &serde_json::json!({}),
            None::<&WaveformSettings>
        ));
        assert!(!has_waveform(&serde_json::json!({}), Some(&asked)));
        let other = WaveformSettings {
            format: WaveformFormat::Json,
            ..asked
        };
        assert!(!has_waveform(&manifest(other), Some(&asked)));
        let split = WaveformSettings {
            split_channels: true,
            ..asked
        };
        assert!(!has_waveform(&manifest(split), Some(&asked)));
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let first = retry_delay(1).as_secs_f64();
        assert!((7.5..=12.5).contains(&first), "{first}");
        let third = retry_delay(3).as_secs_f64();
        assert!((30.0..=50.0).contains(&third), "{third}");
        let late = retry_delay(40).as_secs_f64();
        assert!((675.0..=1125.0).contains(&late), "{late}");
    }

    #[test]
    fn manifest_sits_under_a_prefix_or_beside_an_object() {
        let prefix = ObjectRef::parse("s3://bkt/processed/a/").unwrap();
        assert_eq!(
            manifest_location(&prefix).to_string(),
            "s3://bkt/processed/a/manifest.json"
        );
        let object = ObjectRef::parse("s3://bkt/out/a.mp3").unwrap();
        assert_eq!(
            manifest_location(&object).to_string(),
            "s3://bkt/out/a.mp3.manifest.json"
        );
    }

    #[test]
    fn merge_keeps_the_most_severe() {
        let dead = Disposition::DeadLetter {
            error_type: "corrupt",
            reason: "x".into(),
        };
        assert_eq!(merge(Disposition::Delete, dead.clone()), dead);
        assert_eq!(merge(dead.clone(), Disposition::Delete), dead);
        assert_eq!(merge(dead, Disposition::Release), Disposition::Release);
    }
}

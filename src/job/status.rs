//! What a job's status record says at each step (one record per request: a request that makes
//! several jobs, a legacy message asking for several formats, keeps one record for them all) (see [`crate::io::StatusTable`] for the
//! table, its conditions and why a failed write is retryable): built here from what the job
//! layer knows, the manifest and the error, and counted in the metrics.
//!
//! Attributes written besides `status`, `inputVersion` and `attempts`:
//! - `PROCESSING`: `input`, `workerId`, `delivery` (the queue's receive count, worker only),
//!   `startedAt`;
//! - `COMPLETE`: `completedAt`, `manifest` (its location; a list when one request made several
//!   jobs), `outputCount`, `outputs` (the first [`MAX_LISTED_OUTPUTS`]: `path`, `format`,
//!   `durationS`, `bytes`, `startMs`/`endMs` for pieces), `durationS` (the input's),
//!   `wallTimeS`, `realtimeFactor`, `clippedSamples`, `levels` (the numbers the stages measured:
//!   threshold, loudness, gain …), and `waveform` (its location) when the job wrote one;
//! - `FAILED`: `failedAt`, `errorType`, `error` (bounded), `retryable`.

use crate::io::{IoError, JobStatus, ObjectRef, S3Context, StatusError, StatusTable, StatusWrite};
use crate::telemetry::names;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Outputs listed in a `COMPLETE` record (the manifest lists them all): keeps a split into
/// thousands of pieces far below DynamoDB's 400 KB item limit.
pub const MAX_LISTED_OUTPUTS: usize = 100;

/// The record of one job: its table, key and input version.
#[derive(Debug, Clone)]
pub struct StatusRecord<'a> {
    table: &'a StatusTable,
    key: String,
    version: String,
}

impl<'a> StatusRecord<'a> {
    /// The record `key` in `table`, for the input version `version` (an S3 ETag, or a local
    /// file's size and modification time).
    pub fn new(table: &'a StatusTable, key: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            table,
            key: key.into(),
            version: version.into(),
        }
    }

    /// The record's key value.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Marks the job `PROCESSING` by `worker` (adds 1 to `attempts`); `delivery` is the queue's
    /// receive count when there is a queue. [`StatusWrite::KeptComplete`] means the record is
    /// already `COMPLETE` for this input version: the job is done and must not run again.
    ///
    /// # Errors
    /// The write failed.
    pub fn processing(
        &self,
        input: &str,
        worker: &str,
        delivery: Option<u32>,
    ) -> Result<StatusWrite, StatusError> {
        let mut fields = vec![
            ("input", json!(input)),
            ("workerId", json!(worker)),
            ("startedAt", json!(now_rfc3339())),
        ];
        if let Some(delivery) = delivery {
            fields.push(("delivery", json!(delivery)));
        }
        self.write(JobStatus::Processing, &fields)
    }

    /// Marks the job `COMPLETE` from its manifests (as JSON, each with where it was written: a
    /// fresh run's, or one a redelivery found complete). A request for several outputs (a
    /// legacy message asking for several formats) is several jobs and one record: their outputs
    /// are listed together, `manifest` is then the list of their locations.
    ///
    /// # Errors
    /// The write failed.
    pub fn complete(&self, manifests: &[(Value, String)]) -> Result<StatusWrite, StatusError> {
        let outputs: Vec<&Value> = manifests
            .iter()
            .flat_map(|(m, _)| m["outputs"].as_array().into_iter().flatten())
            .collect();
        let listed: Vec<Value> = outputs
            .iter()
            .take(MAX_LISTED_OUTPUTS)
            .map(|o| {
                let mut entry = json!({
                    "path": o["path"], "format": o["format"],
                    "durationS": o["duration_s"], "bytes": o["bytes"],
                });
                for (from, to) in [("start_ms", "startMs"), ("end_ms", "endMs")] {
                    if let Some(ms) = o.get(from).filter(|v| !v.is_null()) {
                        entry[to] = ms.clone();
                    }
                }
                entry
            })
            .collect();
        let clipped: u64 = outputs
            .iter()
            .filter_map(|o| o["clipped_samples"].as_u64())
            .sum();
        let first = manifests.first().map_or(&Value::Null, |(m, _)| m);
        let wall: f64 = manifests
            .iter()
            .filter_map(|(m, _)| m["wall_time_s"].as_f64())
            .sum();
        let duration = first["input"]["duration_s"].as_f64().unwrap_or(0.0);
        let locations: Vec<&str> = manifests.iter().map(|(_, at)| at.as_str()).collect();
        let mut fields = vec![
            ("completedAt", json!(now_rfc3339())),
            (
                "manifest",
                match locations.as_slice() {
                    [one] => json!(one),
                    several => json!(several),
                },
            ),
            ("outputCount", json!(outputs.len())),
            ("outputs", Value::Array(listed)),
            ("durationS", json!(duration)),
            ("wallTimeS", json!(wall)),
            (
                "realtimeFactor",
                json!(if wall > 0.0 { duration / wall } else { 0.0 }),
            ),
            ("clippedSamples", json!(clipped)),
            ("levels", levels(first)),
        ];
        let waveforms: Vec<&Value> = manifests
            .iter()
            .filter_map(|(m, _)| m["waveform"].get("path"))
            .collect();
        if let Some(path) = waveforms.first() {
            fields.push(("waveform", (*path).clone()));
        }
        self.write(JobStatus::Complete, &fields)
    }

    /// Marks the job `FAILED` with its error kind and message, and whether it will be retried
    /// (unless the record is already `COMPLETE` for this input version).
    ///
    /// # Errors
    /// The write failed.
    pub fn failed(
        &self,
        error_type: &str,
        error: &str,
        retryable: bool,
    ) -> Result<StatusWrite, StatusError> {
        self.write(
            JobStatus::Failed,
            &[
                ("failedAt", json!(now_rfc3339())),
                ("errorType", json!(error_type)),
                ("error", json!(error)),
                ("retryable", json!(retryable)),
            ],
        )
    }

    fn write(
        &self,
        status: JobStatus,
        fields: &[(&str, Value)],
    ) -> Result<StatusWrite, StatusError> {
        let result = self.table.write(&self.key, &self.version, status, fields);
        let outcome = match &result {
            Ok(StatusWrite::Applied) => "applied",
            Ok(StatusWrite::KeptComplete) => "kept_complete",
            Err(_) => "failed",
        };
        metrics::counter!(
            names::STATUS_WRITES_TOTAL,
            "status" => status.label(),
            "outcome" => outcome
        )
        .increment(1);
        result
    }
}

/// The numbers the stages measured (their reports' top-level numeric fields, e.g.
/// `silence.threshold_db`, `normalize.measured_lufs`), keyed `stage.field`; lists and nested
/// objects (the silent ranges) stay in the manifest.
fn levels(manifest: &Value) -> Value {
    let mut levels = serde_json::Map::new();
    for report in manifest["stage_reports"].as_array().into_iter().flatten() {
        let stage = report["stage"].as_str().unwrap_or("stage");
        if let Some(fields) = report["report"].as_object() {
            for (name, value) in fields {
                if value.is_number() {
                    levels.insert(format!("{stage}.{name}"), value.clone());
                }
            }
        }
    }
    Value::Object(levels)
}

/// This process as a status record names it (`workerId`): `<host name>:<pid>` (on Fargate the
/// host name is the task's private DNS name).
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}:{}", std::process::id())
}

/// The version a status record of `input` is pinned to: the S3 object's current ETag, or a
/// local file's size and modification time (empty when the input does not exist: the job then
/// fails and says so).
///
/// # Errors
/// The S3 HEAD request failed.
pub fn input_version(input: &ObjectRef, s3: &S3Context) -> Result<String, IoError> {
    match input {
        ObjectRef::S3 { bucket, key } => Ok(s3.head_etag(bucket, key)?.unwrap_or_default()),
        ObjectRef::File(path) => Ok(super::identity::local_version(path).unwrap_or_default()),
    }
}

/// The current UTC time as RFC 3339 (`2026-12-04T15:02:47Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `secs` since the Unix epoch as RFC 3339 UTC (the civil-from-days algorithm of H. Hinnant's
/// date library; no time crate needed for one format). The load-test harness's reports use it
/// too.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_396_567), "2026-12-04T15:02:47Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn levels_are_the_reports_numbers() {
        let manifest = json!({"stage_reports": [
            {"index": 0, "stage": "silence", "report": {"threshold_db": -30.0, "silent_ranges_ms": [[1, 2]], "mode": "pydub"}},
            {"index": 1, "stage": "normalize", "report": {"measured_lufs": -23.1, "gain_db": 7.1}}
        ]});
        assert_eq!(
            levels(&manifest),
            json!({"silence.threshold_db": -30.0, "normalize.measured_lufs": -23.1, "normalize.gain_db": 7.1})
        );
    }
}

//! One load run: send the schedule's messages on time, watch for each job's manifest, and sample
//! every worker's metrics, the queues and (local mode) the workers' CPU once a second.
//!
//! A job is finished when every manifest its message asks for exists: the worker writes a
//! manifest only after the outputs are complete, and a `{"status": "failed"}` one for a
//! permanent failure. Where each manifest goes is computed by longwave's own planner
//! (`worker::message::parse_message`, `job::manifest_path_for`) from the very body sent, so the
//! harness cannot disagree with the worker about it. Latency is send → manifest seen, at the
//! poll's resolution (0.5 s).

use crate::inputs::Uploaded;
use crate::prom::Scrape;
use crate::target::{http_get, Target};
use crate::workload::{Planned, Shape, Workload};
use anyhow::{Context, Result};
use longwave::job::{manifest_path_for, OutputTarget};
use longwave::telemetry::names;
use longwave::worker::message::{parse_message, Routing};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What became of one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Position in the schedule.
    pub index: usize,
    /// Message shape.
    pub shape: Shape,
    /// The input's key.
    pub input: String,
    /// The input's length in seconds (0 for the corrupt input).
    pub input_seconds: f64,
    /// What the job did (preset name, `chain`, or the workers' event parameters).
    pub work: String,
    /// Seconds after the start when the message was sent (`None`: never sent).
    pub sent_s: Option<f64>,
    /// Seconds after the start when its last manifest was seen.
    pub done_s: Option<f64>,
    /// `success` or `failed` (from the manifests), `None` while unfinished.
    pub status: Option<String>,
    /// The failure's kind, from the failure manifest.
    pub error_kind: Option<String>,
    /// The worker's processing time (sum of the manifests' `wall_time_s`).
    pub processing_s: Option<f64>,
    /// Manifests still awaited.
    #[serde(skip)]
    pending: Vec<String>,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds after the start.
    pub t_s: f64,
    /// Messages visible on the queue.
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Messages on the dead-letter queue.
    pub dead_letters: u64,
    /// Busy job slots, all workers.
    pub busy_slots: f64,
    /// Job slots, all workers.
    pub slots: f64,
    /// Each worker's RSS in bytes (`names::MEMORY_RSS_BYTES`).
    pub rss_bytes: Vec<f64>,
    /// Each worker's memory budget in bytes.
    pub budget_bytes: Vec<f64>,
    /// Each local worker's CPU seconds so far.
    pub cpu_s: Vec<f64>,
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct RunData {
    /// Per job.
    pub jobs: Vec<JobRecord>,
    /// Per second.
    pub samples: Vec<Sample>,
    /// Each worker's last scrape, for counters.
    #[serde(skip)]
    pub last_scrapes: Vec<Scrape>,
    /// Each local worker's CPU seconds at the end.
    pub final_cpu_s: Vec<f64>,
    /// Wall seconds from the first send to the last manifest (or the timeout).
    pub wall_s: f64,
    /// Messages the harness sent.
    pub messages_sent: u64,
    /// S3 copies the harness made for event-shaped jobs.
    pub harness_copies: u64,
}

/// Runs the schedule against `target` and collects the measurements.
///
/// # Errors
/// When a message cannot be built or sent, or S3 cannot be listed.
pub fn run(
    workload: &Workload,
    schedule: &[Planned],
    inputs: &[Uploaded],
    target: &mut Target,
    run_id: &str,
    timeout: Duration,
) -> Result<RunData> {
    let routing = Routing::new(
        None,
        Some(target.event_output_prefix.clone()),
        Some(&target.event_params),
    )
    .context("the workers' event parameters")?;
    let corrupt = inputs.last().context("no inputs")?;
    let run_prefix = format!("loadtest/runs/{run_id}");
    let mut bodies = Vec::with_capacity(schedule.len());
    let mut records = Vec::with_capacity(schedule.len());
    for planned in schedule {
        let input = planned.input.map_or(corrupt, |i| &inputs[i]);
        let (body, copy, work) = message(workload, planned, input, &target.bucket, &run_prefix);
        let parsed = parse_message(&body, &routing)
            .with_context(|| format!("job {}: the message the harness built", planned.index))?;
        let pending = parsed
            .items
            .iter()
            .flat_map(|item| &item.plan.jobs)
            .map(|job| manifest_path_for(&OutputTarget::named_by(&job.output)).to_string())
            .collect();
        bodies.push((body, copy));
        records.push(JobRecord {
            index: planned.index,
            shape: planned.shape,
            input: input.key.clone(),
            input_seconds: input.seconds,
            work,
            sent_s: None,
            done_s: None,
            status: None,
            error_kind: None,
            processing_s: None,
            pending,
        });
    }
    let records = Arc::new(Mutex::new(records));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new(schedule.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} done  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let shared: &Target = target;
    let (last_scrapes, (messages_sent, harness_copies)) =
        std::thread::scope(|scope| -> Result<_> {
            let sender =
                scope.spawn(|| send_all(schedule, &bodies, shared, &records, start, &stop));
            let sampler = scope.spawn(|| sample_loop(shared, &samples, start, &stop));
            let watched = watch(shared, &records, &run_prefix, start, timeout, &bar, &stop);
            stop.store(true, Ordering::Relaxed);
            let sent = sender
                .join()
                .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?;
            let last_scrapes = sampler
                .join()
                .map_err(|_| anyhow::anyhow!("the sampler thread panicked"))?;
            watched?;
            Ok((last_scrapes, sent?))
        })?;
    bar.finish();
    let mut jobs = records.lock().map_err(|_| poisoned())?.clone();
    jobs.sort_by_key(|j| j.index);
    let first_sent = jobs
        .iter()
        .filter_map(|j| j.sent_s)
        .fold(f64::NAN, f64::min);
    let last_done = jobs
        .iter()
        .filter_map(|j| j.done_s)
        .fold(f64::NAN, f64::max);
    let wall_s = if jobs.iter().all(|j| j.done_s.is_some()) {
        last_done - first_sent
    } else {
        start.elapsed().as_secs_f64() - first_sent
    };
    let final_cpu_s = target.stop_workers();
    let samples = samples.lock().map_err(|_| poisoned())?.clone();
    Ok(RunData {
        jobs,
        samples,
        last_scrapes,
        final_cpu_s,
        wall_s,
        messages_sent,
        harness_copies,
    })
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("a harness thread panicked while holding the job records")
}

/// The message body for one job, the S3 copy it needs first (event shapes: each event names
/// its own object, or the worker would see a second event for an input it already processed
/// and skip it as a duplicate), and a label for what it does.
fn message(
    workload: &Workload,
    planned: &Planned,
    input: &Uploaded,
    bucket: &str,
    run_prefix: &str,
) -> (String, Option<(String, String)>, String) {
    let file = input.key.rsplit('/').next().unwrap_or(&input.key);
    match planned.shape {
        Shape::Job => {
            let work = &workload.work[planned.work];
            let mut body = serde_json::json!({
                "input": format!("s3://{bucket}/{}", input.key),
                "output": format!("s3://{bucket}/{run_prefix}/out/{:06}/", planned.index),
            });
            if let Some(preset) = &work.preset {
                body["preset"] = preset.clone().into();
            }
            if let Some(chain) = &work.chain {
                body["chain"] = chain.clone();
            }
            if let Some(format) = &work.format {
                body["format"] = format.clone().into();
            }
            let label = work.preset.clone().unwrap_or_else(|| "chain".to_owned());
            (body.to_string(), None, label)
        }
        Shape::S3Event | Shape::EventBridge => {
            let key = format!("{run_prefix}/events/{:06}/{file}", planned.index);
            let body = if planned.shape == Shape::S3Event {
                serde_json::json!({"Records": [{
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventName": "ObjectCreated:Copy",
                    "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
                           "object": {"key": key}},
                }]})
            } else {
                serde_json::json!({
                    "version": "0",
                    "detail-type": "Object Created",
                    "source": "aws.s3",
                    "detail": {"bucket": {"name": bucket}, "object": {"key": key}},
                })
            };
            (
                body.to_string(),
                Some((input.key.clone(), key)),
                "event".to_owned(),
            )
        }
    }
}

/// Sends every message at its time; returns (messages sent, copies made).
fn send_all(
    schedule: &[Planned],
    bodies: &[(String, Option<(String, String)>)],
    target: &Target,
    records: &Mutex<Vec<JobRecord>>,
    start: Instant,
    stop: &AtomicBool,
) -> Result<(u64, u64)> {
    let (mut sent, mut copies) = (0, 0);
    for (planned, (body, copy)) in schedule.iter().zip(bodies) {
        let due = start + Duration::from_secs_f64(planned.at_s);
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return Ok((sent, copies));
            }
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(100)));
        }
        if let Some((from, to)) = copy {
            target
                .s3
                .copy_s3_object(&target.bucket, from, &target.bucket, to)?;
            copies += 1;
        }
        let sqs = target.sqs.clone();
        let (url, body) = (target.queue_url.clone(), body.clone());
        target
            .s3
            .block_on(async move {
                sqs.send_message()
                    .queue_url(url)
                    .message_body(body)
                    .send()
                    .await
            })?
            .with_context(|| format!("cannot send job {}", planned.index))?;
        sent += 1;
        let at = start.elapsed().as_secs_f64();
        if let Some(record) = records
            .lock()
            .map_err(|_| poisoned())?
            .get_mut(planned.index)
        {
            record.sent_s = Some(at);
        }
    }
    Ok((sent, copies))
}

/// Polls the run's prefixes for manifests until every job has finished or `timeout` passed.
fn watch(
    target: &Target,
    records: &Mutex<Vec<JobRecord>>,
    run_prefix: &str,
    start: Instant,
    timeout: Duration,
    bar: &indicatif::ProgressBar,
    stop: &AtomicBool,
) -> Result<()> {
    let prefixes = [
        format!("{run_prefix}/out/"),
        format!(
            "{}/{run_prefix}/events/",
            target.event_output_prefix.trim_end_matches('/')
        ),
    ];
    let waiting: HashMap<String, usize> = records
        .lock()
        .map_err(|_| poisoned())?
        .iter()
        .flat_map(|r| r.pending.iter().map(move |m| (m.clone(), r.index)))
        .collect();
    let mut seen = std::collections::HashSet::new();
    loop {
        for prefix in &prefixes {
            for key in target.s3.list_keys(&target.bucket, prefix)? {
                let location = format!("s3://{}/{key}", target.bucket);
                if !key.ends_with("manifest.json") || seen.contains(&location) {
                    continue;
                }
                let Some(&index) = waiting.get(&location) else {
                    continue;
                };
                let body = target
                    .s3
                    .get_small_object(&target.bucket, &key, 64 << 20)?
                    .unwrap_or_default();
                let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                seen.insert(location.clone());
                let at = start.elapsed().as_secs_f64();
                let mut all = records.lock().map_err(|_| poisoned())?;
                if let Some(record) = all.get_mut(index) {
                    record.pending.retain(|m| m != &location);
                    let failed = manifest.get("status").and_then(|s| s.as_str()) == Some("failed");
                    if failed {
                        record.status = Some("failed".to_owned());
                        record.error_kind = manifest
                            .pointer("/error/kind")
                            .and_then(|k| k.as_str())
                            .map(str::to_owned);
                    } else if record.status.is_none() {
                        record.status = Some("success".to_owned());
                    }
                    if let Some(wall) = manifest.get("wall_time_s").and_then(|w| w.as_f64()) {
                        *record.processing_s.get_or_insert(0.0) += wall;
                    }
                    if record.pending.is_empty() {
                        record.done_s = Some(at);
                        bar.inc(1);
                    }
                }
            }
        }
        let (done, total) = {
            let all = records.lock().map_err(|_| poisoned())?;
            (all.iter().filter(|r| r.done_s.is_some()).count(), all.len())
        };
        bar.set_message(format!("{} s", start.elapsed().as_secs()));
        if done == total || start.elapsed() > timeout || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Once a second: queue depths, every worker's metrics, local workers' CPU. Returns each
/// worker's last scrape.
fn sample_loop(
    target: &Target,
    samples: &Mutex<Vec<Sample>>,
    start: Instant,
    stop: &AtomicBool,
) -> Vec<Scrape> {
    let mut last = vec![Scrape::default(); target.metrics_urls.len()];
    loop {
        let t_s = start.elapsed().as_secs_f64();
        let (visible, in_flight) = target.queue_depth(&target.queue_url).unwrap_or_default();
        let dead_letters = target
            .dlq_url
            .as_deref()
            .and_then(|url| target.queue_depth(url).ok())
            .map_or(0, |(v, f)| v + f);
        for (i, url) in target.metrics_urls.iter().enumerate() {
            if let Ok(page) = http_get(url) {
                last[i] = Scrape::parse(&page);
            }
        }
        let sample = Sample {
            t_s,
            visible,
            in_flight,
            dead_letters,
            busy_slots: last.iter().map(|s| s.sum(names::JOB_SLOTS_BUSY, &[])).sum(),
            slots: last.iter().map(|s| s.sum(names::JOB_SLOTS, &[])).sum(),
            rss_bytes: last
                .iter()
                .map(|s| s.sum(names::MEMORY_RSS_BYTES, &[]))
                .collect(),
            budget_bytes: last
                .iter()
                .map(|s| s.sum(names::MEMORY_BUDGET_BYTES, &[]))
                .collect(),
            cpu_s: target.worker_cpu_seconds(),
        };
        if let Ok(mut all) = samples.lock() {
            all.push(sample);
        }
        if stop.load(Ordering::Relaxed) {
            return last;
        }
        let next = start + Duration::from_secs_f64(t_s.floor() + 1.0);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

//! The SQS service worker: long-polls a queue, runs each message's jobs in one of `max_jobs`
//! job slots (each job on its own decode, DSP and encode threads), keeps in-flight messages invisible with
//! heartbeats, and deletes a message only after every output and manifest is complete.
//!
//! Threads: the caller's thread runs the receive loop and owns the tokio runtime used for SQS
//! (long polls, heartbeats); each message runs on its own job thread (blocking S3 and pipeline
//! calls), at most `max_jobs` at once. Shutdown (SIGTERM/SIGINT via the flag passed to
//! [`run`]) stops receiving, lets running jobs finish until the grace deadline, then cancels
//! them: their uploads are aborted and their messages made visible at once.

pub mod execute;
pub mod message;
pub mod queue;

use crate::io::{S3Context, S3Settings, StatusTable};
use crate::job::RunnerConfig;
use crate::telemetry::names;
use execute::{handle_message, Disposition, JobContext};
use message::Routing;
use queue::{Queue, QueueError, Received};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The worker's settings (from flags and environment, see the CLI).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The queue to serve.
    pub queue_url: String,
    /// Where permanent failures are sent; `None` = the queue's redrive policy moves them.
    pub dlq_url: Option<String>,
    /// Job slots: messages processed at once.
    pub max_jobs: usize,
    /// Visibility timeout requested on receive and renewed by each heartbeat.
    pub visibility_timeout: Duration,
    /// Long-poll wait (at most 20 s).
    pub wait_time: Duration,
    /// After a shutdown signal, how long running jobs may go on before they are cancelled.
    pub shutdown_grace: Duration,
    /// Output routing and default parameters for event messages.
    pub routing: Routing,
    /// Pipeline tuning for every job.
    pub runner: RunnerConfig,
    /// S3 transfer tuning for every job.
    pub s3: S3Settings,
    /// Stop after this many messages were handled (tests, one-off drains); `None` = serve until
    /// shutdown.
    pub max_messages: Option<u64>,
    /// The DynamoDB table of job status records and its key attribute (`--status-table`,
    /// `--status-key-attribute`); `None` = no records.
    pub status: Option<(String, String)>,
}

/// Why the worker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Invalid settings (named, with the allowed range).
    #[error("invalid worker setting: {0}")]
    Config(String),
    /// The queue is missing, unreachable, or set up so failures could never leave it.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// S3 could not be configured.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// The status table could not be configured.
    #[error(transparent)]
    Status(#[from] crate::io::StatusError),
    /// A runtime or thread could not be started.
    #[error("cannot start the worker: {0}")]
    Setup(String),
}

/// Counts of what the worker did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Messages deleted after their jobs completed (or were already complete, or had none).
    pub deleted: u64,
    /// Messages made visible again for a retry.
    pub retried: u64,
    /// Messages sent to the DLQ or left to the redrive policy.
    pub dead_lettered: u64,
    /// Messages released (visibility 0) by shutdown.
    pub released: u64,
}

/// Memory the worker may use at `max_jobs` slots: a fixed base (binary, runtimes, metrics)
/// plus one job budget per slot ([`RunnerConfig::job_budget`]: transfer buffers,
/// blocks, codec and stage state; every job's computed bound is checked against it before the
/// job decodes audio). Exported as `longwave_memory_budget_bytes`; the deployment sizes tasks
/// from it.
pub fn memory_budget_bytes(max_jobs: usize, s3: &S3Settings, runner: &RunnerConfig) -> u64 {
    crate::job::memory::PROCESS_BASE_BYTES + max_jobs as u64 * runner.job_budget(s3)
}

/// A message being worked on, as the heartbeat sees it.
struct InFlight {
    receipt_handle: String,
    /// When the message becomes visible again unless extended.
    visible_until: Instant,
    /// SQS refuses to keep a message invisible longer than 12 h after its receipt.
    received_at: Instant,
}

type Registry = Arc<Mutex<HashMap<u64, InFlight>>>;

/// SQS's cap on a message's total invisibility after receipt.
const MAX_INVISIBLE: Duration = Duration::from_secs(12 * 3600);

/// Serves the queue until `shutdown` is set (or `max_messages` were handled).
///
/// # Errors
/// [`WorkerError`] when the worker cannot start (queue missing or without any dead-letter
/// route, invalid settings, S3 configuration). Failures of individual jobs are not errors:
/// they end in a retry or the dead-letter queue, and the worker carries on.
pub fn run(config: WorkerConfig, shutdown: Arc<AtomicBool>) -> Result<WorkerSummary, WorkerError> {
    validate(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("longwave-sqs")
        .enable_all()
        .build()
        .map_err(|e| WorkerError::Setup(format!("tokio runtime: {e}")))?;
    let queue = runtime.block_on(Queue::connect(
        config.queue_url.clone(),
        config.dlq_url.clone(),
    ));
    let (queue_visibility, redrive) = runtime.block_on(queue.attributes())?;
    if config.dlq_url.is_none() && !redrive {
        return Err(WorkerError::Config(format!(
            "queue {} has no redrive policy and no --dlq-url was given: a message that can never \
             succeed would be retried until it expires; set one of them",
            config.queue_url
        )));
    }
    let s3 = Arc::new(S3Context::from_env(config.s3.clone())?);
    let cancel = Arc::new(AtomicBool::new(false));
    let status = match &config.status {
        Some((table, key_attribute)) => Some(StatusTable::connect(&s3, table, key_attribute)?),
        None => None,
    };
    let cx = Arc::new(JobContext {
        s3,
        runner: config.runner.clone(),
        routing: config.routing.clone(),
        cancel: Arc::clone(&cancel),
        status,
        worker_id: crate::job::status::worker_id(),
    });

    let slots_gauge = metrics::gauge!(names::JOB_SLOTS);
    let busy_gauge = metrics::gauge!(names::JOB_SLOTS_BUSY);
    slots_gauge.set(config.max_jobs as f64);
    busy_gauge.set(0.0);
    // Counters a dashboard or alert watches for rare events start at 0: a series that appears
    // only with its first event hides that event from rate() and leaves the panel on "No data".
    metrics::counter!(names::JOBS_RECEIVED_TOTAL, "source" => "invalid").increment(0);
    // Successes too: a new task's first success must be an increase the alerts can see.
    for outcome in ["success", "duplicate"] {
        metrics::counter!(names::JOBS_FINISHED_TOTAL, "outcome" => outcome, "error_type" => "none")
            .increment(0);
    }
    for route in ["explicit", "redrive"] {
        metrics::counter!(names::DEAD_LETTERED_MESSAGES_TOTAL, "route" => route).increment(0);
    }
    metrics::gauge!(names::MEMORY_BUDGET_BYTES).set(memory_budget_bytes(
        config.max_jobs,
        &config.s3,
        &config.runner,
    ) as f64);
    tracing::info!(
        queue = %config.queue_url,
        dlq = config.dlq_url.as_deref().unwrap_or("(redrive policy)"),
        max_jobs = config.max_jobs,
        visibility_timeout_s = config.visibility_timeout.as_secs(),
        queue_visibility_timeout_s = queue_visibility,
        "Worker started."
    );

    let registry: Registry = Arc::new(Mutex::new(HashMap::new()));
    let heartbeat_stop = Arc::new(AtomicBool::new(false));
    let heartbeat = runtime.spawn(heartbeat_loop(
        queue.clone(),
        Arc::clone(&registry),
        config.visibility_timeout,
        Arc::clone(&heartbeat_stop),
    ));
    let depth_sampler = runtime.spawn(sample_queue_depth(queue.clone()));

    // Bounded by the job slots: each job thread sends exactly one completion, and at most
    // `max_jobs` job threads exist at once, so a send never waits.
    let (done_tx, done_rx) =
        crossbeam_channel::bounded::<(u64, Disposition)>(config.max_jobs.max(1));
    let mut running: HashMap<u64, std::thread::JoinHandle<()>> = HashMap::new();
    let mut summary = WorkerSummary::default();
    let mut next_id = 0u64;
    let mut handled = 0u64;
    let mut receive_failures = 0u32;

    let settle = |id: u64,
                  disposition: Disposition,
                  running: &mut HashMap<u64, std::thread::JoinHandle<()>>,
                  summary: &mut WorkerSummary| {
        if let Some(thread) = running.remove(&id) {
            let _ = thread.join();
        }
        let entry = registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(entry) = entry {
            settle_message(
                &runtime,
                &queue,
                &entry.receipt_handle,
                disposition,
                summary,
            );
        }
        busy_gauge.set(running.len() as f64);
    };

    loop {
        while let Ok((id, disposition)) = done_rx.try_recv() {
            settle(id, disposition, &mut running, &mut summary);
            handled += 1;
        }
        let limit_reached = config
            .max_messages
            .is_some_and(|max| handled + running.len() as u64 >= max);
        if shutdown.load(Ordering::Relaxed) || limit_reached {
            break;
        }
        let free = config.max_jobs.saturating_sub(running.len());
        if free == 0 {
            if let Ok((id, disposition)) = done_rx.recv_timeout(Duration::from_millis(200)) {
                settle(id, disposition, &mut running, &mut summary);
                handled += 1;
            }
            continue;
        }
        let want = config.max_messages.map_or(free, |max| {
            free.min(max.saturating_sub(handled + running.len() as u64) as usize)
        });
        let received = runtime.block_on(receive_until_shutdown(
            &queue,
            want,
            config.wait_time,
            config.visibility_timeout,
            &shutdown,
        ));
        let messages = match received {
            Some(Ok(messages)) => {
                receive_failures = 0;
                messages
            }
            Some(Err(error)) => {
                receive_failures += 1;
                let pause = crate::worker::execute::retry_delay(1)
                    .min(Duration::from_secs(u64::from(receive_failures.min(5))));
                tracing::warn!(error = %error, "Receiving failed; trying again shortly.");
                std::thread::sleep(pause);
                continue;
            }
            None => break, // shutdown while polling
        };
        for message in messages {
            let id = next_id;
            next_id += 1;
            if let Some(wait) = message.queue_wait {
                metrics::histogram!(names::QUEUE_WAIT_SECONDS).record(wait.as_secs_f64());
            }
            let now = Instant::now();
            registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    id,
                    InFlight {
                        receipt_handle: message.receipt_handle.clone(),
                        visible_until: now + config.visibility_timeout,
                        received_at: now,
                    },
                );
            match spawn_job(id, message, Arc::clone(&cx), queue.clone(), done_tx.clone()) {
                Ok(thread) => {
                    running.insert(id, thread);
                }
                Err(error) => {
                    tracing::error!(error = %error, "Cannot start a job thread; releasing the message.");
                    settle(id, Disposition::Release, &mut running, &mut summary);
                }
            }
            busy_gauge.set(running.len() as f64);
        }
    }

    // Shutdown: no more receives. Running jobs may finish until the grace deadline.
    if !running.is_empty() {
        tracing::info!(
            running = running.len(),
            grace_s = config.shutdown_grace.as_secs_f64(),
            "Stopping: waiting for running jobs."
        );
    }
    let deadline = Instant::now() + config.shutdown_grace;
    let wait_for_jobs = |until: Instant,
                         running: &mut HashMap<u64, std::thread::JoinHandle<()>>,
                         summary: &mut WorkerSummary| {
        while !running.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Ok((id, disposition)) =
                done_rx.recv_timeout(left.min(Duration::from_millis(200)))
            {
                settle(id, disposition, running, summary);
            }
        }
    };
    wait_for_jobs(deadline, &mut running, &mut summary);
    if !running.is_empty() {
        tracing::warn!(
            running = running.len(),
            "Grace period over: cancelling running jobs (uploads aborted, messages released)."
        );
        cancel.store(true, Ordering::Relaxed);
        // Cancelled jobs stop within a block; aborting their uploads takes a request or two.
        wait_for_jobs(
            Instant::now() + Duration::from_secs(4),
            &mut running,
            &mut summary,
        );
    }
    // Anything still running is abandoned: make its message visible now rather than at the end
    // of its visibility timeout.
    let abandoned: Vec<String> = registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
        .map(|(_, entry)| entry.receipt_handle)
        .collect();
    for receipt in abandoned {
        settle_message(
            &runtime,
            &queue,
            &receipt,
            Disposition::Release,
            &mut summary,
        );
    }
    heartbeat_stop.store(true, Ordering::Relaxed);
    heartbeat.abort();
    depth_sampler.abort();
    tracing::info!(
        deleted = summary.deleted,
        retried = summary.retried,
        dead_lettered = summary.dead_lettered,
        released = summary.released,
        "Worker stopped."
    );
    busy_gauge.set(0.0);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(summary)
}

fn validate(config: &WorkerConfig) -> Result<(), WorkerError> {
    let bad = |m: String| Err(WorkerError::Config(m));
    if config.queue_url.trim().is_empty() {
        return bad("the queue URL is empty (--queue-url or SQS_QUEUE_URL)".into());
    }
    if !(1..=256).contains(&config.max_jobs) {
        return bad(format!("--max-jobs {} is outside 1..=256", config.max_jobs));
    }
    let vis = config.visibility_timeout.as_secs();
    if !(2..=43_200).contains(&vis) {
        return bad(format!(
            "--visibility-timeout {vis} s is outside 2..=43200 (SQS allows up to 12 h; \
             heartbeats need at least 2 s)"
        ));
    }
    if config.wait_time > Duration::from_secs(20) {
        return bad(format!(
            "--wait-seconds {} is above SQS's 20 s",
            config.wait_time.as_secs()
        ));
    }
    if config.shutdown_grace > Duration::from_secs(3600) {
        return bad(format!(
            "--shutdown-grace {} s is above 3600",
            config.shutdown_grace.as_secs()
        ));
    }
    config.s3.validate()?;
    Ok(())
}

fn spawn_job(
    id: u64,
    message: Received,
    cx: Arc<JobContext>,
    queue: Queue,
    done: crossbeam_channel::Sender<(u64, Disposition)>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("longwave-job-{id}"))
        .spawn(move || {
            // handle_message catches panics of the pipeline; this catches the rest, so the
            // slot is always given back.
            let disposition = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handle_message(&cx, &message)
            }))
            .unwrap_or_else(|_| Disposition::DeadLetter {
                error_type: "panic",
                reason: "the job thread panicked".into(),
            });
            let disposition = match disposition {
                Disposition::DeadLetter { error_type, reason } if queue.dlq_url().is_some() => {
                    send_to_dlq(&queue, &message, error_type, &reason)
                }
                other => other,
            };
            let _ = done.send((id, disposition));
        })
}

/// Copies a permanently failed message to the explicit DLQ, with the failure as attributes.
/// If that fails the message is retried later instead (it fails again and gets another try).
fn send_to_dlq(
    queue: &Queue,
    message: &Received,
    error_type: &'static str,
    reason: &str,
) -> Disposition {
    match queue.block_on(queue.send_to_dlq(&message.body, &message.message_id, error_type, reason))
    {
        Ok(()) => Disposition::SentToDlq,
        Err(error) => {
            tracing::warn!(error = %error, "Cannot send the message to the dead-letter queue; it will be retried.");
            Disposition::Retry {
                delay: execute::retry_delay(message.receive_count),
            }
        }
    }
}

/// Acts on a disposition for one message.
fn settle_message(
    runtime: &tokio::runtime::Runtime,
    queue: &Queue,
    receipt: &str,
    disposition: Disposition,
    summary: &mut WorkerSummary,
) {
    let result = match &disposition {
        Disposition::Delete => {
            summary.deleted += 1;
            runtime.block_on(queue.delete(receipt))
        }
        Disposition::Retry { delay } => {
            summary.retried += 1;
            runtime.block_on(queue.change_visibility(receipt, *delay))
        }
        Disposition::Release => {
            summary.released += 1;
            runtime.block_on(queue.change_visibility(receipt, Duration::ZERO))
        }
        Disposition::SentToDlq => {
            summary.dead_lettered += 1;
            metrics::counter!(names::DEAD_LETTERED_MESSAGES_TOTAL, "route" => "explicit")
                .increment(1);
            runtime.block_on(queue.delete(receipt))
        }
        Disposition::DeadLetter { .. } => {
            // No explicit DLQ: visible again at once, so the queue's redrive policy moves it
            // after maxReceiveCount deliveries.
            summary.dead_lettered += 1;
            metrics::counter!(names::DEAD_LETTERED_MESSAGES_TOTAL, "route" => "redrive")
                .increment(1);
            runtime.block_on(queue.change_visibility(receipt, Duration::ZERO))
        }
    };
    if let Err(error) = result {
        tracing::warn!(error = %error, "Queue call failed; the message will reappear after its visibility timeout.");
    }
}

/// Receives up to `max` messages, returning `None` as soon as `shutdown` is set (the open long
/// poll is dropped).
async fn receive_until_shutdown(
    queue: &Queue,
    max: usize,
    wait: Duration,
    visibility: Duration,
    shutdown: &AtomicBool,
) -> Option<Result<Vec<Received>, QueueError>> {
    let watch = async {
        while !shutdown.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        received = queue.receive(max, wait, visibility) => Some(received),
        () = watch => None,
    }
}

/// How often each worker reads the queue's depth for [`names::QUEUE_MESSAGES`]: SQS's
/// approximate counts lag by about a minute anyway, and 2 calls a minute per worker cost
/// $0.0012 a day (SQS standard, $0.40 per million requests).
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(30);

/// Publishes the queue's backlog (visible) and in-flight counts every
/// [`QUEUE_DEPTH_INTERVAL`], so Prometheus alone can tell a growing backlog (the alert
/// rules in `dashboards/prometheus/`); aborted when the worker stops. The series appear with
/// the first successful read (never a made-up 0); a read that fails keeps the last figures and
/// is logged once as a warning, and the recovery once as info.
async fn sample_queue_depth(queue: Queue) {
    let mut gauges: Option<(metrics::Gauge, metrics::Gauge)> = None;
    let mut failing = false;
    loop {
        match queue.depth().await {
            Ok((shown, taken)) => {
                let (visible, in_flight) = gauges.get_or_insert_with(|| {
                    (
                        metrics::gauge!(names::QUEUE_MESSAGES, "state" => "visible"),
                        metrics::gauge!(names::QUEUE_MESSAGES, "state" => "in_flight"),
                    )
                });
                visible.set(shown as f64);
                in_flight.set(taken as f64);
                if std::mem::take(&mut failing) {
                    tracing::info!("Queue depth readable again.");
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %error, "Queue depth not read; longwave_queue_messages keeps its last figures.");
                }
            }
        }
        tokio::time::sleep(QUEUE_DEPTH_INTERVAL).await;
    }
}

/// Extends every in-flight message whose visibility is half gone, until `stop`.
async fn heartbeat_loop(
    queue: Queue,
    registry: Registry,
    visibility: Duration,
    stop: Arc<AtomicBool>,
) {
    let tick = (visibility / 10).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let extensions = metrics::counter!(names::QUEUE_VISIBILITY_EXTENSIONS_TOTAL);
    let failures = metrics::counter!(names::QUEUE_VISIBILITY_EXTENSION_FAILURES_TOTAL);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let due: Vec<(u64, String, Duration)> = registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, m)| m.visible_until.saturating_duration_since(now) <= visibility / 2)
            .filter_map(|(id, m)| {
                // Never ask for more than SQS's 12 h since receipt.
                let left = MAX_INVISIBLE.saturating_sub(now - m.received_at);
                let extend = visibility.min(left);
                (extend > Duration::from_secs(1)).then(|| (*id, m.receipt_handle.clone(), extend))
            })
            .collect();
        for (id, receipt, extend) in due {
            match queue.change_visibility(&receipt, extend).await {
                Ok(()) => {
                    extensions.increment(1);
                    if let Some(m) = registry
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_mut(&id)
                    {
                        m.visible_until = Instant::now() + extend;
                    }
                    tracing::debug!(extend_s = extend.as_secs(), "Visibility extended.");
                }
                Err(error) => {
                    // A message settled (deleted) since the snapshot above has no visibility
                    // left to extend: not a failure.
                    let still_in_flight = registry
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .contains_key(&id);
                    if still_in_flight {
                        failures.increment(1);
                        tracing::warn!(error = %error, "Visibility heartbeat failed.")
                    }
                }
            }
        }
    }
}

//! `longwave worker`: flags and environment → [`WorkerConfig`], logging, metrics endpoint,
//! signal handling.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use longwave::io::S3Settings;
use longwave::job::RunnerConfig;
use longwave::telemetry;
use longwave::worker::{self, message::Routing, WorkerConfig};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Log line format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for CloudWatch Logs and other collectors).
    Json,
    /// Human-readable lines.
    Text,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// URL of the SQS queue to serve.
    #[arg(long, env = "SQS_QUEUE_URL")]
    queue_url: String,
    /// Dead-letter queue URL; permanent failures are sent there. Without it the queue's redrive
    /// policy moves them (the queue must have one).
    #[arg(long, env = "SQS_DLQ_URL")]
    dlq_url: Option<String>,
    /// Job slots: messages processed at once (default: the CPU count).
    #[arg(long, env = "LONGWAVE_MAX_JOBS")]
    max_jobs: Option<usize>,
    /// Visibility timeout requested on receive, seconds; heartbeats renew it at half-life for
    /// as long as a job runs.
    #[arg(long, env = "LONGWAVE_VISIBILITY_TIMEOUT", default_value_t = 120)]
    visibility_timeout: u64,
    /// Long-poll wait, seconds (1–20).
    #[arg(long, default_value_t = 20)]
    wait_seconds: u64,
    /// After SIGTERM/SIGINT, seconds running jobs may continue before they are cancelled and
    /// their messages released (keep it under the container's stop timeout, 30 s on Fargate).
    #[arg(long, env = "LONGWAVE_SHUTDOWN_GRACE", default_value_t = 25.0)]
    shutdown_grace: f64,
    /// Prometheus endpoint address (`/metrics`); `off` disables it.
    #[arg(long, env = "LONGWAVE_METRICS_ADDR", default_value = "0.0.0.0:9000")]
    metrics_addr: String,
    /// Log format.
    #[arg(long, env = "LONGWAVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Output bucket for event messages (default: the input's bucket).
    #[arg(long, env = "OUTPUT_BUCKET")]
    output_bucket: Option<String>,
    /// Output prefix for event messages (default: mapped from the input key, as `task`).
    #[arg(long, env = "OUTPUT_PREFIX")]
    output_prefix: Option<String>,
    /// Job parameters for event messages (legacy parameters or a job spec, as `task`).
    #[arg(long, env = "PROCESSING_PARAMS")]
    processing_params: Option<String>,
    /// Attempts after the first for every S3 request (exponential backoff with jitter, by the
    /// SDK's standard retry mode) and for resuming a download cut mid-body; 0–20. A fault that
    /// outlasts them fails the job as retryable: its message comes back later, it is not
    /// dead-lettered.
    #[arg(long, env = "LONGWAVE_S3_MAX_RETRIES", default_value_t = S3Settings::default().max_retries)]
    s3_max_retries: u32,
    /// Write outputs even when the S3 server does not implement `If-None-Match` (an older S3
    /// clone): without it such a server fails every write, because an existing output could
    /// be replaced. Each such write is logged and counted.
    #[arg(long, env = "LONGWAVE_S3_ALLOW_UNCONDITIONAL_WRITES")]
    s3_allow_unconditional_writes: bool,
    #[command(flatten)]
    memory: super::MemoryArgs,
    #[command(flatten)]
    encode: super::EncodeArgs,
    #[command(flatten)]
    status: super::StatusArgs,
    /// Stop after handling this many messages (for tests and one-off drains).
    #[arg(long, hide = true)]
    max_messages: Option<u64>,
}

/// Starts logging for a long-running command: JSON or text lines on stderr, level from
/// `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    // A panic inside a job is caught and fails that job; log it as a log line (with the job's
    // span) rather than as bare text on stderr.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "A thread panicked; its job fails, the worker carries on.");
    }));
}

/// Parses a metrics address (`off` = none).
pub fn metrics_addr(value: &str) -> Result<Option<SocketAddr>> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .with_context(|| format!("--metrics-addr {value:?} is not an address like 0.0.0.0:9000"))
}

/// Runs the worker until SIGTERM or SIGINT.
pub fn run(args: WorkerArgs) -> Result<()> {
    init_logging(args.log_format);
    if let Some(addr) = metrics_addr(&args.metrics_addr)? {
        telemetry::install_prometheus(addr)?;
    }
    if !args.shutdown_grace.is_finite() || args.shutdown_grace < 0.0 {
        bail!(
            "--shutdown-grace {} must be a number of seconds ≥ 0",
            args.shutdown_grace
        );
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&shutdown))
            .context("cannot install the signal handlers")?;
    }
    let cpus = super::cpu_count();
    let max_jobs = args.max_jobs.unwrap_or(cpus);
    // Slots × encode threads stay within the CPUs: by default each slot gets its share (1 at
    // the default of one slot per CPU, where parallel segments would only add their pre-roll).
    let encode_threads = match args.encode.threads() {
        Some(threads) if threads > 1 && threads.saturating_mul(max_jobs) > cpus => bail!(
            "--encode-threads {threads} × --max-jobs {max_jobs} is more than the {cpus} CPUs: \
             lower one of them"
        ),
        Some(threads) => threads,
        None => (cpus / max_jobs.max(1)).max(1),
    };
    // Every event would fail the same way: said once, at startup.
    let routing = Routing::new(
        args.output_bucket.filter(|v| !v.trim().is_empty()),
        args.output_prefix.filter(|v| !v.trim().is_empty()),
        args.processing_params.as_deref(),
    )
    .context("the worker's settings for event messages (PROCESSING_PARAMS, OUTPUT_BUCKET)")?;
    let config = WorkerConfig {
        queue_url: args.queue_url,
        dlq_url: args.dlq_url.filter(|u| !u.trim().is_empty()),
        max_jobs,
        visibility_timeout: Duration::from_secs(args.visibility_timeout),
        wait_time: Duration::from_secs(args.wait_seconds),
        shutdown_grace: Duration::from_secs_f64(args.shutdown_grace),
        routing,
        runner: RunnerConfig {
            job_budget_bytes: args.memory.job_budget_bytes(),
            encode_threads,
            ..RunnerConfig::default()
        },
        s3: S3Settings {
            max_retries: args.s3_max_retries,
            allow_unconditional_writes: args.s3_allow_unconditional_writes,
            ..S3Settings::default()
        },
        max_messages: args.max_messages,
        status: args.status.table(),
    };
    worker::run(config, shutdown)?;
    Ok(())
}

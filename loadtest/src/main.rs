//! `longwave-loadtest`: drives longwave workers with a workload and reports what they did.
//!
//! ```text
//! longwave-loadtest run loadtest/workloads/mixed-poisson.toml --out target/loadtest/run1
//! ```
//!
//! Local mode (the default) starts the local S3/SQS server, a bucket, a queue with its
//! dead-letter queue and `local.workers` × `local.slots` workers, then sends the workload's
//! messages on schedule, watches for each job's manifest, scrapes every worker's `/metrics` once
//! a second, and writes `report.json`, `report.md` and PNG plots. Remote mode (`--queue-url`,
//! `--bucket`) runs against an existing deployment and starts nothing. See loadtest/README.md.

mod inputs;
mod plot;
mod prom;
mod report;
mod run;
mod simulate;
mod target;
mod workload;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "longwave-loadtest",
    version,
    about = "Load tests for the longwave worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a workload and writes report.json, report.md and plots.
    Run(Box<RunArgs>),
    /// Predicts a deployment's latency, tasks and cost for an arrival curve, from a measured
    /// run's jobs (or, with --validate, replays that run to check the model).
    Simulate(Box<SimulateArgs>),
    /// Prints a workload's schedule (what `run` would send), without sending anything.
    Plan {
        /// The workload file.
        workload: PathBuf,
    },
}

#[derive(Args)]
struct SimulateArgs {
    /// A run's report.json (local mode: the model needs the workers' CPU).
    #[arg(long)]
    from: PathBuf,
    /// Replay the measured run itself and compare the prediction with what was measured.
    #[arg(long)]
    validate: bool,
    /// The arrival curve to predict.
    #[arg(long, value_enum, default_value = "day")]
    curve: simulate::Curve,
    /// Mean arrivals per hour over the day (default: the measured run's rate).
    #[arg(long)]
    mean_per_hour: Option<f64>,
    /// The peak hour's rate as a multiple of the mean.
    #[arg(long, default_value_t = 10.0)]
    peak: f64,
    /// vCPUs per task (default: the template's TaskCpu).
    #[arg(long, default_value_t = simulate::template::TASK_VCPU)]
    task_vcpu: f64,
    /// Memory per task, GB, for the cost (default: the template's TaskMemory).
    #[arg(long, default_value_t = simulate::template::TASK_MEMORY_GB)]
    task_memory_gb: f64,
    /// Job slots per task (default: the template's MaxJobs).
    #[arg(long, default_value_t = simulate::template::MAX_JOBS)]
    slots: u32,
    /// Most cores one job uses (decode, DSP and encode threads; deploy/README.md: about 1.6).
    #[arg(long, default_value_t = 1.6)]
    max_job_cores: f64,
    /// The scaling target: visible messages per running task (TargetBacklogPerTask).
    #[arg(long, default_value_t = simulate::template::TARGET_BACKLOG_PER_TASK)]
    target_backlog: f64,
    /// Fewest tasks (MinCapacity).
    #[arg(long, default_value_t = simulate::template::MIN_CAPACITY)]
    min_tasks: u32,
    /// Most tasks (MaxCapacity).
    #[arg(long, default_value_t = simulate::template::MAX_CAPACITY)]
    max_tasks: u32,
    /// Seconds from a scale-out decision to a serving task (Fargate: image pull and start).
    #[arg(long, default_value_t = 60.0)]
    start_latency_s: f64,
    /// How late CloudWatch sees the SQS metric, seconds.
    #[arg(long, default_value_t = 60.0)]
    metric_delay_s: f64,
    /// Seed of the arrivals and the job draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where simulation.json, tasks.png (and validation.png) go.
    #[arg(long, default_value = "target/loadtest/simulation")]
    out: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    /// The workload file (TOML; examples in loadtest/workloads/).
    workload: PathBuf,
    /// Where the report, plots and worker logs go.
    #[arg(long, default_value = "target/loadtest/run")]
    out: PathBuf,
    /// Remote mode: the job queue of an existing deployment.
    #[arg(long, requires = "bucket")]
    queue_url: Option<String>,
    /// Remote mode: its bucket (inputs are uploaded under loadtest/).
    #[arg(long)]
    bucket: Option<String>,
    /// Remote mode: its dead-letter queue.
    #[arg(long)]
    dlq_url: Option<String>,
    /// Remote mode: a worker's /metrics URL (repeat for each).
    #[arg(long)]
    metrics: Vec<String>,
    /// Remote mode: the workers' OUTPUT_PREFIX (where event-driven outputs go).
    #[arg(long, default_value = "processed")]
    event_output_prefix: String,
    /// Remote mode: job slots per worker, as deployed (for the report).
    #[arg(long, default_value_t = 2)]
    remote_slots: u32,
    /// Local mode: worker processes (default: the workload's local.workers).
    #[arg(long)]
    workers: Option<u32>,
    /// Local mode: slots per worker (default: the workload's local.slots).
    #[arg(long)]
    slots: Option<u32>,
    /// The longwave binary local workers run.
    #[arg(long)]
    longwave: Option<PathBuf>,
    /// Where generated inputs are cached.
    #[arg(long, default_value = "target/loadtest/inputs")]
    cache: PathBuf,
    /// Give up on unfinished jobs this many seconds after the start (default: the last send
    /// plus 600 s).
    #[arg(long)]
    timeout_s: Option<f64>,
    /// The task size the cost is stated for: vCPUs.
    #[arg(long, default_value_t = 1.0)]
    task_vcpu: f64,
    /// The task size the cost is stated for: memory in GB.
    #[arg(long, default_value_t = 2.0)]
    task_memory_gb: f64,
    /// Fargate price per vCPU-hour, USD.
    #[arg(long)]
    vcpu_hour_usd: Option<f64>,
    /// Fargate price per GB-hour, USD.
    #[arg(long)]
    gb_hour_usd: Option<f64>,
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Run(args) => match run(*args) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::from(3),
            Err(error) => {
                eprintln!("longwave-loadtest: error: {error:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Simulate(args) => match simulate_cmd(*args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("longwave-loadtest: error: {error:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Plan { workload } => match plan(&workload) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("longwave-loadtest: error: {error:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// The `simulate` command.
fn simulate_cmd(args: SimulateArgs) -> Result<()> {
    let text = std::fs::read(&args.from)
        .with_context(|| format!("cannot read {}", args.from.display()))?;
    let report: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not JSON", args.from.display()))?;
    let calibration = simulate::calibrate(&report, args.max_job_cores)
        .with_context(|| format!("{}", args.from.display()))?;
    std::fs::create_dir_all(&args.out)?;
    let prices = report::Prices::default();
    let task_usd_per_hour =
        args.task_vcpu * prices.vcpu_hour_usd + args.task_memory_gb * prices.gb_hour_usd;
    let (service, arrivals) = if args.validate {
        (
            simulate::Service {
                task_vcpu: calibration.effective_vcpu,
                slots: calibration.slots,
                max_job_cores: calibration.job_cores,
                target_backlog_per_task: args.target_backlog,
                min_tasks: 1,
                max_tasks: 1,
                start_latency_s: 0.0,
                metric_delay_s: 0.0,
                scale_out_cooldown_s: simulate::template::SCALE_OUT_COOLDOWN_S,
                scale_in_cooldown_s: simulate::template::SCALE_IN_COOLDOWN_S,
                autoscale: false,
                overhead_s: calibration.overhead_s,
            },
            calibration
                .arrivals
                .iter()
                .copied()
                .zip(calibration.jobs.iter().copied())
                .collect::<Vec<_>>(),
        )
    } else {
        let span = calibration.arrivals.last().copied().unwrap_or(0.0)
            - calibration.arrivals.first().copied().unwrap_or(0.0);
        let measured_rate = calibration.arrivals.len() as f64 / span.max(1.0) * 3600.0;
        let mean = args.mean_per_hour.unwrap_or(measured_rate);
        (
            simulate::Service {
                task_vcpu: args.task_vcpu,
                slots: args.slots,
                max_job_cores: args.max_job_cores,
                target_backlog_per_task: args.target_backlog,
                min_tasks: args.min_tasks,
                max_tasks: args.max_tasks,
                start_latency_s: args.start_latency_s,
                metric_delay_s: args.metric_delay_s,
                scale_out_cooldown_s: simulate::template::SCALE_OUT_COOLDOWN_S,
                scale_in_cooldown_s: simulate::template::SCALE_IN_COOLDOWN_S,
                autoscale: true,
                overhead_s: calibration.overhead_s,
            },
            simulate::arrivals(args.curve, mean, args.peak, &calibration.jobs, args.seed),
        )
    };
    let outcome = simulate::simulate(&service, &arrivals);
    let cost_usd = outcome.task_hours * task_usd_per_hour;
    let json = serde_json::json!({
        "calibration": {
            "effective_vcpu": calibration.effective_vcpu,
            "job_cores": calibration.job_cores,
            "slots": calibration.slots,
            "overhead_s": calibration.overhead_s,
            "demand_scale": calibration.demand_scale,
            "jobs": calibration.jobs.len(),
            "measured_latency_s": calibration.measured_latency_s,
            "measured_jobs_per_minute": calibration.measured_jobs_per_minute,
        },
        "service": service,
        "validate": args.validate,
        "curve": if args.validate { None } else { Some(args.curve) },
        "peak": args.peak,
        "outcome": outcome,
        "cost_usd": cost_usd,
        "usd_per_audio_hour": cost_usd / outcome.audio_hours.max(1e-9),
    });
    std::fs::write(
        args.out.join("simulation.json"),
        serde_json::to_vec_pretty(&json)?,
    )?;
    plot::simulation(&outcome, &args.out.join("tasks.png"))?;
    if args.validate {
        plot::validation(
            &calibration.measured_latencies,
            &outcome.latencies,
            &args.out.join("validation.png"),
        )?;
    }
    let l = &outcome.latency_s;
    println!(
        "{} jobs, {:.2} audio-hours: latency p50 {:.1} s, p95 {:.1} s, p99 {:.1} s, max {:.1} s; \
         {:.2} jobs/min over {:.0} s",
        outcome.jobs,
        outcome.audio_hours,
        l.p50,
        l.p95,
        l.p99,
        l.max,
        outcome.jobs_per_minute,
        outcome.wall_s
    );
    if args.validate {
        let m = &calibration.measured_latency_s;
        let ratio = |p: f64, m: f64| if m > 0.0 { p / m } else { f64::NAN };
        println!(
            "measured: latency p50 {:.1} s, p95 {:.1} s; {:.2} jobs/min. predicted/measured: \
             p50 {:.2}, p95 {:.2}, throughput {:.2}",
            m.p50,
            m.p95,
            calibration.measured_jobs_per_minute,
            ratio(l.p50, m.p50),
            ratio(l.p95, m.p95),
            ratio(
                outcome.jobs_per_minute,
                calibration.measured_jobs_per_minute
            )
        );
    } else {
        println!(
            "tasks: peak {}, {:.1} task-hours = ${cost_usd:.2} ({:.4} $/audio-hour at ${task_usd_per_hour:.4} per task-hour)",
            outcome.peak_tasks,
            outcome.task_hours,
            cost_usd / outcome.audio_hours.max(1e-9)
        );
    }
    eprintln!("longwave-loadtest: simulation in {}", args.out.display());
    Ok(())
}

/// Prints the schedule's totals and its first jobs.
fn plan(path: &std::path::Path) -> Result<()> {
    let (workload, trace) = workload::Workload::load(path)?;
    let schedule = workload.schedule(&trace);
    let count = |f: &dyn Fn(&workload::Planned) -> bool| schedule.iter().filter(|p| f(p)).count();
    let audio: f64 = schedule
        .iter()
        .filter_map(|p| p.input.map(|i| workload.inputs[i].seconds))
        .sum();
    println!("{}", workload.name);
    println!(
        "{} jobs over {:.1} s; {:.2} audio-hours; corrupt {}",
        schedule.len(),
        schedule.last().map_or(0.0, |p| p.at_s),
        audio / 3600.0,
        count(&|p| p.input.is_none())
    );
    println!(
        "shapes: job {}, s3_event {}, eventbridge {}",
        count(&|p| p.shape == workload::Shape::Job),
        count(&|p| p.shape == workload::Shape::S3Event),
        count(&|p| p.shape == workload::Shape::EventBridge)
    );
    for (i, input) in workload.inputs.iter().enumerate() {
        println!(
            "input {i} ({} s {}): {}",
            input.seconds,
            input.format,
            count(&|p| p.input == Some(i))
        );
    }
    for (i, work) in workload.work.iter().enumerate() {
        let what = work.preset.clone().unwrap_or_else(|| "chain".to_owned());
        println!(
            "work {i} ({what}): {} job messages",
            count(&|p| p.work == i && p.shape == workload::Shape::Job)
        );
    }
    Ok(())
}

/// The repository this binary was built from (for scripts/ and target/).
fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs the workload; `Ok(false)` when jobs were left unfinished (the report is still written).
fn run(args: RunArgs) -> Result<bool> {
    let (mut workload, trace) = workload::Workload::load(&args.workload)?;
    if let Some(workers) = args.workers {
        workload.local.workers = workers;
    }
    if let Some(slots) = args.slots {
        workload.local.slots = slots;
    }
    let schedule = workload.schedule(&trace);
    if schedule.is_empty() {
        bail!("the workload schedules no job");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let longwave = args
        .longwave
        .clone()
        .unwrap_or_else(|| repo().join("target/release/longwave"));
    let started_utc = utc_now();
    let run_id = format!(
        "{}-{}",
        started_utc.replace([':', ' '], ""),
        std::process::id()
    );
    let (mut target, mode) = match (&args.queue_url, &args.bucket) {
        (Some(queue_url), Some(bucket)) => (
            target::Target::remote(target::RemoteSettings {
                queue_url: queue_url.clone(),
                bucket: bucket.clone(),
                dlq_url: args.dlq_url.clone(),
                metrics_urls: args.metrics.clone(),
                event_output_prefix: args.event_output_prefix.clone(),
                event_params: workload.local.event_params.clone(),
                slots_per_worker: args.remote_slots,
            })?,
            "remote",
        ),
        _ => (
            target::Target::local(&target::LocalSettings {
                repo: &repo(),
                longwave: &longwave,
                workers: workload.local.workers,
                slots: workload.local.slots,
                event_params: &workload.local.event_params,
                dir: &out,
            })?,
            "local",
        ),
    };
    eprintln!(
        "longwave-loadtest: {} jobs over {:.0} s ({mode}, {} workers); preparing inputs",
        schedule.len(),
        schedule.last().map_or(0.0, |p| p.at_s),
        target.metrics_urls.len()
    );
    let inputs = inputs::prepare(
        &workload.inputs,
        &args.cache,
        &longwave,
        &target.s3,
        &target.bucket,
    )?;
    let last_send = schedule.last().map_or(0.0, |p| p.at_s);
    let timeout = Duration::from_secs_f64(args.timeout_s.unwrap_or(last_send + 600.0));
    let data = run::run(&workload, &schedule, &inputs, &mut target, &run_id, timeout)?;
    let plots = plot::write_all(&data, &out)?;
    let mut prices = report::Prices::default();
    if let Some(v) = args.vcpu_hour_usd {
        prices.vcpu_hour_usd = v;
    }
    if let Some(v) = args.gb_hour_usd {
        prices.gb_hour_usd = v;
    }
    let report = report::build(
        &data,
        &workload.name,
        mode,
        started_utc,
        target.slots_per_worker,
        prices,
        report::TaskSize {
            vcpu: args.task_vcpu,
            memory_gb: args.task_memory_gb,
        },
    );
    let json = serde_json::json!({ "report": report, "workload": workload, "data": data });
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&json)?)?;
    let md = report::markdown(&report, &plots);
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!("longwave-loadtest: report in {}", out.display());
    let unfinished = report.jobs.get("unfinished").copied().unwrap_or(0);
    if unfinished > 0 {
        eprintln!("longwave-loadtest: {unfinished} jobs did not finish before the timeout");
    }
    Ok(unfinished == 0)
}

/// Now as `YYYY-MM-DD HH:MM:SS` (UTC), from the system clock.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // `2026-12-04T15:02:47Z` shown as `2026-12-04 15:02:47`, as the reports always did.
    longwave::job::status::rfc3339(secs)
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_owned()
}

//! From a run's measurements to `report.json` and `report.md`: latency percentiles, throughput,
//! CPU per audio-hour, memory against the budget, outcomes, request counts and the cost of an
//! audio-hour.

use crate::run::RunData;
use longwave::telemetry::names;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// List prices the cost is computed from (us-east-1, on-demand, as of 2026; `../shared` and
/// the AWS price pages). Every one can be overridden on the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Prices {
    /// Fargate (x86) per vCPU-hour.
    pub vcpu_hour_usd: f64,
    /// Fargate per GB-hour.
    pub gb_hour_usd: f64,
    /// S3 PUT, COPY, POST, LIST per 1,000 requests.
    pub s3_write_per_1k_usd: f64,
    /// S3 GET, HEAD and others per 1,000 requests.
    pub s3_read_per_1k_usd: f64,
    /// SQS per million requests (standard queue).
    pub sqs_per_million_usd: f64,
    /// Where and when these are from.
    pub source: &'static str,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            vcpu_hour_usd: 0.04048,
            gb_hour_usd: 0.004445,
            s3_write_per_1k_usd: 0.005,
            s3_read_per_1k_usd: 0.0004,
            sqs_per_million_usd: 0.40,
            source: "AWS list prices, us-east-1, on-demand Fargate x86, 2026",
        }
    }
}

/// The task size the cost is stated for.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSize {
    /// vCPUs of one task.
    pub vcpu: f64,
    /// Memory of one task in GB.
    pub memory_gb: f64,
}

/// p50/p95/p99/max/mean of a set of seconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (all zero when empty).
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: values.len(),
            p50: quantile(&mut values, 0.50),
            p95: quantile(&mut values, 0.95),
            p99: quantile(&mut values, 0.99),
            max: quantile(&mut values, 1.0),
            mean: values.iter().sum::<f64>() / values.len() as f64,
        }
    }
}

/// The nearest-rank `p` quantile of `values` (sorted in place; NaN-free input; 0 when empty).
pub fn quantile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    values[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
}

/// Memory of one worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerMemory {
    /// Highest RSS sampled, MiB.
    pub peak_rss_mib: f64,
    /// Its memory budget, MiB.
    pub budget_mib: f64,
}

/// The report of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The workload's name.
    pub workload: String,
    /// `local` or `remote`.
    pub mode: String,
    /// When the run started (UTC).
    pub started_utc: String,
    /// CPUs of the machine the harness ran on.
    pub machine_cpus: usize,
    /// Worker processes (local) or metrics endpoints (remote).
    pub workers: usize,
    /// Job slots per worker.
    pub slots_per_worker: u32,
    /// Jobs scheduled, sent, finished by status, unfinished.
    pub jobs: BTreeMap<&'static str, usize>,
    /// Send → last manifest, successful jobs, seconds.
    pub latency_s: Percentiles,
    /// Send → failure manifest, failed jobs, seconds.
    pub failure_latency_s: Percentiles,
    /// Latency minus the worker's processing time (the manifests' `wall_time_s`), seconds.
    pub queue_wait_s: Percentiles,
    /// The worker's processing time per successful job, seconds.
    pub processing_s: Percentiles,
    /// First send → last manifest, seconds.
    pub wall_s: f64,
    /// Finished jobs per minute of `wall_s`.
    pub jobs_per_minute: f64,
    /// Hours of input audio processed successfully.
    pub audio_hours: f64,
    /// Audio-hours per wall-clock hour.
    pub audio_hours_per_wall_hour: f64,
    /// Each local worker's CPU seconds (user + system); empty in remote mode.
    pub worker_cpu_s: Vec<f64>,
    /// Worker CPU seconds per audio-hour processed.
    pub cpu_s_per_audio_hour: Option<f64>,
    /// Per worker.
    pub memory: Vec<WorkerMemory>,
    /// `longwave_jobs_finished_total` by outcome, all workers.
    pub worker_outcomes: BTreeMap<String, f64>,
    /// Most messages seen on the dead-letter queue.
    pub dead_letters: u64,
    /// S3 requests by operation: the workers' (`longwave_s3_request_duration_seconds_count`)
    /// plus the harness's own copies.
    pub s3_requests: BTreeMap<String, f64>,
    /// SQS requests: sends + one receive and one delete per message + heartbeats (empty long
    /// polls are not counted by the workers).
    pub sqs_requests: f64,
    /// The cost model.
    pub cost: Cost,
}

/// What an audio-hour costs.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Prices used.
    pub prices: Prices,
    /// The task size assumed.
    pub task: TaskSize,
    /// Compute per audio-hour if tasks are kept busy (CPU-bound work: a task of V vCPUs does
    /// V × 3600 CPU seconds of work per hour).
    pub compute_usd_per_audio_hour: Option<f64>,
    /// S3 and SQS requests per audio-hour.
    pub requests_usd_per_audio_hour: Option<f64>,
    /// The sum.
    pub total_usd_per_audio_hour: Option<f64>,
    /// NAT gateway data processing for the bytes read and written, per audio-hour, had they
    /// gone through one ($0.045/GB): what a gateway endpoint avoids.
    pub nat_usd_per_audio_hour_if_routed: Option<f64>,
}

/// Builds the report of a run.
#[allow(clippy::too_many_arguments)]
pub fn build(
    data: &RunData,
    workload: &str,
    mode: &str,
    started_utc: String,
    slots_per_worker: u32,
    prices: Prices,
    task: TaskSize,
) -> Report {
    let finished = |status: &'static str| {
        data.jobs
            .iter()
            .filter(move |j| j.status.as_deref() == Some(status) && j.done_s.is_some())
            .collect::<Vec<_>>()
    };
    let latency = |j: &crate::run::JobRecord| Some(j.done_s? - j.sent_s?);
    let successes = finished("success");
    let failures = finished("failed");
    let mut jobs = BTreeMap::new();
    jobs.insert("scheduled", data.jobs.len());
    jobs.insert(
        "sent",
        data.jobs.iter().filter(|j| j.sent_s.is_some()).count(),
    );
    jobs.insert("succeeded", successes.len());
    jobs.insert("failed", failures.len());
    jobs.insert(
        "unfinished",
        data.jobs.iter().filter(|j| j.done_s.is_none()).count(),
    );
    // `max`: an empty float sum is −0.0.
    let audio_hours = (successes.iter().map(|j| j.input_seconds).sum::<f64>() / 3600.0).max(0.0);
    // NaN when nothing was sent or finished: report 0, not NaN.
    let wall_s = if data.wall_s.is_finite() {
        data.wall_s.max(1e-9)
    } else {
        1e-9
    };
    let total_cpu: f64 = data.final_cpu_s.iter().filter(|c| c.is_finite()).sum();
    let cpu_s_per_audio_hour =
        (!data.final_cpu_s.is_empty() && audio_hours > 0.0).then(|| total_cpu / audio_hours);
    let mut memory = Vec::new();
    for worker in 0..data.last_scrapes.len() {
        let peak = data
            .samples
            .iter()
            .filter_map(|s| s.rss_bytes.get(worker))
            .fold(0.0_f64, |a, &b| a.max(b));
        let budget = data
            .samples
            .iter()
            .filter_map(|s| s.budget_bytes.get(worker))
            .fold(0.0_f64, |a, &b| a.max(b));
        memory.push(WorkerMemory {
            peak_rss_mib: peak / 1_048_576.0,
            budget_mib: budget / 1_048_576.0,
        });
    }
    let mut worker_outcomes = BTreeMap::new();
    let mut s3_requests = BTreeMap::new();
    let mut heartbeats = 0.0;
    for scrape in &data.last_scrapes {
        for (outcome, n) in scrape.by_label(names::JOBS_FINISHED_TOTAL, "outcome") {
            *worker_outcomes.entry(outcome).or_insert(0.0) += n;
        }
        let count = format!("{}_count", names::S3_REQUEST_DURATION_SECONDS);
        for (op, n) in scrape.by_label(&count, "op") {
            *s3_requests.entry(op).or_insert(0.0) += n;
        }
        heartbeats += scrape.sum(names::QUEUE_VISIBILITY_EXTENSIONS_TOTAL, &[]);
    }
    *s3_requests
        .entry("copy_object (harness)".to_owned())
        .or_insert(0.0) += data.harness_copies as f64;
    let sqs_requests = 3.0 * data.messages_sent as f64 + heartbeats;
    let per_audio_hour = |usd: f64| (audio_hours > 0.0).then(|| usd / audio_hours);
    let compute = cpu_s_per_audio_hour.map(|cpu| {
        (task.vcpu * prices.vcpu_hour_usd + task.memory_gb * prices.gb_hour_usd) * cpu
            / (task.vcpu * 3600.0)
    });
    let (mut writes, mut reads) = (0.0, 0.0);
    for (op, n) in &s3_requests {
        let is_write = [
            "put", "copy", "upload", "create", "complete", "list", "abort", "delete",
        ]
        .iter()
        .any(|w| op.contains(w));
        if is_write {
            writes += n;
        } else {
            reads += n;
        }
    }
    let requests_usd = writes / 1000.0 * prices.s3_write_per_1k_usd
        + reads / 1000.0 * prices.s3_read_per_1k_usd
        + sqs_requests / 1e6 * prices.sqs_per_million_usd;
    let bytes_moved: f64 = data
        .last_scrapes
        .iter()
        .map(|s| {
            s.sum(names::SOURCE_READ_BYTES_TOTAL, &[]) + s.sum(names::SINK_WRITTEN_BYTES_TOTAL, &[])
        })
        .sum();
    let requests = per_audio_hour(requests_usd);
    let cost = Cost {
        total_usd_per_audio_hour: compute.zip(requests).map(|(a, b)| a + b),
        compute_usd_per_audio_hour: compute,
        requests_usd_per_audio_hour: requests,
        nat_usd_per_audio_hour_if_routed: per_audio_hour(bytes_moved / 1e9 * 0.045),
        prices,
        task,
    };
    Report {
        workload: workload.to_owned(),
        mode: mode.to_owned(),
        started_utc,
        machine_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        workers: data.last_scrapes.len(),
        slots_per_worker,
        jobs,
        latency_s: Percentiles::of(successes.iter().filter_map(|j| latency(j)).collect()),
        failure_latency_s: Percentiles::of(failures.iter().filter_map(|j| latency(j)).collect()),
        queue_wait_s: Percentiles::of(
            successes
                .iter()
                .filter_map(|j| Some(latency(j)? - j.processing_s?))
                .collect(),
        ),
        processing_s: Percentiles::of(successes.iter().filter_map(|j| j.processing_s).collect()),
        wall_s: data.wall_s,
        jobs_per_minute: (successes.len() + failures.len()) as f64 / wall_s * 60.0,
        audio_hours,
        audio_hours_per_wall_hour: audio_hours / (wall_s / 3600.0),
        worker_cpu_s: data.final_cpu_s.clone(),
        cpu_s_per_audio_hour,
        memory,
        worker_outcomes,
        dead_letters: data
            .samples
            .iter()
            .map(|s| s.dead_letters)
            .max()
            .unwrap_or(0),
        s3_requests,
        sqs_requests,
        cost,
    }
}

/// The report as Markdown (what README figures are copied from).
pub fn markdown(report: &Report, plots: &[String]) -> String {
    let mut md = String::new();
    let p = |x: &Percentiles| {
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} s (n = {})",
            x.p50, x.p95, x.p99, x.max, x.count
        )
    };
    let money = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("${v:.4}"));
    let _ = writeln!(md, "# Load run: {}\n", report.workload);
    let _ = writeln!(
        md,
        "{} mode, started {} UTC, {} CPUs; {} workers × {} slots.\n",
        report.mode,
        report.started_utc,
        report.machine_cpus,
        report.workers,
        report.slots_per_worker
    );
    let _ = writeln!(md, "| measure | value |\n|---|---|");
    let jobs: Vec<String> = report
        .jobs
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(md, "| jobs | {} |", jobs.join(", "));
    let _ = writeln!(
        md,
        "| latency p50 / p95 / p99 / max (send → manifest) | {} |",
        p(&report.latency_s)
    );
    let _ = writeln!(
        md,
        "| queue wait p50 / p95 / p99 / max | {} |",
        p(&report.queue_wait_s)
    );
    let _ = writeln!(
        md,
        "| processing p50 / p95 / p99 / max | {} |",
        p(&report.processing_s)
    );
    let _ = writeln!(
        md,
        "| failed jobs' latency | {} |",
        p(&report.failure_latency_s)
    );
    let _ = writeln!(
        md,
        "| wall (first send → last manifest) | {:.1} s |",
        report.wall_s
    );
    let _ = writeln!(md, "| throughput | {:.2} jobs/min, {:.3} audio-hours in {:.1} s = {:.1} audio-hours per wall-hour |",
        report.jobs_per_minute, report.audio_hours, report.wall_s, report.audio_hours_per_wall_hour);
    let cpu: Vec<String> = report
        .worker_cpu_s
        .iter()
        .map(|c| format!("{c:.1}"))
        .collect();
    let _ = writeln!(
        md,
        "| worker CPU s | {} (per audio-hour: {}) |",
        cpu.join(" + "),
        report
            .cpu_s_per_audio_hour
            .map_or("n/a".to_owned(), |c| format!("{c:.0}"))
    );
    for (i, m) in report.memory.iter().enumerate() {
        let _ = writeln!(
            md,
            "| worker {i} peak RSS / budget | {:.1} / {:.1} MiB |",
            m.peak_rss_mib, m.budget_mib
        );
    }
    let outcomes: Vec<String> = report
        .worker_outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(md, "| worker outcomes | {} |", outcomes.join(", "));
    let _ = writeln!(
        md,
        "| dead-letter queue (max seen) | {} |",
        report.dead_letters
    );
    let s3: Vec<String> = report
        .s3_requests
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(md, "| S3 requests | {} |", s3.join(", "));
    let _ = writeln!(
        md,
        "| SQS requests (sends + receive + delete + heartbeats) | {} |",
        report.sqs_requests
    );
    let c = &report.cost;
    let _ = writeln!(
        md,
        "| $ per audio-hour, compute ({} vCPU, {} GB task, kept busy) | {} |",
        c.task.vcpu,
        c.task.memory_gb,
        money(c.compute_usd_per_audio_hour)
    );
    let _ = writeln!(
        md,
        "| $ per audio-hour, S3 + SQS requests | {} |",
        money(c.requests_usd_per_audio_hour)
    );
    let _ = writeln!(
        md,
        "| $ per audio-hour, total | {} |",
        money(c.total_usd_per_audio_hour)
    );
    let _ = writeln!(
        md,
        "| $ per audio-hour through a NAT gateway (avoid: S3 gateway endpoint) | {} |",
        money(c.nat_usd_per_audio_hour_if_routed)
    );
    let _ = writeln!(md, "\nPrices: {} (vCPU-hour ${}, GB-hour ${}). Compute assumes CPU-bound work: a task of V vCPUs does V × 3600 CPU seconds of jobs per hour when its queue is never empty.\n", c.prices.source, c.prices.vcpu_hour_usd, c.prices.gb_hour_usd);
    for plot in plots {
        let _ = writeln!(md, "![{plot}]({plot})");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(p.mean, 50.5);
        assert_eq!(Percentiles::of(vec![]).count, 0);
        assert_eq!(Percentiles::of(vec![3.0]).p99, 3.0);
    }
}

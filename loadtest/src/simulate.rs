//! The capacity model past one machine: a discrete-time simulation of the deployed service —
//! SQS queue, ECS tasks of V vCPUs and S job slots, the target-tracking scaling policy of
//! `deploy/longwave.yaml` — fed with the jobs of a measured run.
//!
//! # The model
//! - **Jobs** need CPU seconds. A measured run gives each successful job's processing time and
//!   the busy slots around it; with a task's CPUs shared equally by its running jobs (processor
//!   sharing, each job using at most what one job used alone in that run), a job's demand is
//!   `processing × min(job_cores, V_eff / busy)`, scaled so that the demands add up to the CPU
//!   the workers really spent. `V_eff` is the CPU the workers got when every slot was busy (the
//!   harness and the local S3 server share the machine); `job_cores` the CPU one job used when
//!   it ran alone. Predictions for Fargate use `--max-job-cores` (1.6: a job's three threads on
//!   real S3, deploy/README.md) instead.
//! - **Overhead** outside the worker's processing time (receive, manifest, the harness's poll) is
//!   the 10th percentile of latency − processing (the jobs that did not queue).
//! - **Tasks** take messages FIFO into free slots; a new task starts serving `start_latency_s`
//!   after the policy asks for it; a task being removed stops taking messages and leaves when
//!   its jobs end.
//! - **Scaling** follows AWS target tracking on `visible messages ÷ running tasks`: one datapoint
//!   a minute, seen `metric_delay_s` late; scale out when the last 3 datapoints are above the
//!   target (to `ceil(running × metric / target)`), scale in when the last 15 are below 90 % of
//!   it; cooldowns 60 s out, 300 s in; bounds min/max capacity.
//!
//! Validation (`--validate`): replay the measured run itself — its arrival times and jobs, one
//! "task" with the run's slots and `V_eff`, no scaling — and compare latency and throughput.

use crate::report::Percentiles;
use crate::workload::SplitMix64;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::VecDeque;

/// The scaling policy's settings as `deploy/longwave.yaml` ships them (a test reads the template
/// and fails when the two disagree).
pub mod template {
    /// `ScaleOutCooldown`, seconds.
    pub const SCALE_OUT_COOLDOWN_S: f64 = 60.0;
    /// `ScaleInCooldown`, seconds.
    pub const SCALE_IN_COOLDOWN_S: f64 = 300.0;
    /// `TargetBacklogPerTask`'s default.
    pub const TARGET_BACKLOG_PER_TASK: f64 = 10.0;
    /// `MinCapacity`'s default.
    pub const MIN_CAPACITY: u32 = 1;
    /// `MaxCapacity`'s default.
    pub const MAX_CAPACITY: u32 = 10;
    /// `MaxJobs`' default (slots per task).
    pub const MAX_JOBS: u32 = 2;
    /// `TaskCpu`'s default, in vCPUs.
    pub const TASK_VCPU: f64 = 1.0;
    /// `TaskMemory`'s default, in GB.
    pub const TASK_MEMORY_GB: f64 = 2.0;
}

/// One job the simulator can serve.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct JobCost {
    /// CPU seconds it needs.
    pub cpu_s: f64,
    /// Its input's length in seconds.
    pub audio_s: f64,
}

/// What was learned from a measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Each successful job's cost, in send order.
    pub jobs: Vec<JobCost>,
    /// The jobs' send times (s).
    pub arrivals: Vec<f64>,
    /// CPU the workers got with every slot busy (vCPUs).
    pub effective_vcpu: f64,
    /// CPU one job used when it ran alone (cores): the measured run's own limit per job.
    pub job_cores: f64,
    /// Slots in the run (workers × slots).
    pub slots: u32,
    /// Fixed time per job outside processing (s).
    pub overhead_s: f64,
    /// Measured latency (successful jobs).
    pub measured_latency_s: Percentiles,
    /// Each successful job's measured latency, in send order.
    pub measured_latencies: Vec<f64>,
    /// Measured finished jobs per minute.
    pub measured_jobs_per_minute: f64,
    /// Sum of the jobs' demands before scaling ÷ the CPU the workers spent.
    pub demand_scale: f64,
}

/// Reads a run's `report.json` into a calibration.
///
/// # Errors
/// When the file is not a harness report or has no successful job.
pub fn calibrate(report: &serde_json::Value, max_job_cores: f64) -> Result<Calibration> {
    let data = &report["data"];
    let r = &report["report"];
    let samples = data["samples"]
        .as_array()
        .context("report.json has no data.samples: not a longwave-loadtest report")?;
    let jobs = data["jobs"].as_array().context("no data.jobs")?;
    let slots =
        (r["workers"].as_u64().unwrap_or(1) * r["slots_per_worker"].as_u64().unwrap_or(1)) as u32;
    let f = |v: &serde_json::Value| v.as_f64();
    // Busy slots and total worker CPU over time.
    let times: Vec<f64> = samples.iter().filter_map(|s| f(&s["t_s"])).collect();
    let busy: Vec<f64> = samples
        .iter()
        .map(|s| f(&s["busy_slots"]).unwrap_or(0.0))
        .collect();
    let cpu: Vec<f64> = samples
        .iter()
        .map(|s| {
            s["cpu_s"]
                .as_array()
                .map_or(0.0, |a| a.iter().filter_map(|c| c.as_f64()).sum())
        })
        .collect();
    // V_eff: the workers' CPU rate over 10 s windows (shorter in a short run) where every slot
    // was busy throughout.
    let w = 10.min(times.len().saturating_sub(1));
    if w < 2 {
        bail!("the run is too short to calibrate the simulator (fewer than 3 samples)");
    }
    let rate = |i: usize| (cpu[i] - cpu[i - w]) / (times[i] - times[i - w]);
    let mut rates = Vec::new();
    for i in w..times.len() {
        if busy[i - w..=i].iter().all(|&b| b >= f64::from(slots)) {
            rates.push(rate(i));
        }
    }
    let effective_vcpu = if rates.is_empty() {
        // Never saturated: the best 10 s window.
        (w..times.len()).map(rate).fold(0.0, f64::max)
    } else {
        Percentiles::of(rates).p50
    };
    if effective_vcpu <= 0.0 {
        bail!("report.json has no CPU samples (remote runs cannot calibrate the simulator)");
    }
    // What one job uses alone: the CPU rate over 10 s windows with exactly one busy slot.
    let alone: Vec<f64> = (w..times.len())
        .filter(|&i| busy[i - w..=i].iter().all(|&b| (b - 1.0).abs() < 0.5))
        .map(rate)
        .collect();
    let job_cores = if alone.is_empty() {
        max_job_cores.min(effective_vcpu)
    } else {
        Percentiles::of(alone).p50.min(effective_vcpu).max(1e-3)
    };
    let mean_busy = |from: f64, to: f64| {
        let inside: Vec<f64> = times
            .iter()
            .zip(&busy)
            .filter(|(t, _)| **t >= from && **t <= to)
            .map(|(_, b)| *b)
            .collect();
        if inside.is_empty() {
            1.0
        } else {
            (inside.iter().sum::<f64>() / inside.len() as f64).max(1.0)
        }
    };
    let mut costs = Vec::new();
    let mut arrivals = Vec::new();
    let mut overheads: Vec<f64> = Vec::new();
    let mut measured_latencies = Vec::new();
    for job in jobs {
        if job["status"] != "success" {
            continue;
        }
        let (Some(sent), Some(done), Some(processing)) = (
            f(&job["sent_s"]),
            f(&job["done_s"]),
            f(&job["processing_s"]),
        ) else {
            continue;
        };
        let share = (effective_vcpu / mean_busy(done - processing - 0.5, done)).min(job_cores);
        costs.push(JobCost {
            cpu_s: processing * share,
            audio_s: f(&job["input_seconds"]).unwrap_or(0.0),
        });
        arrivals.push(sent);
        overheads.push(done - sent - processing);
        measured_latencies.push(done - sent);
    }
    if costs.is_empty() {
        bail!("report.json has no successful job to learn from");
    }
    let spent: f64 = r["worker_cpu_s"]
        .as_array()
        .map_or(0.0, |a| a.iter().filter_map(|c| c.as_f64()).sum());
    let demand: f64 = costs.iter().map(|c| c.cpu_s).sum();
    let demand_scale = demand / spent.max(1e-9);
    if spent > 0.0 {
        for c in &mut costs {
            c.cpu_s /= demand_scale;
        }
    }
    let latency: Percentiles = serde_json::from_value(r["latency_s"].clone()).unwrap_or_default();
    Ok(Calibration {
        jobs: costs,
        arrivals,
        effective_vcpu,
        job_cores,
        slots,
        overhead_s: crate::report::quantile(&mut overheads, 0.10),
        measured_latency_s: latency,
        measured_latencies,
        measured_jobs_per_minute: f(&r["jobs_per_minute"]).unwrap_or(0.0),
        demand_scale,
    })
}

/// The service being simulated.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// vCPUs per task.
    pub task_vcpu: f64,
    /// Job slots per task.
    pub slots: u32,
    /// Most cores one job uses.
    pub max_job_cores: f64,
    /// Scaling target: visible messages per running task.
    pub target_backlog_per_task: f64,
    /// Fewest tasks.
    pub min_tasks: u32,
    /// Most tasks.
    pub max_tasks: u32,
    /// Seconds from a scale-out decision to a serving task.
    pub start_latency_s: f64,
    /// How late CloudWatch sees the queue metric (s).
    pub metric_delay_s: f64,
    /// Scale-out cooldown (s).
    pub scale_out_cooldown_s: f64,
    /// Scale-in cooldown (s).
    pub scale_in_cooldown_s: f64,
    /// Whether the policy acts (off: `min_tasks` tasks throughout).
    pub autoscale: bool,
    /// Fixed time per job outside processing (s).
    pub overhead_s: f64,
}

/// What a simulation predicts.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Jobs served.
    pub jobs: usize,
    /// Arrival → done.
    pub latency_s: Percentiles,
    /// First arrival → last completion (s).
    pub wall_s: f64,
    /// Finished jobs per minute of `wall_s`.
    pub jobs_per_minute: f64,
    /// Task-hours paid.
    pub task_hours: f64,
    /// Most tasks at once.
    pub peak_tasks: u32,
    /// Audio-hours processed.
    pub audio_hours: f64,
    /// (minute, tasks running or starting, visible messages) once a minute.
    pub timeline: Vec<(f64, u32, usize)>,
    /// Each job's latency, in arrival order.
    pub latencies: Vec<f64>,
}

#[derive(Debug)]
struct Task {
    /// Time it starts serving.
    ready_at: f64,
    /// Remaining CPU seconds of each running job, with its arrival time and index.
    running: Vec<(f64, f64, usize)>,
    /// Told to leave: takes no more jobs.
    draining: bool,
}

/// Runs the service on `arrivals` (time, job) with a 0.1 s step.
pub fn simulate(service: &Service, arrivals: &[(f64, JobCost)]) -> Outcome {
    const DT: f64 = 0.1;
    let mut queue: VecDeque<(f64, usize)> = VecDeque::new();
    let mut tasks: Vec<Task> = (0..service.min_tasks.max(1))
        .map(|_| Task {
            ready_at: 0.0,
            running: Vec::new(),
            draining: false,
        })
        .collect();
    let mut next = 0;
    let mut done_at = vec![f64::NAN; arrivals.len()];
    let start = arrivals.first().map_or(0.0, |a| a.0);
    let mut step: u64 = 0;
    let mut t = start;
    let mut datapoints: Vec<(f64, f64)> = Vec::new(); // (time, backlog per task)
    let mut last_out = f64::NEG_INFINITY;
    let mut last_in = f64::NEG_INFINITY;
    let mut task_seconds = 0.0;
    let mut peak_tasks = tasks.len() as u32;
    let mut timeline = Vec::new();
    let mut finished = 0;
    let mut next_minute = t;
    while finished < arrivals.len() {
        while next < arrivals.len() && arrivals[next].0 <= t + 1e-9 {
            queue.push_back((arrivals[next].0, next));
            next += 1;
        }
        // Free slots take messages, oldest first.
        for task in tasks.iter_mut() {
            while !task.draining
                && task.ready_at <= t
                && task.running.len() < service.slots as usize
            {
                let Some((arrived, index)) = queue.pop_front() else {
                    break;
                };
                task.running.push((arrivals[index].1.cpu_s, arrived, index));
            }
        }
        // Processor sharing inside each task.
        for task in tasks.iter_mut() {
            let n = task.running.len();
            if n == 0 {
                continue;
            }
            let rate = (service.task_vcpu / n as f64).min(service.max_job_cores);
            for job in task.running.iter_mut() {
                job.0 -= rate * DT;
            }
            task.running.retain(|&(left, _, index)| {
                // A job whose work ends inside this step is done at its end.
                if left <= 1e-9 {
                    done_at[index] = t + DT + service.overhead_s;
                    finished += 1;
                    false
                } else {
                    true
                }
            });
        }
        tasks.retain(|task| !(task.draining && task.running.is_empty()));
        task_seconds += tasks.len() as f64 * DT;
        peak_tasks = peak_tasks.max(tasks.len() as u32);
        if t >= next_minute {
            let running = tasks.iter().filter(|k| k.ready_at <= t).count().max(1);
            datapoints.push((t, queue.len() as f64 / running as f64));
            timeline.push(((t - start) / 60.0, tasks.len() as u32, queue.len()));
            next_minute += 60.0;
            if service.autoscale {
                scale(
                    service,
                    &mut tasks,
                    &datapoints,
                    t,
                    &mut last_out,
                    &mut last_in,
                );
            }
        }
        step += 1;
        t = start + step as f64 * DT;
        if t - start > 30.0 * 86_400.0 {
            break; // a week of backlog is an answer too; stop there
        }
    }
    let latencies: Vec<f64> = arrivals
        .iter()
        .zip(&done_at)
        .map(|(a, d)| d - a.0)
        .collect();
    let last = done_at.iter().copied().fold(f64::NAN, f64::max);
    let wall_s = last - start;
    Outcome {
        jobs: arrivals.len(),
        latency_s: Percentiles::of(latencies.clone()),
        latencies,
        wall_s,
        jobs_per_minute: finished as f64 / wall_s.max(1e-9) * 60.0,
        task_hours: task_seconds / 3600.0,
        peak_tasks,
        audio_hours: arrivals.iter().map(|a| a.1.audio_s).sum::<f64>() / 3600.0,
        timeline,
    }
}

/// One evaluation of the target-tracking policy (once a minute).
fn scale(
    service: &Service,
    tasks: &mut Vec<Task>,
    datapoints: &[(f64, f64)],
    t: f64,
    last_out: &mut f64,
    last_in: &mut f64,
) {
    // What CloudWatch has: the datapoints at least `metric_delay_s` old.
    let seen: Vec<f64> = datapoints
        .iter()
        .filter(|(at, _)| *at <= t - service.metric_delay_s)
        .map(|(_, v)| *v)
        .collect();
    let target = service.target_backlog_per_task;
    let active = tasks.iter().filter(|k| !k.draining).count() as u32;
    let last = |n: usize| (seen.len() >= n).then(|| &seen[seen.len() - n..]);
    if let Some(recent) = last(3) {
        if recent.iter().all(|&v| v > target) && t - *last_out >= service.scale_out_cooldown_s {
            let metric = recent[recent.len() - 1];
            let wanted = ((f64::from(active) * metric / target).ceil() as u32)
                .clamp(service.min_tasks, service.max_tasks);
            for _ in active..wanted {
                tasks.push(Task {
                    ready_at: t + service.start_latency_s,
                    running: Vec::new(),
                    draining: false,
                });
            }
            if wanted > active {
                *last_out = t;
            }
            return;
        }
    }
    if let Some(recent) = last(15) {
        if recent.iter().all(|&v| v < 0.9 * target) && t - *last_in >= service.scale_in_cooldown_s {
            let metric = recent[recent.len() - 1];
            let wanted = ((f64::from(active) * metric / target).ceil() as u32)
                .clamp(service.min_tasks, service.max_tasks);
            let mut remove = active.saturating_sub(wanted);
            // Idle tasks first.
            tasks.sort_by_key(|k| k.running.len());
            for task in tasks.iter_mut().filter(|k| !k.draining) {
                if remove == 0 {
                    break;
                }
                task.draining = true;
                remove -= 1;
            }
            if active > wanted {
                *last_in = t;
            }
        }
    }
}

/// An arrival curve for a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Curve {
    /// A diurnal day (quiet nights, busy afternoons) with a one-hour peak of `--peak` × the
    /// day's mean rate at 18:00.
    Day,
    /// 1,000 files at once, then nothing.
    Burst,
}

/// The arrivals of `curve` at a mean of `mean_per_hour` jobs, drawing jobs from `jobs`.
pub fn arrivals(
    curve: Curve,
    mean_per_hour: f64,
    peak: f64,
    jobs: &[JobCost],
    seed: u64,
) -> Vec<(f64, JobCost)> {
    let mut rng = SplitMix64::new(seed);
    let draw = |rng: &mut SplitMix64| jobs[(rng.next_u64() % jobs.len() as u64) as usize];
    let mut out = Vec::new();
    match curve {
        Curve::Burst => {
            for _ in 0..1000 {
                out.push((0.0, draw(&mut rng)));
            }
        }
        Curve::Day => {
            // Rate(t) = mean × (1 + 0.8 sin(2π (h − 12) / 24)) outside the peak hour; thinning
            // of a Poisson process at the day's highest rate.
            let base = |h: f64| {
                mean_per_hour * (1.0 + 0.8 * ((h - 12.0) / 24.0 * std::f64::consts::TAU).sin())
            };
            let rate = |h: f64| {
                if (18.0..19.0).contains(&h) {
                    mean_per_hour * peak
                } else {
                    base(h)
                }
            };
            let top = (mean_per_hour * peak).max(mean_per_hour * 1.8) / 3600.0;
            let mut t = 0.0;
            loop {
                t += rng.exponential(top);
                if t >= 86_400.0 {
                    break;
                }
                if rng.next_f64() < rate(t / 3600.0) / 3600.0 / top {
                    out.push((t, draw(&mut rng)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_simulated_is_the_policy_deployed() {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/longwave.yaml"
        ))
        .expect("deploy/longwave.yaml");
        // A parameter's Default, or a property's value, as the template writes it.
        let default_of = |name: &str| -> f64 {
            let at = yaml
                .find(&format!("\n  {name}:\n"))
                .unwrap_or_else(|| panic!("parameter {name}"));
            let block = &yaml[at..];
            let line = block
                .lines()
                .find(|l| l.trim_start().starts_with("Default:"))
                .expect("Default");
            line.split(':')
                .nth(1)
                .expect("value")
                .trim()
                .trim_matches('"')
                .parse()
                .expect("number")
        };
        let property = |name: &str| -> f64 {
            let line = yaml
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name}:")))
                .unwrap_or_else(|| panic!("property {name}"));
            line.split(':')
                .nth(1)
                .expect("value")
                .trim()
                .trim_matches('"')
                .parse()
                .expect("number")
        };
        assert_eq!(property("ScaleOutCooldown"), template::SCALE_OUT_COOLDOWN_S);
        assert_eq!(property("ScaleInCooldown"), template::SCALE_IN_COOLDOWN_S);
        assert_eq!(
            default_of("TargetBacklogPerTask"),
            template::TARGET_BACKLOG_PER_TASK
        );
        assert_eq!(default_of("MinCapacity"), f64::from(template::MIN_CAPACITY));
        assert_eq!(default_of("MaxCapacity"), f64::from(template::MAX_CAPACITY));
        assert_eq!(default_of("MaxJobs"), f64::from(template::MAX_JOBS));
        assert_eq!(default_of("TaskCpu") / 1024.0, template::TASK_VCPU);
        assert_eq!(default_of("TaskMemory") / 1024.0, template::TASK_MEMORY_GB);
    }

    fn service(autoscale: bool) -> Service {
        Service {
            task_vcpu: 1.0,
            slots: 1,
            max_job_cores: 1.0,
            target_backlog_per_task: 10.0,
            min_tasks: 1,
            max_tasks: 20,
            start_latency_s: 60.0,
            metric_delay_s: 60.0,
            scale_out_cooldown_s: 60.0,
            scale_in_cooldown_s: 300.0,
            autoscale,
            overhead_s: 0.5,
        }
    }

    fn job(cpu_s: f64) -> JobCost {
        JobCost {
            cpu_s,
            audio_s: 60.0,
        }
    }

    #[test]
    fn an_unloaded_task_serves_each_job_in_its_cpu_time() {
        // One 1 s job every 2 s on one vCPU: no queueing, latency = work + overhead.
        let arrivals: Vec<_> = (0..50).map(|i| (f64::from(i) * 2.0, job(1.0))).collect();
        let out = simulate(&service(false), &arrivals);
        assert!(
            (out.latency_s.p50 - 1.5).abs() < 0.15,
            "{:?}",
            out.latency_s
        );
        assert!(
            (out.latency_s.max - 1.5).abs() < 0.15,
            "{:?}",
            out.latency_s
        );
    }

    #[test]
    fn shared_cpus_slow_each_job_and_a_queue_forms_past_capacity() {
        // Two slots on one vCPU: two 1 s jobs at once both end after 2 s.
        let mut two = service(false);
        two.slots = 2;
        let out = simulate(&two, &[(0.0, job(1.0)), (0.0, job(1.0))]);
        assert!(
            (out.latency_s.max - 2.5).abs() < 0.15,
            "{:?}",
            out.latency_s
        );
        // Ten 1 s jobs at once on one slot: the last waits for nine.
        let out = simulate(&service(false), &vec![(0.0, job(1.0)); 10]);
        assert!(
            (out.latency_s.max - 10.5).abs() < 0.2,
            "{:?}",
            out.latency_s
        );
    }

    #[test]
    fn a_backlog_scales_out_and_an_idle_service_scales_back_in() {
        // 1,000 jobs of 10 CPU s at once: one task would need 10,000 s. A last job four hours
        // later keeps the service running through the quiet time in between.
        let mut arrivals = vec![(0.0, job(10.0)); 1000];
        arrivals.push((4.0 * 3600.0, job(10.0)));
        let alone = simulate(&service(false), &arrivals);
        let scaled = simulate(&service(true), &arrivals);
        assert_eq!(alone.peak_tasks, 1);
        assert!(scaled.peak_tasks >= 10, "{}", scaled.peak_tasks);
        // The burst clears at least 5× sooner (its median job waits far less)…
        assert!(
            scaled.latency_s.p50 < alone.latency_s.p50 / 5.0,
            "{} vs {}",
            scaled.latency_s.p50,
            alone.latency_s.p50
        );
        // …and the quiet hours scale the service back in to its minimum.
        let last = scaled.timeline.last().map_or(0, |&(_, t, _)| t);
        assert_eq!(
            last,
            1,
            "{:?}",
            &scaled.timeline[scaled.timeline.len() - 5..]
        );
    }
}

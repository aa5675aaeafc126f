//! The workload file (TOML): how jobs arrive, on which inputs, doing what, in which message
//! shapes; and the deterministic schedule it expands to.
//!
//! Everything random is drawn from one seeded generator, so the same file gives the same
//! schedule (arrival times, inputs, work, shapes) run after run.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A parsed, validated workload file. See `loadtest/workloads/*.toml` for examples.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// A one-line description, printed in the report.
    pub name: String,
    /// Seed of every random draw (arrivals, mixes).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How jobs arrive.
    pub arrivals: Arrivals,
    /// The inputs, by weight.
    pub inputs: Vec<InputSpec>,
    /// What jobs do, by weight.
    pub work: Vec<WorkSpec>,
    /// Fraction of jobs (0..=1) whose input is not audio: they must fail cleanly.
    #[serde(default)]
    pub corrupt_fraction: f64,
    /// Message shapes, by weight (default: all job messages).
    #[serde(default)]
    pub shapes: Shapes,
    /// The workers local mode starts.
    #[serde(default)]
    pub local: LocalSpec,
}

fn default_seed() -> u64 {
    1
}

/// The arrival process.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    /// `constant`, `poisson`, `bursts`, `ramp` or `trace`.
    pub process: Process,
    /// Jobs per minute (constant, poisson; the average for bursts).
    #[serde(default)]
    pub rate_per_minute: Option<f64>,
    /// Ramp: rate at the start and at the end, jobs per minute.
    #[serde(default)]
    pub from_per_minute: Option<f64>,
    /// Ramp: rate at the end.
    #[serde(default)]
    pub to_per_minute: Option<f64>,
    /// Bursts: jobs sent at once.
    #[serde(default)]
    pub burst_size: Option<u32>,
    /// Bursts: seconds between bursts.
    #[serde(default)]
    pub every_s: Option<f64>,
    /// Trace: a file of arrival offsets in seconds, one per line (relative to the workload
    /// file).
    #[serde(default)]
    pub trace: Option<String>,
    /// Stop after this many jobs…
    #[serde(default)]
    pub jobs: Option<u32>,
    /// …or after this many seconds of arrivals.
    #[serde(default)]
    pub duration_s: Option<f64>,
}

/// The shape of the arrival process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Process {
    /// Evenly spaced.
    Constant,
    /// Exponential gaps (a Poisson process).
    Poisson,
    /// `burst_size` jobs at once every `every_s` seconds.
    Bursts,
    /// Poisson with a rate moving linearly from `from_per_minute` to `to_per_minute`.
    Ramp,
    /// The offsets in a file.
    Trace,
}

/// One kind of input.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Length in seconds (10 s … 3 h).
    pub seconds: f64,
    /// `mp3`, `m4a`, `flac` or `wav`.
    pub format: String,
    /// Relative weight in the mix.
    #[serde(default = "one")]
    pub weight: f64,
}

/// One kind of work: a preset, or a chain with an optional format.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkSpec {
    /// A preset name (`8d`, `oneshot`, `transcode`).
    #[serde(default)]
    pub preset: Option<String>,
    /// A chain, as in a job message.
    #[serde(default)]
    pub chain: Option<serde_json::Value>,
    /// Output format, as in a job message.
    #[serde(default)]
    pub format: Option<String>,
    /// Relative weight in the mix.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// Message shapes by weight.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shapes {
    /// Job messages `{"input": …, "output": …, "preset" | "chain": …}`.
    #[serde(default)]
    pub job: f64,
    /// S3 event notifications (the worker's `event_params` say what to do).
    #[serde(default)]
    pub s3_event: f64,
    /// EventBridge "Object Created" events.
    #[serde(default)]
    pub eventbridge: f64,
}

impl Default for Shapes {
    fn default() -> Self {
        Shapes {
            job: 1.0,
            s3_event: 0.0,
            eventbridge: 0.0,
        }
    }
}

/// The workers local mode starts, and what event messages do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSpec {
    /// Worker processes.
    #[serde(default = "two")]
    pub workers: u32,
    /// Job slots per worker (`--max-jobs`).
    #[serde(default = "two")]
    pub slots: u32,
    /// The workers' `PROCESSING_PARAMS`: what event messages do (also assumed of remote workers).
    #[serde(default = "default_event_params")]
    pub event_params: String,
}

fn two() -> u32 {
    2
}

fn default_event_params() -> String {
    r#"{"preset":"8d"}"#.to_owned()
}

impl Default for LocalSpec {
    fn default() -> Self {
        LocalSpec {
            workers: 2,
            slots: 2,
            event_params: default_event_params(),
        }
    }
}

/// The message shape of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A job message.
    Job,
    /// An S3 event notification.
    S3Event,
    /// An EventBridge event.
    #[serde(rename = "eventbridge")]
    EventBridge,
}

/// One job of the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Position in the schedule (0-based).
    pub index: usize,
    /// Seconds after the start when it is sent.
    pub at_s: f64,
    /// Index into [`Workload::inputs`], or `None` for a corrupt input.
    pub input: Option<usize>,
    /// Index into [`Workload::work`] (ignored for events: the workers' parameters apply).
    pub work: usize,
    /// The message shape.
    pub shape: Shape,
}

/// The most jobs a schedule may hold.
const MAX_JOBS: usize = 1_000_000;

impl Workload {
    /// Reads and validates a workload file.
    ///
    /// # Errors
    /// The file's path and what is wrong (TOML syntax, an unknown field, a value out of range).
    pub fn load(path: &Path) -> Result<(Workload, Vec<f64>)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the workload {}", path.display()))?;
        let workload: Workload =
            toml::from_str(&text).with_context(|| format!("workload {}", path.display()))?;
        let trace = match &workload.arrivals.trace {
            Some(file) => {
                let trace_path = path.parent().unwrap_or(Path::new(".")).join(file);
                read_trace(&trace_path)?
            }
            None => Vec::new(),
        };
        workload
            .validate(&trace)
            .with_context(|| format!("workload {}", path.display()))?;
        Ok((workload, trace))
    }

    fn validate(&self, trace: &[f64]) -> Result<()> {
        let a = &self.arrivals;
        let positive = |name: &str, v: Option<f64>| -> Result<f64> {
            match v {
                Some(v) if v.is_finite() && v > 0.0 => Ok(v),
                Some(v) => bail!("arrivals.{name} = {v} must be a positive number"),
                None => bail!("arrivals.{name} is required for process {:?}", a.process),
            }
        };
        match a.process {
            Process::Constant | Process::Poisson => {
                positive("rate_per_minute", a.rate_per_minute)?;
            }
            Process::Bursts => {
                positive("every_s", a.every_s)?;
                if a.burst_size.unwrap_or(0) == 0 {
                    bail!("arrivals.burst_size must be at least 1 for bursts");
                }
            }
            Process::Ramp => {
                positive("from_per_minute", a.from_per_minute)?;
                positive("to_per_minute", a.to_per_minute)?;
            }
            Process::Trace => {
                if trace.is_empty() {
                    bail!("arrivals.trace names no offsets (a file with one number per line)");
                }
            }
        }
        match (a.jobs, a.duration_s) {
            (None, None) if a.process != Process::Trace => {
                bail!("arrivals: give jobs or duration_s")
            }
            (Some(0), _) => bail!("arrivals.jobs must be at least 1"),
            (Some(n), _) if n as usize > MAX_JOBS => bail!("arrivals.jobs is above {MAX_JOBS}"),
            (_, Some(d)) if !(d.is_finite() && d > 0.0 && d <= 7.0 * 86_400.0) => {
                bail!("arrivals.duration_s = {d} must be in (0, 604800]")
            }
            _ => {}
        }
        if self.inputs.is_empty() {
            bail!("inputs: give at least one [[inputs]]");
        }
        for (i, input) in self.inputs.iter().enumerate() {
            if !(1.0..=3.0 * 3600.0 + 1.0).contains(&input.seconds) {
                bail!(
                    "inputs[{i}].seconds = {} is outside 1 ..= 10800",
                    input.seconds
                );
            }
            if !["mp3", "m4a", "flac", "wav"].contains(&input.format.as_str()) {
                bail!(
                    "inputs[{i}].format = {:?}: allowed mp3, m4a, flac, wav",
                    input.format
                );
            }
            weight(&format!("inputs[{i}].weight"), input.weight)?;
        }
        if self.work.is_empty() {
            bail!("work: give at least one [[work]]");
        }
        for (i, work) in self.work.iter().enumerate() {
            if work.preset.is_some() == work.chain.is_some() {
                bail!("work[{i}]: give preset or chain (one of them)");
            }
            // Checked by longwave's own parser now, not by the workers an hour into a run.
            if let Some(name) = &work.preset {
                longwave::job::preset(name).with_context(|| format!("work[{i}].preset"))?;
            }
            if let Some(chain) = &work.chain {
                longwave::job::parse_chain(&chain.to_string())
                    .with_context(|| format!("work[{i}].chain"))?;
            }
            if let Some(format) = &work.format {
                if longwave::encode::OutputFormat::from_name(format).is_none() {
                    bail!(
                        "work[{i}].format = {format:?}: allowed {}",
                        longwave::encode::OutputFormat::NAMES
                    );
                }
            }
            weight(&format!("work[{i}].weight"), work.weight)?;
        }
        if !(0.0..=1.0).contains(&self.corrupt_fraction) {
            bail!(
                "corrupt_fraction = {} is outside 0 ..= 1",
                self.corrupt_fraction
            );
        }
        let s = &self.shapes;
        for (name, w) in [
            ("job", s.job),
            ("s3_event", s.s3_event),
            ("eventbridge", s.eventbridge),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                bail!("shapes.{name} = {w} must be ≥ 0");
            }
        }
        if s.job + s.s3_event + s.eventbridge <= 0.0 {
            bail!("shapes: at least one weight must be positive");
        }
        if !(1..=64).contains(&self.local.workers) || !(1..=64).contains(&self.local.slots) {
            bail!("local.workers and local.slots must be in 1 ..= 64");
        }
        Ok(())
    }

    /// The schedule: every job's send time, input, work and shape, deterministic for the seed.
    pub fn schedule(&self, trace: &[f64]) -> Vec<Planned> {
        let mut rng = SplitMix64::new(self.seed);
        let times = self.arrival_times(trace, &mut rng);
        let input_weights: Vec<f64> = self.inputs.iter().map(|i| i.weight).collect();
        let work_weights: Vec<f64> = self.work.iter().map(|w| w.weight).collect();
        let shape_weights = [
            self.shapes.job,
            self.shapes.s3_event,
            self.shapes.eventbridge,
        ];
        times
            .into_iter()
            .enumerate()
            .map(|(index, at_s)| {
                let corrupt = rng.next_f64() < self.corrupt_fraction;
                let input = pick(&input_weights, rng.next_f64());
                let work = pick(&work_weights, rng.next_f64());
                let shape = match pick(&shape_weights, rng.next_f64()) {
                    0 => Shape::Job,
                    1 => Shape::S3Event,
                    _ => Shape::EventBridge,
                };
                Planned {
                    index,
                    at_s,
                    input: (!corrupt).then_some(input),
                    work,
                    shape,
                }
            })
            .collect()
    }

    fn arrival_times(&self, trace: &[f64], rng: &mut SplitMix64) -> Vec<f64> {
        let a = &self.arrivals;
        let limit = a.jobs.map_or(MAX_JOBS, |n| n as usize);
        let end = a.duration_s.unwrap_or(f64::INFINITY);
        let mut times = Vec::new();
        let mut t = 0.0_f64;
        let push = |t: f64, times: &mut Vec<f64>| -> bool {
            if times.len() >= limit || t > end {
                return false;
            }
            times.push(t);
            true
        };
        match a.process {
            Process::Constant => {
                let gap = 60.0 / a.rate_per_minute.unwrap_or(1.0);
                while push(t, &mut times) {
                    t += gap;
                }
            }
            Process::Poisson => {
                let rate = a.rate_per_minute.unwrap_or(1.0) / 60.0;
                loop {
                    t += rng.exponential(rate);
                    if !push(t, &mut times) {
                        break;
                    }
                }
            }
            Process::Ramp => {
                let (from, to) = (
                    a.from_per_minute.unwrap_or(1.0) / 60.0,
                    a.to_per_minute.unwrap_or(1.0) / 60.0,
                );
                // The ramp spans the duration, or the time the jobs take at the mean rate.
                let span = a
                    .duration_s
                    .unwrap_or_else(|| limit as f64 / ((from + to) / 2.0));
                loop {
                    let rate = from + (to - from) * (t / span).clamp(0.0, 1.0);
                    t += rng.exponential(rate);
                    if !push(t, &mut times) {
                        break;
                    }
                }
            }
            Process::Bursts => {
                let every = a.every_s.unwrap_or(60.0);
                'bursts: loop {
                    for _ in 0..a.burst_size.unwrap_or(1) {
                        if !push(t, &mut times) {
                            break 'bursts;
                        }
                    }
                    t += every;
                }
            }
            Process::Trace => {
                for &offset in trace {
                    if !push(offset, &mut times) {
                        break;
                    }
                }
            }
        }
        times
    }
}

fn weight(field: &str, w: f64) -> Result<()> {
    if w.is_finite() && w > 0.0 {
        Ok(())
    } else {
        bail!("{field} = {w} must be positive")
    }
}

fn read_trace(path: &Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the trace {}", path.display()))?;
    let mut offsets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value: f64 = line
            .parse()
            .with_context(|| format!("{}:{}: not a number: {line:?}", path.display(), n + 1))?;
        if !(value.is_finite() && value >= 0.0) {
            bail!("{}:{}: offsets are seconds ≥ 0", path.display(), n + 1);
        }
        offsets.push(value);
    }
    offsets.sort_by(f64::total_cmp);
    Ok(offsets)
}

/// The index `u` (uniform in [0, 1)) falls on, by weight.
fn pick(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut left = u * total;
    for (i, w) in weights.iter().enumerate() {
        if left < *w {
            return i;
        }
        left -= w;
    }
    weights.len().saturating_sub(1)
}

/// SplitMix64: a small, well-tested generator (Steele, Lea, Flood 2014), enough for schedules;
/// written here because a schedule needs no more than this and no crate is worth a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential gap for events at `rate` per second.
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -(1.0 - self.next_f64()).ln() / rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(toml_text: &str) -> Workload {
        let w: Workload = toml::from_str(toml_text).expect("toml");
        w.validate(&[]).expect("valid");
        w
    }

    const BASE: &str = r#"
        name = "t"
        [arrivals]
        process = "poisson"
        rate_per_minute = 60
        jobs = 2000
        [[inputs]]
        seconds = 10
        format = "mp3"
        [[work]]
        preset = "8d"
    "#;

    #[test]
    fn poisson_schedule_has_the_rate_and_is_deterministic() {
        let w = workload(BASE);
        let a = w.schedule(&[]);
        let b = w.schedule(&[]);
        assert_eq!(a.len(), 2000);
        assert_eq!(
            a.iter().map(|p| p.at_s).collect::<Vec<_>>(),
            b.iter().map(|p| p.at_s).collect::<Vec<_>>()
        );
        // 2000 arrivals at 1/s: the last near 2000 s (±5 % is > 2 standard deviations).
        let last = a.last().expect("jobs").at_s;
        assert!((1900.0..2100.0).contains(&last), "{last}");
    }

    #[test]
    fn bursts_constant_and_mixes() {
        let w = workload(&BASE.replace(
            "process = \"poisson\"\n        rate_per_minute = 60",
            "process = \"bursts\"\n        burst_size = 5\n        every_s = 30",
        ));
        let times: Vec<f64> = w.schedule(&[]).iter().take(11).map(|p| p.at_s).collect();
        assert_eq!(times[..5], [0.0; 5]);
        assert_eq!(times[5..10], [30.0; 5]);
        assert_eq!(times[10], 60.0);

        let mut w = workload(BASE);
        w.corrupt_fraction = 0.25;
        w.shapes = Shapes {
            job: 1.0,
            s3_event: 1.0,
            eventbridge: 0.0,
        };
        let s = w.schedule(&[]);
        let corrupt = s.iter().filter(|p| p.input.is_none()).count() as f64 / 2000.0;
        assert!((0.2..0.3).contains(&corrupt), "{corrupt}");
        let events = s.iter().filter(|p| p.shape == Shape::S3Event).count() as f64 / 2000.0;
        assert!((0.45..0.55).contains(&events), "{events}");
        assert!(s.iter().all(|p| p.shape != Shape::EventBridge));
    }

    #[test]
    fn bad_values_name_the_field() {
        let bad = |from: &str, to: &str| {
            let w: Workload = toml::from_str(&BASE.replace(from, to)).expect("toml");
            w.validate(&[]).unwrap_err().to_string()
        };
        assert!(bad("seconds = 10", "seconds = 0").contains("inputs[0].seconds"));
        assert!(bad("format = \"mp3\"", "format = \"ogg\"").contains("inputs[0].format"));
        assert!(bad("rate_per_minute = 60", "rate_per_minute = -1").contains("rate_per_minute"));
        assert!(bad("preset = \"8d\"", "").contains("work[0]"));
        assert!(bad("preset = \"8d\"", "preset = \"9d\"").contains("work[0].preset"));
        assert!(toml::from_str::<Workload>(&BASE.replace("jobs = 2000", "jobz = 1")).is_err());
    }
}

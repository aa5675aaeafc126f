//! The run's PNG plots (plotters, bitmap backend): backlog and busy slots, latency CDF, RSS
//! against the budget, throughput over time.
//!
//! Text is drawn with ab_glyph from a TrueType file read at run time (DejaVu Sans, Debian's
//! `fonts-dejavu-core`, or `LONGWAVE_PLOT_FONT`), so nothing links fontconfig.

use crate::run::RunData;
use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// Where the font is looked for unless `LONGWAVE_PLOT_FONT` names one.
const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the font plotters draws text with; once per process.
fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = std::env::var("LONGWAVE_PLOT_FONT").unwrap_or_else(|_| DEFAULT_FONT.into());
            let bytes = std::fs::read(&path).map_err(|e| {
                format!("cannot read the plot font {path}: {e} (install fonts-dejavu-core or set LONGWAVE_PLOT_FONT)")
            })?;
            // plotters keeps the font for the process's life: leaked once, on purpose.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a TrueType font plotters can use"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Writes every plot into `dir`; returns the file names.
///
/// # Errors
/// When the font cannot be loaded or a PNG cannot be written.
pub fn write_all(data: &RunData, dir: &Path) -> Result<Vec<String>> {
    register_font()?;
    let mut written = Vec::new();
    for (name, draw) in [
        ("queue.png", queue as fn(&RunData, &Path) -> Result<()>),
        ("latency_cdf.png", latency_cdf),
        ("memory.png", memory),
        ("throughput.png", throughput),
    ] {
        let path = dir.join(name);
        draw(data, &path).with_context(|| format!("cannot draw {}", path.display()))?;
        written.push(name.to_owned());
    }
    Ok(written)
}

const SIZE: (u32, u32) = (1000, 500);

/// One line of a chart: its legend, its points, and whether it is drawn thin (a limit).
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    thin: bool,
}

fn line(label: impl Into<String>, points: Vec<(f64, f64)>, thin: bool) -> Line {
    Line {
        label: label.into(),
        points,
        thin,
    }
}
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One chart: `series` are (label, points); axes from the data.
fn line_chart(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[Line],
) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let x_max = series
        .iter()
        .flat_map(|l| l.points.iter().map(|(x, _)| *x))
        .fold(1e-9_f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|l| l.points.iter().map(|(_, y)| *y))
        .fold(1e-9_f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (
        i,
        Line {
            label,
            points,
            thin,
        },
    ) in series.iter().enumerate()
    {
        let colour = COLOURS[i % COLOURS.len()];
        let style = if *thin {
            colour.stroke_width(1)
        } else {
            colour.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(|e| anyhow!("{e}"))?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn queue(data: &RunData, path: &Path) -> Result<()> {
    let points = |f: &dyn Fn(&crate::run::Sample) -> f64| -> Vec<(f64, f64)> {
        data.samples.iter().map(|s| (s.t_s, f(s))).collect()
    };
    line_chart(
        path,
        "Backlog and busy job slots",
        ("seconds since start", "messages / slots"),
        &[
            line("visible messages", points(&|s| s.visible as f64), false),
            line("in flight", points(&|s| s.in_flight as f64), false),
            line("busy slots", points(&|s| s.busy_slots), false),
            line("slots", points(&|s| s.slots), true),
        ],
    )
}

fn latency_cdf(data: &RunData, path: &Path) -> Result<()> {
    let mut latencies: Vec<f64> = data
        .jobs
        .iter()
        .filter(|j| j.status.as_deref() == Some("success"))
        .filter_map(|j| Some(j.done_s? - j.sent_s?))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let n = latencies.len().max(1) as f64;
    let points: Vec<(f64, f64)> = latencies
        .iter()
        .enumerate()
        .map(|(i, &l)| (l, (i + 1) as f64 / n))
        .collect();
    line_chart(
        path,
        "Latency CDF (send → manifest, successful jobs)",
        ("seconds", "fraction of jobs"),
        &[line("latency", points, false)],
    )
}

fn memory(data: &RunData, path: &Path) -> Result<()> {
    let workers = data
        .samples
        .iter()
        .map(|s| s.rss_bytes.len())
        .max()
        .unwrap_or(0);
    let mut series = Vec::new();
    for w in 0..workers {
        let rss = data
            .samples
            .iter()
            .filter_map(|s| Some((s.t_s, s.rss_bytes.get(w)? / 1_048_576.0)))
            .collect();
        let budget = data
            .samples
            .iter()
            .filter_map(|s| Some((s.t_s, s.budget_bytes.get(w)? / 1_048_576.0)))
            .collect();
        series.push(line(format!("worker {w} RSS"), rss, false));
        series.push(line(format!("worker {w} budget"), budget, true));
    }
    line_chart(
        path,
        "Worker RSS against the memory budget",
        ("seconds since start", "MiB"),
        &series,
    )
}

fn throughput(data: &RunData, path: &Path) -> Result<()> {
    const WINDOW: f64 = 30.0;
    let end = data.samples.last().map_or(0.0, |s| s.t_s);
    let mut jobs = Vec::new();
    let mut audio = Vec::new();
    let mut t = WINDOW;
    while t <= end + WINDOW {
        let in_window = data
            .jobs
            .iter()
            .filter(|j| j.done_s.is_some_and(|d| d > t - WINDOW && d <= t));
        let finished = in_window.clone().count() as f64;
        let seconds: f64 = in_window
            .filter(|j| j.status.as_deref() == Some("success"))
            .map(|j| j.input_seconds)
            .sum();
        jobs.push((t, finished * 60.0 / WINDOW));
        audio.push((t, seconds / WINDOW));
        t += WINDOW;
    }
    line_chart(
        path,
        "Throughput (30 s windows)",
        ("seconds since start", "jobs/min; audio-hours per hour"),
        &[
            line("jobs per minute", jobs, false),
            line("audio-hours per wall-hour", audio, false),
        ],
    )
}

/// The simulated service over time: tasks (running or starting) and visible messages, once a
/// minute.
///
/// # Errors
/// When the font cannot be loaded or the PNG cannot be written.
pub fn simulation(outcome: &crate::simulate::Outcome, path: &Path) -> Result<()> {
    register_font()?;
    let tasks = outcome
        .timeline
        .iter()
        .map(|&(m, t, _)| (m, f64::from(t)))
        .collect();
    let visible = outcome
        .timeline
        .iter()
        .map(|&(m, _, v)| (m, v as f64 / 10.0))
        .collect();
    line_chart(
        path,
        "Simulated service: tasks and backlog",
        ("minutes", "tasks; visible messages ÷ 10"),
        &[
            line("tasks", tasks, false),
            line("visible messages ÷ 10", visible, false),
        ],
    )
}

/// The simulator's validation: the measured and the predicted latency CDFs of the same jobs.
///
/// # Errors
/// When the font cannot be loaded or the PNG cannot be written.
pub fn validation(measured: &[f64], predicted: &[f64], path: &Path) -> Result<()> {
    register_font()?;
    let cdf = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1) as f64;
        sorted
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, (i + 1) as f64 / n))
            .collect::<Vec<_>>()
    };
    line_chart(
        path,
        "Simulator validation: latency CDF, measured vs predicted",
        ("seconds", "fraction of jobs"),
        &[
            line("measured", cdf(measured), false),
            line("predicted", cdf(predicted), false),
        ],
    )
}

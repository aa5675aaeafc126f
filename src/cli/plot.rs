//! `longwave plot` and `process --plot`: a PNG of a recording's waveform with a silence split's
//! marks: the silent ranges (shaded), the threshold (±its amplitude) and the pieces (numbered
//! bars along the top, a line at each boundary).
//!
//! Drawn with plotters' bitmap backend; the text uses DejaVu Sans, embedded in the binary
//! (`fonts/`, licence beside it), so a picture can be drawn on any machine, the container image
//! included, without fontconfig or a font package.

use anyhow::{anyhow, Context, Result};
use longwave::job::{PlotData, SilenceMarks};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// The embedded font (DejaVu Sans 2.37, see `fonts/LICENSE`).
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// Default picture size in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1600, 500);
/// Smallest and largest accepted width or height.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 200..=8000;

/// Pixels left and right of the plotting area (label area and margins).
const MARGIN: u32 = 10;
const Y_LABELS: u32 = 60;
const X_LABELS: u32 = 40;

/// Envelope columns for a picture `width` pixels wide: one per pixel of the plotting area.
pub fn columns_for(width: u32) -> usize {
    width.saturating_sub(Y_LABELS + 2 * MARGIN).max(1) as usize
}

/// Registers the embedded font with plotters, once per process.
fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded plot font cannot be loaded"))
    }
}

const WAVE: RGBColor = RGBColor(31, 119, 180);
const SILENT: RGBColor = RGBColor(214, 39, 40);
const THRESHOLD: RGBColor = RGBColor(255, 127, 14);
const PIECE: [RGBColor; 2] = [RGBColor(44, 160, 44), RGBColor(23, 120, 60)];

/// Draws `data` into a PNG at `path`, `size` pixels. The title names the input; the marks come
/// from `data.silence` when present.
///
/// # Errors
/// The PNG cannot be drawn or written.
pub fn draw(data: &PlotData, path: &Path, size: (u32, u32)) -> Result<()> {
    register_font()?;
    let plot_error = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let rate = f64::from(data.sample_rate.max(1));
    let duration = data.envelope.frames as f64 / rate;
    let x_max = duration.max(1e-3);
    let peak = data
        .envelope
        .columns
        .iter()
        .flatten()
        .map(|&(lo, hi)| f64::from(lo.abs().max(hi.abs())))
        .fold(1.0f64, f64::max);
    let y_max = peak * 1.08;

    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title(data, duration), ("sans-serif", 20))
        .margin(MARGIN)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(0.0..x_max, -y_max..y_max)
        .map_err(|e| plot_error(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("amplitude")
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        // Rounded first, then `+ 0.0` turns −0.0 into 0.0: the axis never reads "-0.0".
        .y_label_formatter(&|y| format!("{:.1}", (y * 10.0).round() / 10.0 + 0.0))
        .draw()
        .map_err(|e| plot_error(&e))?;

    let ms = |t: u64| t as f64 / 1000.0;
    if let Some(marks) = &data.silence {
        chart
            .draw_series(marks.silent_ranges_ms.iter().map(|&(start, end)| {
                Rectangle::new(
                    [(ms(start), -y_max), (ms(end), y_max)],
                    SILENT.mix(0.15).filled(),
                )
            }))
            .map_err(|e| plot_error(&e))?
            .label(format!("silent ranges ({})", marks.silent_ranges_ms.len()))
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], SILENT.mix(0.3).filled())
            });
    }

    let columns = data.envelope.columns.len().max(1) as f64;
    chart
        .draw_series(
            data.envelope
                .columns
                .iter()
                .enumerate()
                .filter_map(|(c, column)| {
                    let (lo, hi) = (*column)?;
                    let t = (c as f64 + 0.5) / columns * duration;
                    Some(PathElement::new(
                        vec![(t, f64::from(lo)), (t, f64::from(hi))],
                        WAVE.stroke_width(1),
                    ))
                }),
        )
        .map_err(|e| plot_error(&e))?
        .label("waveform (min/max over channels)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], WAVE.stroke_width(3)));

    if let Some(marks) = &data.silence {
        if let Some(db) = marks.threshold_db {
            let level = 10f64.powf(db / 20.0);
            for sign in [1.0, -1.0] {
                let series = chart
                    .draw_series(LineSeries::new(
                        [(0.0, sign * level), (x_max, sign * level)],
                        THRESHOLD.stroke_width(2),
                    ))
                    .map_err(|e| plot_error(&e))?;
                if sign > 0.0 {
                    series
                        .label(format!("threshold {db:.1} dBFS (±{level:.3})"))
                        .legend(|(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], THRESHOLD.stroke_width(2))
                        });
                }
            }
        }
        draw_pieces(&mut chart, marks, y_max, x_max, size.0).map_err(|e| plot_error(&e))?;
    }

    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The pieces: a bar per piece along the top (alternating greens, numbered where there is room)
/// and a thin line at each start and end.
fn draw_pieces(
    chart: &mut Chart<'_, '_>,
    marks: &SilenceMarks,
    y_max: f64,
    x_max: f64,
    width: u32,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let ms = |t: u64| t as f64 / 1000.0;
    let (bar_low, bar_high) = (y_max * 0.90, y_max * 0.98);
    let pixels_per_second = f64::from(columns_for(width) as u32) / x_max;
    // Boundary lines only where they stay apart (12 px per piece on average): on a long
    // recording with hundreds of pieces they would cover the waveform and the silences; the
    // bars along the top still show every piece.
    let spaced = marks.pieces_ms.len() as f64 * 12.0 <= f64::from(columns_for(width) as u32);
    let lines = if spaced { &marks.pieces_ms[..] } else { &[] };
    chart
        .draw_series(lines.iter().flat_map(|&(start, end)| {
            [start, end].map(|t| {
                PathElement::new(
                    vec![(ms(t), -y_max), (ms(t), y_max)],
                    PIECE[1].mix(0.5).stroke_width(1),
                )
            })
        }))?
        .label(format!("pieces ({})", marks.pieces_count))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], PIECE[0].filled()));
    chart.draw_series(
        marks
            .pieces_ms
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| {
                Rectangle::new(
                    [(ms(start), bar_low), (ms(end), bar_high)],
                    PIECE[i % 2].filled(),
                )
            }),
    )?;
    // Numbers only where a piece is wide enough for them and there are few enough to read.
    if marks.pieces_ms.len() <= 200 {
        chart.draw_series(
            marks
                .pieces_ms
                .iter()
                .enumerate()
                .filter(|(i, &(start, end))| {
                    let digits = (i + 1).to_string().len() as f64;
                    (ms(end) - ms(start)) * pixels_per_second > 8.0 * digits + 4.0
                })
                .map(|(i, &(start, end))| {
                    Text::new(
                        (i + 1).to_string(),
                        ((ms(start) + ms(end)) / 2.0, (bar_low + bar_high) / 2.0),
                        ("sans-serif", 12)
                            .into_font()
                            .color(&WHITE)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                }),
        )?;
    }
    Ok(())
}

/// `talk.wav — 90.0 s, 2 ch, 44100 Hz — 21 pieces`.
fn title(data: &PlotData, duration: f64) -> String {
    let name = data.path.rsplit('/').next().unwrap_or(&data.path);
    let mut title = format!(
        "{name} — {duration:.1} s, {} ch, {} Hz",
        data.channels, data.sample_rate
    );
    if let Some(marks) = &data.silence {
        title.push_str(&format!(" — {} pieces", marks.pieces_count));
    }
    title
}

/// Writes the picture to `path` through a pending name, moved into place only when complete
/// (never over an existing file unless `overwrite`).
///
/// # Errors
/// Drawing or moving failed.
pub fn write(data: &PlotData, path: &Path, size: (u32, u32), overwrite: bool) -> Result<()> {
    // The pending name keeps the extension: plotters picks the encoder by it.
    let name = path
        .file_name()
        .map_or_else(|| "plot.png".into(), |n| n.to_string_lossy().into_owned());
    let pending = path.with_file_name(format!(".longwave-pending-{}-{name}", std::process::id()));
    let result = draw(data, &pending, size).and_then(|()| {
        longwave::io::move_into_place(&pending, path, overwrite)
            .with_context(|| format!("cannot write {}", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&pending);
    }
    result
}

//! `longwave plot` and `process --plot`, judged from the pixels: ffmpeg decodes the PNG (an
//! independent PNG reader), and the picture of a recording whose layout is known (tones of
//! known amplitude between digital silences) must show the waveform's height, the silent
//! ranges and the pieces where they are.

#![allow(clippy::unwrap_used)]

mod common;

use common::{longwave, s, write_float_wav};
use std::path::Path;
use std::process::Command;

const WIDTH: usize = 1600;
const HEIGHT: usize = 500;
/// The plotting area's left and right edges in pixels (src/cli/plot.rs: a 10 px margin and a
/// 60 px label area on the left, the margin on the right).
const AREA: (usize, usize) = (70, WIDTH - 10);

const WAVE: [u8; 3] = [31, 119, 180];
const PIECE: [[u8; 3]; 2] = [[44, 160, 44], [23, 120, 60]];

/// The recording: (seconds, amplitude of a 440 Hz tone; 0 = digital silence).
const LAYOUT: [(f64, f32); 5] = [(2.0, 0.5), (2.0, 0.0), (2.0, 0.25), (1.0, 0.0), (1.0, 0.5)];
const RATE: u32 = 16_000;

fn write_layout(path: &Path) -> f64 {
    let mut samples = Vec::new();
    for (seconds, amplitude) in LAYOUT {
        let n = (seconds * f64::from(RATE)) as usize;
        samples.extend((0..n).map(|i| {
            amplitude * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / RATE as f32).sin()
        }));
    }
    write_float_wav(path, RATE, 1, &samples);
    samples.len() as f64 / f64::from(RATE)
}

/// The picture as rows of RGB pixels, decoded by ffmpeg.
fn pixels(png: &Path) -> Vec<Vec<[u8; 3]>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup-test-env.sh installs it)");
    assert!(out.status.success(), "ffmpeg cannot read {png:?}");
    assert_eq!(
        out.stdout.len(),
        WIDTH * HEIGHT * 3,
        "a {WIDTH}×{HEIGHT} picture"
    );
    out.stdout
        .chunks_exact(WIDTH * 3)
        .map(|row| row.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect()
}

/// The pixel column showing time `t` of a `duration` recording.
fn column(t: f64, duration: f64) -> usize {
    AREA.0 + ((t / duration) * (AREA.1 - AREA.0) as f64) as usize
}

/// Rows of column `x` whose pixel is `colour`.
fn rows_of(picture: &[Vec<[u8; 3]>], x: usize, colour: [u8; 3]) -> Vec<usize> {
    (0..HEIGHT).filter(|&y| picture[y][x] == colour).collect()
}

/// A silent range's shading: light red (214, 39, 40 at 15 % over white).
fn is_shaded(p: [u8; 3]) -> bool {
    p[0] > 240 && (200..235).contains(&p[1]) && (200..235).contains(&p[2])
}

#[test]
fn the_picture_shows_the_waveform_silences_and_pieces_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layout.wav");
    let duration = write_layout(&input);
    let png = dir.path().join("layout.png");
    let out = longwave(&["plot", s(&input), "-o", s(&png)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The oneshot split (−30 dBFS, 750 ms): both silences, three pieces.
    assert!(
        stdout.contains("3 pieces, 2 silent ranges, threshold -30.0 dBFS"),
        "{stdout}"
    );
    let picture = pixels(&png);

    // The waveform's height follows the amplitude: the 0.5 tone is twice the 0.25 tone.
    let extent = |t: f64| {
        let rows = rows_of(&picture, column(t, duration), WAVE);
        assert!(!rows.is_empty(), "no waveform at {t} s");
        (rows[rows.len() - 1] - rows[0]) as f64
    };
    let (loud, soft) = (extent(1.0), extent(5.0));
    let ratio = loud / soft;
    assert!((1.8..2.2).contains(&ratio), "{loud} px vs {soft} px");
    // Digital silence: at most a one-pixel line, and the range is shaded.
    for t in [3.0, 6.5] {
        let x = column(t, duration);
        assert!(
            rows_of(&picture, x, WAVE).len() <= 2,
            "waveform drawn at {t} s"
        );
        let shaded = (0..HEIGHT).filter(|&y| is_shaded(picture[y][x])).count();
        assert!(
            shaded > HEIGHT / 2,
            "silence at {t} s not shaded ({shaded} px)"
        );
    }
    // Pieces: a bar over each tone, none over the silences.
    let bar = |t: f64| {
        let x = column(t, duration);
        (0..HEIGHT)
            .filter(|&y| PIECE.contains(&picture[y][x]))
            .count()
    };
    for t in [1.0, 5.0, 7.5] {
        assert!(bar(t) > 5, "no piece bar at {t} s");
    }
    for t in [3.0, 6.5] {
        assert_eq!(bar(t), 0, "a piece bar over the silence at {t} s");
    }
}

#[test]
fn process_draws_the_pieces_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layout.wav");
    let duration = write_layout(&input);
    let png = dir.path().join("job.png");
    let pieces = dir.path().join("pieces");
    let args = [
        "process",
        s(&input),
        "-o",
        s(&pieces),
        "--preset",
        "oneshot",
        "--plot",
        s(&png),
        "--quiet",
    ];
    let out = longwave(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pieces.join("piece_0003.wav").is_file());
    let picture = pixels(&png);
    let x = column(1.0, duration);
    assert!((0..HEIGHT).any(|y| PIECE.contains(&picture[y][x])));

    // Refused before any work: an existing picture, a picture that is not a PNG, the input.
    let again = longwave(&args);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("job.png") && err.contains("already exists"),
        "{err}"
    );
    let other = dir.path().join("other");
    // A recording named .png (the format is probed from the content) as its own picture.
    let disguised = dir.path().join("rec.png");
    std::fs::copy(&input, &disguised).unwrap();
    for (source, plot, expect, code) in [
        (&input, dir.path().join("p.jpg"), "name it .png", 2),
        (&disguised, disguised.clone(), "the plot would overwrite", 1),
    ] {
        let run = longwave(&[
            "process",
            s(source),
            "-o",
            s(&other),
            "--preset",
            "oneshot",
            "--plot",
            s(&plot),
            "--overwrite",
        ]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{err}");
        assert!(err.contains(expect), "{err}");
        assert!(!other.exists(), "the job ran");
    }
    assert_eq!(
        std::fs::read(&disguised).unwrap(),
        std::fs::read(&input).unwrap()
    );
}

#[test]
fn bad_plot_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layout.wav");
    write_layout(&input);
    for (args, expect) in [
        (vec!["--width", "50"], "50 is not in 200..=8000"),
        (
            vec!["--silence-params", "{\"threshold\":3}"],
            "--silence-params: unknown field",
        ),
        (
            vec!["--silence-params", "{\"threshold_db\":3}"],
            "threshold_db",
        ),
        (
            vec!["--no-silence", "--silence-params", "{}"],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["plot", s(&input)];
        all.extend(args.iter().copied());
        let run = longwave(&all);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let missing = longwave(&["plot", s(&dir.path().join("nope.wav"))]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("nope.wav"), "{err}");
    assert!(!dir.path().join("nope.plot.png").exists());
}

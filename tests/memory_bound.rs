//! Hole 4 of the reliability issue: a job's memory is a bound computed from its real parts and
//! enforced, not a formula. Chains are capped in length and in analysis passes, chain files in
//! size, and a job whose computed bound exceeds its budget is refused before it decodes audio,
//! naming the parameter; every preset and the largest accepted parameters stay within the bound
//! the manifest reports.

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure, which is what we want

mod common;

use common::{longwave, s};

use longwave::audio::StreamSpec;
use longwave::encode::WavSampleFormat;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Exit code 1, one line, mentioning each of `needles`; returns stderr.
fn refused(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "should mention {needle:?}: {stderr}"
        );
    }
    stderr
}

fn speech(dir: &Path, name: &str, rate: u32, channels: usize, seconds: f64) -> PathBuf {
    let spec = StreamSpec::new(rate, channels).unwrap();
    common::write_speech(dir, name, spec, seconds, WavSampleFormat::Pcm16, 4)
}

fn chain_of(stage: &str, count: usize) -> String {
    format!("[{}]", vec![stage; count].join(","))
}

#[test]
fn chains_are_capped_in_length_analysis_passes_and_file_size() {
    // Before (measured on a 20 s file): 10,000 gain stages → 325 MiB; 10,000 reverbs → 1.7 GB
    // and no end in 60 s; 1,000 normalize stages → 1,000 analysis passes; `--chain @/dev/zero`
    // read 2 GB before "out of memory".
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 44_100, 2, 2.0);
    let out = dir.path().join("o.wav");
    let run = |chain: &str| longwave(&["process", s(&input), "-o", s(&out), "--chain", chain]);

    let gain = r#"{"type":"gain","gain_db":-0.1}"#;
    assert!(
        run(&chain_of(gain, 32)).status.success(),
        "32 stages are allowed"
    );
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(dir.path().join("o.wav.manifest.json"));
    refused(
        &run(&chain_of(gain, 33)),
        &["chain", "at most 32 stages", "33"],
    );
    let long = dir.path().join("long.json");
    std::fs::write(&long, chain_of(gain, 10_000)).unwrap();
    let started = Instant::now();
    refused(
        &run(&format!("@{}", s(&long))),
        &["chain", "at most 32 stages", "10000"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused before any work"
    );
    let normalize = r#"{"type":"normalize","lufs":-16}"#;
    refused(
        &run(&chain_of(normalize, 5)),
        &["chain[4]", "at most 4 analysis passes"],
    );
    let auto_silence = r#"{"type":"silence","threshold_db":"auto","action":"trim"}"#;
    refused(
        &run(&format!(
            "[{normalize},{normalize},{normalize},{normalize},{auto_silence}]"
        )),
        &["chain[4]", "analysis passes"],
    );

    refused(&run("@/dev/zero"), &["/dev/zero", "not a regular file"]);
    let big = dir.path().join("big.json");
    std::fs::write(&big, " ".repeat(2 << 20)).unwrap();
    refused(
        &run(&format!("@{}", s(&big))),
        &[s(&big), "larger than 1 MiB"],
    );
    assert!(!out.exists());
}

#[test]
fn a_job_whose_bound_exceeds_its_budget_is_refused_naming_the_parameter() {
    // Before: a silence split with min_piece_ms 600000 on a 96 kHz stereo file peaked at
    // 251 MiB (a job slot's budget was 72 MiB), and the ring could grow to 1 GiB.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in96.wav", 96_000, 2, 2.0);
    let pieces = dir.path().join("pieces");
    let chain = r#"[{"type":"silence","action":"split","min_piece_ms":600000}]"#;
    let stderr = refused(
        &longwave(&["process", s(&input), "-o", s(&pieces), "--chain", chain]),
        &[
            "chain[0]",
            "min_piece_ms",
            "MiB",
            "budget",
            "--max-job-memory-mib",
        ],
    );
    assert!(!pieces.exists(), "{stderr}");
    // The same job with a budget that holds it runs.
    let run = longwave(&[
        "process",
        s(&input),
        "-o",
        s(&pieces),
        "--chain",
        chain,
        "--max-job-memory-mib",
        "2048",
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // --block-frames at its maximum with 8 channels at 192 kHz: refused, naming the flag.
    let wide = speech(dir.path(), "wide.wav", 192_000, 8, 0.5);
    refused(
        &longwave(&[
            "process",
            s(&wide),
            "-o",
            s(&dir.path().join("wide-out.wav")),
            "--preset",
            "transcode",
            "--block-frames",
            "1048576",
        ]),
        &["--block-frames", "budget"],
    );
}

/// Peak RSS of a command in KiB (GNU time's %M).
fn peak_rss_kib(args: &[&str]) -> (u64, Output) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak_rss_kib=%M"])
        .arg(env!("CARGO_BIN_EXE_longwave"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("GNU time is needed: scripts/setup-test-env.sh installs it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib = stderr
        .lines()
        .find_map(|line| line.strip_prefix("peak_rss_kib="))
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"))
        .trim()
        .parse()
        .unwrap();
    (kib, out)
}

#[test]
fn every_preset_and_the_largest_accepted_parameters_stay_within_the_reported_bound() {
    let dir = tempfile::tempdir().unwrap();
    let stereo = speech(dir.path(), "in.wav", 48_000, 2, 20.0);
    let hi = speech(dir.path(), "hi.wav", 96_000, 2, 20.0);
    let long = speech(dir.path(), "long.wav", 48_000, 2, 120.0);
    let biggest_silence =
        r#"[{"type":"silence","action":"split","min_piece_ms":60000,"min_silence_ms":10000}]"#;
    let heavy = r#"[{"type":"normalize","lufs":-16},{"type":"reverb","room_size":1.0},{"type":"pan8d","mode":"binaural"},{"type":"limiter"},{"type":"normalize","peak_db":-1},{"type":"normalize","lufs":-20},{"type":"normalize","lufs":-18}]"#;
    let cases: Vec<(String, Vec<String>, &Path)> = vec![
        (
            "8d.mp3".into(),
            vec!["--preset".into(), "8d".into()],
            &stereo,
        ),
        (
            // Enough segments to fill 4 threads and the join queue behind them.
            "8d-4-threads.mp3".into(),
            vec![
                "--preset".into(),
                "8d".into(),
                "--encode-threads".into(),
                "4".into(),
            ],
            &long,
        ),
        (
            "oneshot".into(),
            vec!["--preset".into(), "oneshot".into()],
            &stereo,
        ),
        (
            // The finest waveform (2 frames per pixel, JSON, per channel): its file grows with
            // the input, its memory must not.
            "8d-waveform.mp3".into(),
            vec![
                "--preset".into(),
                "8d".into(),
                "--waveform".into(),
                "json".into(),
                "--waveform-zoom".into(),
                "2".into(),
                "--waveform-split-channels".into(),
            ],
            &long,
        ),
        (
            "transcode.flac".into(),
            vec!["--preset".into(), "transcode".into()],
            &stereo,
        ),
        (
            "silence".into(),
            vec!["--chain".into(), biggest_silence.into()],
            &hi,
        ),
        (
            "heavy.wav".into(),
            vec!["--chain".into(), heavy.into()],
            &hi,
        ),
        (
            "big-blocks.wav".into(),
            vec![
                "--preset".into(),
                "transcode".into(),
                "--block-frames".into(),
                "65536".into(),
            ],
            &hi,
        ),
    ];
    // What the binary holds doing nothing (code, libraries, allocator): a run's peak minus this
    // is what its job used, and must stay within the job's computed bound.
    let (idle_kib, idle) = peak_rss_kib(&["--help"]);
    assert!(idle.status.success());
    let idle = idle_kib * 1024;
    for (name, flags, input) in cases {
        let out = dir.path().join(&name);
        let manifest = dir.path().join(format!("{name}.json"));
        let mut args = vec![
            "process",
            s(input),
            "-o",
            s(&out),
            "--manifest",
            s(&manifest),
            "--quiet",
        ];
        args.extend(flags.iter().map(String::as_str));
        let (kib, run) = peak_rss_kib(&args);
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let bound = manifest["memory"]["job_bound_bytes"].as_u64().unwrap();
        let budget = manifest["memory"]["budget_bytes"].as_u64().unwrap();
        let peak = kib * 1024;
        let mib = |bytes: u64| bytes as f64 / 1048576.0;
        eprintln!(
            "{name}: peak RSS {:.1} MiB = idle {:.1} MiB + job {:.1} MiB; bound {:.1} MiB, \
             budget {:.1} MiB",
            mib(peak),
            mib(idle),
            mib(peak.saturating_sub(idle)),
            mib(bound),
            mib(budget)
        );
        assert!(bound <= budget, "{name}: ran over its budget");
        assert!(
            peak <= idle + bound,
            "{name}: the job used {} bytes, over its bound {bound}",
            peak - idle
        );
    }
}

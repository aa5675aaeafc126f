//! Samples and encoders that never explode (issue 10), through the real binary:
//! NaN/±Inf and absurd magnitudes in the input, 24-bit FLAC output of loud and multichannel
//! material, conflicting format options, empty inputs, presets at low sample rates.

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure, which is what we want

mod common;

use common::{longwave, s};

use common::{
    ffmpeg_decode_f32, ffmpeg_decode_s32, flac_test, speech_bursts, write_float_wav, write_speech,
    Noise,
};
use longwave::audio::StreamSpec;
use longwave::encode::WavSampleFormat;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `longwave process INPUT --preset PRESET -o OUT --quiet [extra]`, which must succeed.
fn process_ok(input: &Path, preset: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "process",
        s(input),
        "--preset",
        preset,
        "-o",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    assert_ok(&longwave(&args));
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The one-line failure contract; returns stderr.
fn assert_fails(out: &Output, must_mention: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("longwave: error: "), "{stderr}");
    for needle in must_mention {
        assert!(
            stderr.contains(needle),
            "should mention {needle:?}: {stderr}"
        );
    }
    stderr
}

fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / samples.len().max(1) as f64)
        .sqrt()
}

/// 4 s of a 440 Hz stereo tone at −6 dBFS with 20 ms of NaN at 1.0 s, 5 ms of +Inf and 5 ms of
/// −Inf at 2.0 s; returns the path and the number of non-finite samples.
fn poisoned_input(dir: &Path) -> (PathBuf, u64) {
    let rate = 44_100;
    let frames = 4 * rate;
    let mut samples = Vec::with_capacity(frames * 2);
    let mut poisoned = 0;
    for i in 0..frames {
        let t = i as f32 / rate as f32;
        let mut x = 0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
        if (1.0..1.02).contains(&t) {
            x = f32::NAN;
        } else if (2.0..2.005).contains(&t) {
            x = f32::INFINITY;
        } else if (2.005..2.01).contains(&t) {
            x = f32::NEG_INFINITY;
        }
        if !x.is_finite() {
            poisoned += 2;
        }
        samples.extend([x, x]);
    }
    let path = dir.join("poisoned.wav");
    write_float_wav(&path, rate as u32, 2, &samples);
    (path, poisoned)
}

#[test]
fn nan_and_inf_input_runs_every_preset_to_a_sane_output() {
    let dir = tempfile::tempdir().unwrap();
    let (input, poisoned) = poisoned_input(dir.path());

    // 8d → MP3: before the fix LAME aborted the process (exit 134, `calc_energy` assertion).
    let out = dir.path().join("8d.mp3");
    process_ok(&input, "8d", &out, &[]);
    let m = manifest(&dir.path().join("8d.mp3.manifest.json"));
    assert_eq!(m["input"]["repaired_samples"]["non_finite"], poisoned);
    assert_eq!(m["outputs"][0]["non_finite_samples"], 0);
    let (channels, decoded) = ffmpeg_decode_f32(&out);
    assert_eq!(decoded.len() / channels, 4 * 44_100);
    // The reverb and limiter state must not be poisoned: the last second is still the tone.
    let tail = &decoded[3 * 44_100 * channels..];
    assert!(rms(tail) > 0.1, "last second RMS {}", rms(tail));

    // The same stateful stages into float WAV: before the fix, everything after the NaN was
    // digital silence (exit 0).
    let out = dir.path().join("chain.wav");
    assert_ok(&longwave(&[
        "process",
        s(&input),
        "--chain",
        r#"[{"type":"reverb"},{"type":"limiter"}]"#,
        "--wav-format",
        "float32",
        "-o",
        s(&out),
        "--quiet",
    ]));
    let (channels, decoded) = ffmpeg_decode_f32(&out);
    assert!(decoded.iter().all(|x| x.is_finite()));
    let tail = &decoded[3 * 44_100 * channels..];
    assert!(rms(tail) > 0.1, "last second RMS {}", rms(tail));

    // oneshot (split, pieces in the input's family: float WAV) and transcode.
    let pieces = dir.path().join("pieces");
    process_ok(&input, "oneshot", &pieces, &[]);
    let m = manifest(&pieces.join("manifest.json"));
    assert!(!m["outputs"].as_array().unwrap().is_empty());
    let out = dir.path().join("t.flac");
    process_ok(&input, "transcode", &out, &[]);
    flac_test(&out);

    // analyze reports real numbers, not null.
    let report = longwave(&["analyze", s(&input), "--json"]);
    assert_ok(&report);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(report["peak_dbfs"].is_number(), "{report}");
    assert!(report["rms_dbfs"].is_number(), "{report}");
}

#[test]
fn absurd_magnitudes_are_clamped_before_any_stage() {
    // A corrupt MP3 decoded to +103.9 dBFS: a peak normaliser then turned the whole file down by
    // ~105 dB. Here 10 samples at 1.6e5 in a −20 dBFS tone.
    let dir = tempfile::tempdir().unwrap();
    let rate = 44_100;
    let mut samples: Vec<f32> = (0..2 * rate)
        .map(|i| 0.1 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
        .collect();
    for x in &mut samples[rate..rate + 10] {
        *x = 1.6e5;
    }
    let input = dir.path().join("spikes.wav");
    write_float_wav(&input, rate as u32, 1, &samples);
    let out = dir.path().join("n.wav");
    assert_ok(&longwave(&[
        "process",
        s(&input),
        "--chain",
        r#"[{"type":"normalize","peak_db":-1}]"#,
        "--wav-format",
        "pcm16",
        "-o",
        s(&out),
        "--quiet",
    ]));
    let m = manifest(&dir.path().join("n.wav.manifest.json"));
    assert_eq!(m["input"]["repaired_samples"]["out_of_range"], 10);
    // The clamp bounds the damage to +24 dB: the tone is turned down by ~25 dB, not ~105 dB.
    let gain = m["stage_reports"][0]["report"]["applied_gain_db"]
        .as_f64()
        .unwrap_or_else(|| panic!("no applied gain in {m}"));
    assert!((-26.0..=-24.0).contains(&gain), "applied gain {gain} dB");
}

/// Encodes `input` to 24-bit FLAC with the transcode preset and checks the verbatim bound, the
/// reference decoder and the samples (exact where in range, clamped where not).
fn assert_flac24_roundtrip(input: &Path, interleaved: &[f32], channels: usize) -> u64 {
    let dir = input.parent().unwrap();
    let out = dir.join("out24.flac");
    process_ok(input, "transcode", &out, &["--flac-bits", "24"]);
    let raw_pcm = interleaved.len() as u64 * 3;
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(
        size <= raw_pcm + raw_pcm / 50,
        "24-bit FLAC of {raw_pcm} B of PCM is {size} B"
    );
    flac_test(&out);
    let decoded = ffmpeg_decode_s32(&out);
    assert_eq!(decoded.len(), interleaved.len(), "{channels} channels");
    let mut clipped = 0u64;
    for (i, (&x, &y)) in interleaved.iter().zip(&decoded).enumerate() {
        let exact = (f64::from(x) * 8_388_608.0).round();
        let expected = exact.clamp(-8_388_608.0, 8_388_607.0) as i32;
        if exact != f64::from(expected) {
            clipped += 1;
        }
        assert_eq!(y >> 8, expected, "sample {i} (channel {})", i % channels);
    }
    let m = manifest(&dir.join("out24.flac.manifest.json"));
    assert_eq!(m["outputs"][0]["clipped_samples"], clipped);
    size
}

#[test]
fn float_over_full_scale_to_24_bit_flac_stays_within_its_pcm_size() {
    // Before the fix: 3.1 GB at 6.2 GiB RSS for 20 s of stereo (raw 24-bit PCM: 5.3 MB).
    let dir = tempfile::tempdir().unwrap();
    let rate = 44_100;
    let mut noise = Noise::new(7);
    let samples: Vec<f32> = (0..20 * rate * 2)
        .map(|i| {
            let t = (i / 2) as f32 / rate as f32;
            1.4 * (2.0 * std::f32::consts::PI * 220.0 * t).sin() + 0.05 * noise.normal()
        })
        .collect();
    let input = dir.path().join("hot.wav");
    write_float_wav(&input, rate as u32, 2, &samples);
    assert_flac24_roundtrip(&input, &samples, 2);
}

#[test]
fn six_channel_24_bit_flac_is_bounded_and_valid_past_forty_seconds() {
    // Before the fix: 162 MB for 20 s (raw 17 MB); at 120 s a 2.35 GB file, corrupt after
    // 40.19 s. The input is made by ffmpeg (24-bit FLAC from float), as the issue's was.
    let dir = tempfile::tempdir().unwrap();
    let samples = speech_bursts(48_000, 6, 42.0, 3);
    let base = dir.path().join("base.wav");
    write_float_wav(&base, 48_000, 6, &samples);
    let input = dir.path().join("in6.flac");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", s(&base)])
        .args(["-c:a", "flac", "-sample_fmt", "s32", s(&input)])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    std::fs::remove_file(&base).unwrap();
    // What the FLAC input holds, as floats (24-bit values / 2^23), is what must come out.
    let held: Vec<f32> = ffmpeg_decode_s32(&input)
        .iter()
        .map(|&v| (v >> 8) as f32 / 8_388_608.0)
        .collect();
    let size = assert_flac24_roundtrip(&input, &held, 6);
    eprintln!(
        "6 ch × 42 s 24-bit: {size} B for {} B of PCM",
        held.len() * 3
    );
}

#[test]
fn conflicting_format_options_are_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = write_speech(dir.path(), "in.wav", spec, 1.0, WavSampleFormat::Pcm16, 1);
    let cases: [(&[&str], &str, [&str; 2]); 5] = [
        (
            &["--wav-format", "pcm24"],
            "o.flac",
            ["o.flac", "--wav-format pcm24"],
        ),
        (
            &["--bitrate", "128", "--format", "wav"],
            "o.wav",
            ["--bitrate 128", "--format is wav"],
        ),
        (
            &["--flac-bits", "24", "--format", "mp3"],
            "o.mp3",
            ["--flac-bits 24", "--format is mp3"],
        ),
        (
            &["--bitrate", "128", "--flac-bits", "24"],
            "o",
            ["--bitrate 128", "--flac-bits 24"],
        ),
        (&["--format", "mp3"], "o.wav", ["o.wav", "--format mp3"]),
    ];
    for (flags, name, mentions) in cases {
        let out = dir.path().join(name);
        let mut args = vec!["process", s(&input), "-o", s(&out), "--quiet"];
        args.extend_from_slice(flags);
        assert_fails(&longwave(&args), &mentions);
        assert!(!out.exists(), "{name} was written");
    }
    // An extension of a format longwave does not write.
    let out = dir.path().join("o.m4a");
    assert_fails(
        &longwave(&["process", s(&input), "-o", s(&out), "--quiet"]),
        &["o.m4a", ".m4a"],
    );
}

#[test]
fn an_input_without_frames_is_a_clear_error_and_writes_nothing() {
    // Before: a 1,152-byte MP3 that ffprobe cannot open, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.wav");
    write_float_wav(&input, 44_100, 2, &[]);
    for name in ["o.mp3", "o.wav", "o.flac"] {
        let out = dir.path().join(name);
        assert_fails(
            &longwave(&["process", s(&input), "-o", s(&out), "--quiet"]),
            &["empty.wav", "no audio"],
        );
        assert!(!out.exists());
        assert!(!dir.path().join(format!("{name}.manifest.json")).exists());
    }
}

#[test]
fn presets_work_at_phone_and_voice_memo_rates() {
    // Before: "mp3: 192 kbps is not available at 8000 Hz" for the 8d preset at every rate
    // below 32 kHz, and for oneshot on MP3 inputs below 32 kHz.
    let dir = tempfile::tempdir().unwrap();
    for rate in [8_000u32, 16_000, 22_050, 24_000] {
        let spec = StreamSpec::new(rate, 1).unwrap();
        let name = format!("in{rate}.wav");
        let input = write_speech(dir.path(), &name, spec, 3.0, WavSampleFormat::Pcm16, 2);
        let out = dir.path().join(format!("8d{rate}.mp3"));
        process_ok(&input, "8d", &out, &[]);
        let m = manifest(&dir.path().join(format!("8d{rate}.mp3.manifest.json")));
        assert_eq!(m["outputs"][0]["settings"]["rate"]["kbps"], 160, "{m}");
        assert_eq!(m["outputs"][0]["settings"]["rate"]["mode"], "cbr");
        let (channels, decoded) = ffmpeg_decode_f32(&out);
        assert_eq!(channels, 2);
        assert_eq!(decoded.len() / 2, 3 * rate as usize, "{rate} Hz");

        // oneshot on an MP3 input at this rate: pieces in MP3.
        let mp3_in = dir.path().join(format!("in{rate}.mp3"));
        let made = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-i",
                s(&input),
                "-b:a",
                "32k",
                s(&mp3_in),
            ])
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let pieces = dir.path().join(format!("pieces{rate}"));
        process_ok(&mp3_in, "oneshot", &pieces, &[]);
        let m = manifest(&pieces.join("manifest.json"));
        for output in m["outputs"].as_array().unwrap() {
            assert_eq!(output["format"], "mp3");
            ffmpeg_decode_f32(Path::new(output["path"].as_str().unwrap()));
        }
    }
    // A bitrate the user chose is not changed: it fails, naming the output.
    let spec = StreamSpec::new(8_000, 1).unwrap();
    let input = write_speech(dir.path(), "in.wav", spec, 1.0, WavSampleFormat::Pcm16, 2);
    let out = dir.path().join("explicit.mp3");
    assert_fails(
        &longwave(&[
            "process",
            s(&input),
            "--bitrate",
            "192",
            "-o",
            s(&out),
            "--quiet",
        ]),
        &["explicit.mp3", "192 kbps", "8000 Hz"],
    );
    assert!(!out.exists());
}

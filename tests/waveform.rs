//! Waveform data (`--waveform`) judged by an independent reader: the npm `waveform-data`
//! package (what peaks.js uses; installed into tests/js by scripts/setup-test-env.sh) must load
//! every file longwave writes, and what it reads must agree with peaks computed here from
//! ffmpeg's decode of the same input, by audiowaveform's rules (16-bit samples, channels mixed
//! as an integer mean truncated toward zero, 8-bit = value ÷ 256 toward zero, the last pixel
//! partial).

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    ffmpeg_decode_f32, ffmpeg_decode_s32, longwave, read_with_waveform_data, s, write_speech,
};
use longwave::audio::StreamSpec;
use longwave::encode::WavSampleFormat;
use serde_json::Value;
use std::path::Path;

/// Peaks by audiowaveform's rules from interleaved 16-bit samples: per output channel, the
/// (min, max) of every `spp` frames.
fn reference_peaks(
    samples: &[i32],
    channels: usize,
    spp: usize,
    split: bool,
    bits: u8,
) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let out_channels = if split { channels } else { 1 };
    let frames = samples.len() / channels;
    let mut min = vec![Vec::new(); out_channels];
    let mut max = vec![Vec::new(); out_channels];
    for start in (0..frames).step_by(spp) {
        let end = (start + spp).min(frames);
        for c in 0..out_channels {
            let values = (start..end).map(|f| {
                let frame = &samples[f * channels..(f + 1) * channels];
                if split {
                    frame[c]
                } else {
                    frame.iter().sum::<i32>() / channels as i32
                }
            });
            let (lo, hi) = values.fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let scale = |v: i32| i64::from(if bits == 8 { v / 256 } else { v });
            min[c].push(scale(lo));
            max[c].push(scale(hi));
        }
    }
    (min, max)
}

fn run_ok(args: &[&str]) {
    let out = longwave(args);
    assert!(
        out.status.success(),
        "longwave {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifest(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_16_bit_wav_gives_exactly_the_peaks_of_its_samples() {
    let dir = tempfile::tempdir().unwrap();
    // 37.5 s: the last pixel of every zoom below is partial.
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = write_speech(dir.path(), "in.wav", spec, 37.5, WavSampleFormat::Pcm16, 5);
    // ffmpeg's decode, 16-bit samples in the top half of each s32.
    let samples: Vec<i32> = ffmpeg_decode_s32(&input).iter().map(|v| v >> 16).collect();
    assert_eq!(samples.len(), 2 * 1_653_750);
    let cases = [
        ("dat", 256u32, 16u8, false),
        ("dat", 300, 8, true),
        ("json", 1000, 16, true),
        ("json", 441, 8, false),
    ];
    for (i, (format, zoom, bits, split)) in cases.into_iter().enumerate() {
        let output = dir.path().join(format!("out{i}.flac"));
        let zoom_text = zoom.to_string();
        let bits_text = bits.to_string();
        let mut args = vec![
            "process",
            s(&input),
            "-o",
            s(&output),
            "--quiet",
            "--waveform",
            format,
            "--waveform-zoom",
            &zoom_text,
            "--waveform-bits",
            &bits_text,
        ];
        if split {
            args.push("--waveform-split-channels");
        }
        run_ok(&args);
        let path = dir.path().join(format!("out{i}.flac.waveform.{format}"));
        let read = read_with_waveform_data(&path);
        let channels = if split { 2 } else { 1 };
        let length = 1_653_750usize.div_ceil(zoom as usize);
        assert_eq!(read.header["channels"], channels, "{path:?}");
        assert_eq!(read.header["sample_rate"], 44_100);
        assert_eq!(read.header["scale"], zoom);
        assert_eq!(read.header["bits"], bits);
        assert_eq!(read.header["length"], length);
        let (min, max) = reference_peaks(&samples, 2, zoom as usize, split, bits);
        assert!(
            read.min == min,
            "{path:?}: min arrays differ from ffmpeg's samples"
        );
        assert!(
            read.max == max,
            "{path:?}: max arrays differ from ffmpeg's samples"
        );
        // The manifest lists it.
        let m = manifest(&dir.path().join(format!("out{i}.flac.manifest.json")));
        let entry = &m["waveform"];
        assert_eq!(entry["path"], s(&path), "{m}");
        assert_eq!(entry["length"], length);
        assert_eq!(entry["frames"], 1_653_750);
        assert_eq!(entry["bytes"], std::fs::metadata(&path).unwrap().len());
        println!(
            "{format} zoom {zoom} {bits}-bit split={split}: {length} pixels × {channels} \
             channel(s), {} bytes, identical to ffmpeg's samples",
            entry["bytes"]
        );
    }
}

#[test]
fn an_mp3_input_agrees_with_ffmpegs_decode_within_one_step() {
    // Two decoders of the same MP3 (symphonia here, ffmpeg's mp3float there) differ by float
    // rounding; on the 16-bit scale that may move a min or max by one step, no more.
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let wav = write_speech(dir.path(), "src.wav", spec, 20.0, WavSampleFormat::Pcm16, 9);
    let mp3 = dir.path().join("in.mp3");
    run_ok(&[
        "process",
        s(&wav),
        "-o",
        s(&mp3),
        "--bitrate",
        "128",
        "--quiet",
    ]);
    let out = dir.path().join("out.wav");
    run_ok(&[
        "process",
        s(&mp3),
        "-o",
        s(&out),
        "--quiet",
        "--waveform",
        "dat",
    ]);
    let (channels, decoded) = ffmpeg_decode_f32(&mp3);
    assert_eq!(channels, 2);
    let samples: Vec<i32> = decoded
        .iter()
        .map(|&x| ((f64::from(x) * 32768.0).round() as i32).clamp(-32768, 32767))
        .collect();
    let read = read_with_waveform_data(&dir.path().join("out.wav.waveform.dat"));
    let (min, max) = reference_peaks(&samples, 2, 256, false, 16);
    assert_eq!(
        read.min[0].len(),
        min[0].len(),
        "same length as ffmpeg's decode"
    );
    let worst = read.min[0]
        .iter()
        .zip(&min[0])
        .chain(read.max[0].iter().zip(&max[0]))
        .map(|(a, b)| (a - b).abs())
        .max()
        .unwrap();
    println!(
        "mp3: {} pixels, largest difference {worst} step(s)",
        min[0].len()
    );
    assert!(
        worst <= 1,
        "largest difference from ffmpeg's decode: {worst}"
    );
}

#[test]
fn a_split_writes_the_waveform_of_the_whole_recording_beside_its_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(48_000, 1).unwrap();
    let input = write_speech(dir.path(), "in.wav", spec, 30.0, WavSampleFormat::Pcm16, 3);
    let pieces = dir.path().join("pieces");
    let args = [
        "process",
        s(&input),
        "-o",
        s(&pieces),
        "--preset",
        "oneshot",
        "--quiet",
        "--waveform",
        "json",
    ];
    run_ok(&args);
    let path = pieces.join("waveform.json");
    let read = read_with_waveform_data(&path);
    let m = manifest(&pieces.join("manifest.json"));
    assert_eq!(m["waveform"]["path"], s(&path));
    let duration = read.header["duration"].as_f64().unwrap();
    assert!((duration - 30.0).abs() < 256.0 / 48_000.0, "{duration}");
    // Every piece lies inside the recording the waveform shows.
    let outputs = m["outputs"].as_array().unwrap();
    assert!(outputs.len() > 3, "{m}");
    for piece in outputs {
        assert!(piece["end_ms"].as_f64().unwrap() / 1000.0 <= duration + 1e-3);
    }
    // A second run without --overwrite is refused before any work: the pieces folder holds an
    // earlier run; with --overwrite the waveform is replaced.
    let again = longwave(&args);
    assert_eq!(again.status.code(), Some(1));
    let mut overwrite = args.to_vec();
    overwrite.push("--overwrite");
    run_ok(&overwrite);
    assert!(path.is_file());
}

#[test]
fn waveform_settings_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(8_000, 1).unwrap();
    let input = write_speech(dir.path(), "in.wav", spec, 1.0, WavSampleFormat::Pcm16, 1);
    let out = dir.path().join("o.wav");
    for (flags, expect) in [
        (&["--waveform", "png"][..], "invalid value 'png'"),
        (
            &["--waveform", "dat", "--waveform-zoom", "1"][..],
            "1 is not in 2..=1048576",
        ),
        (
            &["--waveform", "dat", "--waveform-bits", "12"][..],
            "invalid value '12'",
        ),
        (&["--waveform-zoom", "512"][..], "--waveform"),
    ] {
        let mut args = vec!["process", s(&input), "-o", s(&out)];
        args.extend_from_slice(flags);
        let run = longwave(&args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(expect), "{flags:?}: {err}");
        assert!(!out.exists());
    }
    // An existing waveform file is kept unless --overwrite, like any output.
    std::fs::write(dir.path().join("o.wav.waveform.dat"), b"mine").unwrap();
    let run = longwave(&["process", s(&input), "-o", s(&out), "--waveform", "dat"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("o.wav.waveform.dat") && err.contains("already exists"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read(dir.path().join("o.wav.waveform.dat")).unwrap(),
        b"mine"
    );
}

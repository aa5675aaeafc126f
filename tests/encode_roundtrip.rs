//! Encode → decode round trips for every output format, checked by two independent decoders:
//! symphonia 0.6 (in process, not through longwave's `decode` module) and ffprobe.
//!
//! Each case synthesises a sine per channel, encodes it in 1000-frame blocks (a size that divides
//! neither FLAC's 4096-frame blocks nor MP3's 1152-frame frames) into a real file, then checks:
//! * the exact frame count (symphonia and ffprobe), sample rate and channel count;
//! * the level: PCM and FLAC bit-exact after quantisation, MP3 RMS within 0.3 dB per channel.
//!
//! ffprobe is required: run `scripts/setup-test-env.sh` if it is missing.

// Helpers outside `#[test]` fns are test code too: a panic is a failure with a backtrace.
#![allow(clippy::unwrap_used)]

use longwave::audio::{Block, StreamSpec};
use longwave::encode::{create_encoder, EncodedOutput, Mp3Rate, OutputFormat, WavSampleFormat};
use longwave::io::FileSink;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// 3.3 s: not a whole number of FLAC blocks or MP3 frames at either rate.
const SECONDS: f64 = 3.3;
const BLOCK: usize = 1000;

const STEREO_44K: StreamSpec = StreamSpec {
    sample_rate: 44_100,
    channels: 2,
};
const MONO_48K: StreamSpec = StreamSpec {
    sample_rate: 48_000,
    channels: 1,
};

/// One sine per channel, with a distinct frequency and level so that a channel swap shows.
fn sine(spec: StreamSpec) -> Vec<Vec<f32>> {
    let frames = (SECONDS * f64::from(spec.sample_rate)).round() as usize;
    (0..spec.channels)
        .map(|ch| {
            let freq = 440.0 * (ch + 1) as f64;
            let amp = 0.5 / (ch + 1) as f64;
            (0..frames)
                .map(|i| {
                    let t = i as f64 / f64::from(spec.sample_rate);
                    (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as f32
                })
                .collect()
        })
        .collect()
}

fn encode_file(
    dir: &Path,
    name: &str,
    format: OutputFormat,
    spec: StreamSpec,
    signal: &[Vec<f32>],
) -> (EncodedOutput, PathBuf) {
    let path = dir.join(format!("{name}.{}", format.extension()));
    let sink = FileSink::create(&path).unwrap();
    let mut encoder = create_encoder(format, spec, Box::new(sink)).unwrap();
    let frames = signal[0].len();
    let mut block = Block::new(spec.channels, BLOCK);
    for start in (0..frames).step_by(BLOCK) {
        let n = BLOCK.min(frames - start);
        block.set_frames(n);
        for (ch, samples) in signal.iter().enumerate() {
            block
                .channel_mut(ch)
                .copy_from_slice(&samples[start..start + n]);
        }
        encoder.write(&block).unwrap();
    }
    let output = encoder.finish().unwrap();
    assert_eq!(output.bytes, std::fs::metadata(&path).unwrap().len());
    (output, path)
}

struct Decoded {
    sample_rate: u32,
    channels: usize,
    /// Planar samples.
    samples: Vec<Vec<f32>>,
}

fn decode_with_symphonia(path: &Path) -> Decoded {
    let file = Box::new(File::open(path).unwrap());
    let mss = MediaSourceStream::new(file, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .unwrap();
    let track = format.default_track(TrackType::Audio).unwrap();
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .unwrap()
        .audio()
        .unwrap()
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .unwrap();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut buf: Vec<f32> = Vec::new();
    let mut spec = None;
    while let Some(packet) = format.next_packet().unwrap() {
        if packet.track_id != track_id {
            continue;
        }
        let audio = decoder.decode(&packet).unwrap();
        spec = Some((audio.spec().rate(), audio.spec().channels().count()));
        buf.resize(audio.samples_interleaved(), 0.0);
        audio.copy_to_slice_interleaved(&mut buf);
        interleaved.extend_from_slice(&buf);
    }
    let (sample_rate, channels) = spec.unwrap();
    let samples = (0..channels)
        .map(|ch| {
            interleaved
                .iter()
                .skip(ch)
                .step_by(channels)
                .copied()
                .collect()
        })
        .collect();
    Decoded {
        sample_rate,
        channels,
        samples,
    }
}

struct Probed {
    /// Sum of `nb_samples` over every decoded frame.
    decoded_frames: u64,
    sample_rate: u32,
    channels: usize,
    duration: f64,
}

fn ffprobe(path: &Path) -> Probed {
    // ffprobe 5.1 has no `-count_samples`; listing every decoded frame's `nb_samples` counts
    // what its decoder outputs, after libavcodec applied the LAME tag's skip/padding.
    let result = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate,channels,duration:frame=nb_samples",
            "-of",
            "json",
        ])
        .arg(path)
        .output();
    let output = match result {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "ffprobe is not installed, but these tests need it as an independent decoder: \
             run scripts/setup-test-env.sh (it installs ffmpeg)"
        ),
        Err(e) => panic!("cannot run ffprobe: {e}"),
    };
    assert!(
        output.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stream = &json["streams"][0];
    let field = |name: &str| -> String {
        match &stream[name] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    let decoded_frames = json["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["nb_samples"].as_u64().unwrap())
        .sum();
    Probed {
        decoded_frames,
        sample_rate: field("sample_rate").parse().unwrap(),
        channels: field("channels").parse().unwrap(),
        duration: field("duration").parse().unwrap(),
    }
}

fn rms_db(samples: &[f32]) -> f64 {
    let sum: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    10.0 * (sum / samples.len() as f64).log10()
}

/// The value a PCM sample of `bits` decodes to in symphonia (full scale = 2^(bits-1); the
/// encoder scales by the same 2^(bits-1) and clips to the integer range).
fn quantised(x: f32, bits: u32) -> f64 {
    let scale = f64::from(1u32 << (bits - 1));
    (f64::from(x) * scale).round().clamp(-scale, scale - 1.0) / scale
}

/// How the level of the decoded signal is checked.
#[derive(Clone, Copy)]
enum Level {
    /// Bit-exact after quantisation to `bits` (0 = float, exact).
    Exact { bits: u32 },
    /// RMS per channel within `tol_db` (lossy codecs).
    Rms { tol_db: f64 },
}

fn roundtrip(name: &str, format: OutputFormat, spec: StreamSpec, level: Level) {
    let dir = tempfile::tempdir().unwrap();
    let signal = sine(spec);
    let frames = signal[0].len() as u64;
    let (output, path) = encode_file(dir.path(), name, format, spec, &signal);
    if std::env::var_os("LONGWAVE_KEEP_TEST_OUTPUT").is_some() {
        let kept = std::env::temp_dir().join(path.file_name().unwrap());
        std::fs::copy(&path, &kept).unwrap();
        eprintln!("{name}: kept a copy as {}", kept.display());
    }
    assert_eq!(
        output.frames, frames,
        "{name}: frames reported by the encoder"
    );
    assert_eq!(output.sample_rate, spec.sample_rate);
    assert_eq!(output.channels, spec.channels);

    // symphonia
    let decoded = decode_with_symphonia(&path);
    assert_eq!(
        decoded.sample_rate, spec.sample_rate,
        "{name}: symphonia rate"
    );
    assert_eq!(
        decoded.channels, spec.channels,
        "{name}: symphonia channels"
    );
    for (ch, (got, want)) in decoded.samples.iter().zip(&signal).enumerate() {
        assert_eq!(
            got.len() as u64,
            frames,
            "{name}: symphonia frames, ch {ch}"
        );
        match level {
            Level::Exact { bits: 0 } => assert_eq!(got, want, "{name}: float samples"),
            Level::Exact { bits } => {
                for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
                    let expected = quantised(w, bits);
                    assert!(
                        (f64::from(g) - expected).abs() < 1e-9,
                        "{name}: ch {ch} sample {i}: decoded {g}, expected {expected}"
                    );
                }
            }
            Level::Rms { tol_db } => {
                let (g, w) = (rms_db(got), rms_db(want));
                eprintln!("{name}: ch {ch} RMS {g:.3} dB vs source {w:.3} dB");
                assert!(
                    (g - w).abs() < tol_db,
                    "{name}: ch {ch} RMS {g:.3} dB vs source {w:.3} dB"
                );
            }
        }
    }

    // ffprobe
    let probed = ffprobe(&path);
    assert_eq!(probed.sample_rate, spec.sample_rate, "{name}: ffprobe rate");
    assert_eq!(probed.channels, spec.channels, "{name}: ffprobe channels");
    let from_duration = (probed.duration * f64::from(spec.sample_rate)).round() as u64;
    eprintln!(
        "{name}: input {frames} frames; encoder {}; symphonia {}; ffprobe decoded {}, \
         duration {} s = {from_duration} frames",
        output.frames,
        decoded.samples[0].len(),
        probed.decoded_frames,
        probed.duration
    );
    assert_eq!(
        probed.decoded_frames, frames,
        "{name}: ffprobe decoded frames"
    );
    if matches!(format, OutputFormat::Mp3 { .. }) {
        // ffprobe 5.1's `duration` is the Xing frame count × 1152 (576 below 32 kHz): it does
        // not subtract the tag's encoder delay and padding (measured: 147456 for 145530 frames
        // at 44.1 kHz, start_time 0.025057 s = the 1105-frame delay). Its decoder does trim
        // them, which `decoded_frames` checked exactly above.
        let spf = if spec.sample_rate >= 32_000 {
            1152
        } else {
            576
        };
        assert!(
            from_duration >= frames && from_duration - frames < 3 * spf,
            "{name}: ffprobe duration {} for {frames} frames",
            probed.duration
        );
        assert_eq!(from_duration % spf, 0, "{name}: whole MP3 frames");
    } else {
        assert_eq!(
            from_duration, frames,
            "{name}: ffprobe duration {}",
            probed.duration
        );
    }
}

macro_rules! roundtrip_tests {
    ($($name:ident: $format:expr, $level:expr;)*) => {
        mod stereo_44k {
            use super::*;
            $(#[test] fn $name() { roundtrip(concat!(stringify!($name), "_stereo"), $format, STEREO_44K, $level); })*
        }
        mod mono_48k {
            use super::*;
            $(#[test] fn $name() { roundtrip(concat!(stringify!($name), "_mono"), $format, MONO_48K, $level); })*
        }
    };
}

roundtrip_tests! {
    wav16: OutputFormat::Wav { sample_format: WavSampleFormat::Pcm16 }, Level::Exact { bits: 16 };
    wav24: OutputFormat::Wav { sample_format: WavSampleFormat::Pcm24 }, Level::Exact { bits: 24 };
    wav_f32: OutputFormat::Wav { sample_format: WavSampleFormat::Float32 }, Level::Exact { bits: 0 };
    flac16: OutputFormat::Flac { bits_per_sample: 16 }, Level::Exact { bits: 16 };
    flac24: OutputFormat::Flac { bits_per_sample: 24 }, Level::Exact { bits: 24 };
    // LAME's CBR quantiser lowers a pure tone's level: −0.445 dB at 128k, −0.265 dB at 192k,
    // −0.001 dB at V2 (the same with ffmpeg's own libmp3lame at 128k, and whatever the algorithm
    // quality), so 128k gets a 0.5 dB tolerance.
    mp3_cbr128: OutputFormat::Mp3 { rate: Mp3Rate::Cbr { kbps: 128 } }, Level::Rms { tol_db: 0.5 };
    mp3_cbr192: OutputFormat::Mp3 { rate: Mp3Rate::Cbr { kbps: 192 } }, Level::Rms { tol_db: 0.3 };
    mp3_vbr_v2: OutputFormat::Mp3 { rate: Mp3Rate::Vbr { quality: 2 } }, Level::Rms { tol_db: 0.3 };
}

#[test]
fn file_sink_in_missing_or_unwritable_folder_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder").join("out.wav");
    let err = FileSink::create(&missing).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "cannot create {}: no such file or directory",
            missing.display()
        )
    );

    // A "folder" that is a regular file cannot be written into, even by root.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let inside_file = file.join("out.wav");
    let err = FileSink::create(&inside_file).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot create {}: ", inside_file.display())),
        "{err}"
    );
}

#[test]
fn encoder_dropped_mid_stream_leaves_no_file() {
    let formats = [
        OutputFormat::Wav {
            sample_format: WavSampleFormat::Pcm16,
        },
        OutputFormat::Flac {
            bits_per_sample: 16,
        },
        OutputFormat::Mp3 {
            rate: Mp3Rate::default(),
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let signal = sine(STEREO_44K);
    for format in formats {
        let path = dir.path().join(format!("partial.{}", format.extension()));
        let mut encoder = create_encoder(
            format,
            STEREO_44K,
            Box::new(FileSink::create(&path).unwrap()),
        )
        .unwrap();
        let block = Block::from_channels(&[&signal[0][..10_000], &signal[1][..10_000]]);
        encoder.write(&block).unwrap();
        drop(encoder);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{format:?} left {left:?}");
    }
}

#[test]
fn mp3_resampled_from_96k_reports_the_rate_and_length_decoders_see() {
    let spec = StreamSpec {
        sample_rate: 96_000,
        channels: 2,
    };
    let dir = tempfile::tempdir().unwrap();
    let format = OutputFormat::Mp3 {
        rate: Mp3Rate::Cbr { kbps: 192 },
    };
    let (output, path) = encode_file(dir.path(), "resampled", format, spec, &sine(spec));
    assert_eq!(output.sample_rate, 48_000);
    let decoded = decode_with_symphonia(&path);
    assert_eq!(decoded.sample_rate, 48_000);
    assert_eq!(decoded.samples[0].len() as u64, output.frames, "symphonia");
    let probed = ffprobe(&path);
    assert_eq!(probed.sample_rate, 48_000);
    assert_eq!(probed.decoded_frames, output.frames, "ffprobe");
}

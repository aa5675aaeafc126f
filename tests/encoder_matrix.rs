//! The encoder conformance matrix (issue 10): every output format and setting × mono/stereo/6
//! channels × 44.1/48/96 kHz × seven sources, judged by independent decoders.
//!
//! For each cell the encoder writes a short file (0.4 s, several FLAC frames), then:
//! - ffmpeg and symphonia both decode it to the expected frame count (the input's; for MP3 at
//!   96 kHz, which LAME resamples to 48 kHz, the count its LAME tag states);
//! - lossless outputs (WAV 16/24/f32, FLAC 16/24) are bit-exact where the input is in range and
//!   clamped exactly where it is not (NaN/Inf → 0), and the clip counts match;
//! - every FLAC passes the reference decoder's `flac -t`;
//! - lossless sizes stay within raw PCM + 2 %;
//! - MP3 decodes to finite samples, and more than two channels is refused.
//!
//! One CLI run per format on the loudest 6-channel 96 kHz source checks peak RSS against one job
//! slot's memory budget.

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure, which is what we want

mod common;

use common::{ffmpeg_decode_f32, ffmpeg_decode_s32, flac_test, write_float_wav, Noise};
use longwave::audio::{Block, StreamSpec};
use longwave::decode::{AudioDecoder, DecodeOptions};
use longwave::encode::{create_encoder, Mp3Rate, OutputFormat, WavSampleFormat};
use longwave::io::FileSink;
use std::path::Path;

const SECONDS: f64 = 0.4;
const CHANNELS: [usize; 3] = [1, 2, 6];
const RATES: [u32; 3] = [44_100, 48_000, 96_000];

/// The sources, as planar channels of `frames` samples.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// 24-bit PCM values of a 997 Hz tone at −1 dBFS (a different phase per channel).
    Tone24,
    /// 24-bit PCM values of white noise at about −10 dBFS RMS.
    Noise24,
    /// A real recording (pydub's test4.wav speech, 16-bit) copied to every channel.
    Recording,
    /// A float tone at 1.5 (+3.5 dBFS) plus noise: beyond full scale, as DAW exports are.
    FloatOverFullScale,
    /// A tone with NaN, +Inf and −Inf samples every 997 samples.
    NonFinite,
    /// Digital silence.
    Silence,
    /// A full-scale square wave (±1.0; +1.0 clips by one LSB in integer formats).
    Square,
}

const SOURCES: [Source; 7] = [
    Source::Tone24,
    Source::Noise24,
    Source::Recording,
    Source::FloatOverFullScale,
    Source::NonFinite,
    Source::Silence,
    Source::Square,
];

fn quantised24(x: f64) -> f32 {
    ((x * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0) / 8_388_608.0) as f32
}

/// The recording's samples (mono, 16-bit, decoded once per test binary).
fn recording() -> &'static [f32] {
    static SAMPLES: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pydub/test4.wav");
        let mut decoder = AudioDecoder::open_file(&path, DecodeOptions::default()).unwrap();
        let mut block = Block::new(decoder.info().spec.channels, 4096);
        let mut out = Vec::new();
        while decoder.fill(&mut block).unwrap() > 0 {
            out.extend_from_slice(block.channel(0));
        }
        // The speech starts at 3.2 s; take it from there.
        out.split_off(48_000 * 32 / 10)
    })
}

fn make(source: Source, channels: usize, rate: u32) -> Vec<Vec<f32>> {
    let frames = (SECONDS * f64::from(rate)) as usize;
    let mut noise = Noise::new(channels as u64 * 131 + u64::from(rate));
    (0..channels)
        .map(|ch| {
            (0..frames)
                .map(|i| {
                    let t = i as f64 / f64::from(rate);
                    let phase = ch as f64 * 0.7;
                    let tone = (2.0 * std::f64::consts::PI * 997.0 * t + phase).sin();
                    match source {
                        Source::Tone24 => quantised24(0.891 * tone),
                        Source::Noise24 => quantised24(0.55 * f64::from(noise.uniform())),
                        Source::Recording => recording()[i % recording().len()],
                        Source::FloatOverFullScale => (1.5 * tone) as f32 + 0.05 * noise.normal(),
                        Source::NonFinite => match i % 997 {
                            10 => f32::NAN,
                            20 => f32::INFINITY,
                            30 => f32::NEG_INFINITY,
                            _ => (0.5 * tone) as f32,
                        },
                        Source::Silence => 0.0,
                        Source::Square => {
                            if (i / 50) % 2 == 0 {
                                1.0
                            } else {
                                -1.0
                            }
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// What a lossless output must hold for `x`, and whether it is a clip (or a non-finite repair).
fn expected_int(x: f32, bits: u32) -> (i32, bool) {
    if !x.is_finite() {
        return (0, true);
    }
    let scale = f64::from(1u32 << (bits - 1));
    let exact = (f64::from(x) * scale).round();
    let clamped = exact.clamp(-scale, scale - 1.0);
    (clamped as i32, clamped != exact)
}

fn expected_float(x: f32) -> (f32, bool) {
    if !x.is_finite() {
        (0.0, true)
    } else if x.abs() > 16.0 {
        (16.0f32.copysign(x), true)
    } else {
        (x, false)
    }
}

/// Frames symphonia decodes from `path`.
fn symphonia_frames(path: &Path) -> u64 {
    let mut decoder = AudioDecoder::open_file(path, DecodeOptions::default()).unwrap();
    let mut block = Block::new(decoder.info().spec.channels, 4096);
    let mut frames = 0;
    while decoder.fill(&mut block).unwrap() > 0 {
        frames += block.frames() as u64;
    }
    frames
}

/// Runs one format over every channel count, rate and source.
fn check_format(format: OutputFormat) {
    let dir = tempfile::tempdir().unwrap();
    for channels in CHANNELS {
        for rate in RATES {
            for source in SOURCES {
                let cell = format!("{format:?} × {channels} ch × {rate} Hz × {source:?}");
                check_cell(dir.path(), format, channels, rate, source, &cell);
            }
        }
    }
}

fn check_cell(
    dir: &Path,
    format: OutputFormat,
    channels: usize,
    rate: u32,
    source: Source,
    cell: &str,
) {
    let planar = make(source, channels, rate);
    let frames = planar[0].len();
    let spec = StreamSpec::new(rate, channels).unwrap();
    let path = dir.join(format!("cell.{}", format.extension()));
    let sink = FileSink::create(&path).unwrap();
    let encoder = create_encoder(format, spec, Box::new(sink));
    if matches!(format, OutputFormat::Mp3 { .. }) && channels > 2 {
        let err = encoder.err().unwrap_or_else(|| panic!("{cell}: accepted"));
        assert!(
            err.to_string().contains("at most 2 channels"),
            "{cell}: {err}"
        );
        return;
    }
    let mut encoder = encoder.unwrap_or_else(|e| panic!("{cell}: {e}"));
    // Odd-sized blocks, as the pipeline's rechunked blocks can be at a piece boundary.
    for start in (0..frames).step_by(1000) {
        let end = (start + 1000).min(frames);
        let slices: Vec<&[f32]> = planar.iter().map(|c| &c[start..end]).collect();
        encoder.write(&Block::from_channels(&slices)).unwrap();
    }
    let encoded = encoder.finish().unwrap_or_else(|e| panic!("{cell}: {e}"));

    let expected_frames = match format {
        OutputFormat::Mp3 { .. } if rate > 48_000 => {
            // LAME resamples to 48 kHz; the tag states the resampled length.
            let ratio = 48_000.0 / f64::from(rate);
            assert!(
                (encoded.frames as f64 - frames as f64 * ratio).abs() < 64.0,
                "{cell}: {} frames",
                encoded.frames
            );
            encoded.frames
        }
        _ => frames as u64,
    };
    assert_eq!(encoded.frames, expected_frames, "{cell}");
    assert_eq!(
        symphonia_frames(&path),
        expected_frames,
        "{cell}: symphonia"
    );
    let (ff_channels, ff) = ffmpeg_decode_f32(&path);
    assert_eq!(ff_channels, encoded.channels, "{cell}");
    assert_eq!(
        (ff.len() / ff_channels) as u64,
        expected_frames,
        "{cell}: ffmpeg"
    );

    let size = std::fs::metadata(&path).unwrap().len();
    let (bits, lossless_float) = match format {
        OutputFormat::Wav {
            sample_format: WavSampleFormat::Pcm16,
        }
        | OutputFormat::Flac {
            bits_per_sample: 16,
        } => (16, false),
        OutputFormat::Wav {
            sample_format: WavSampleFormat::Pcm24,
        }
        | OutputFormat::Flac {
            bits_per_sample: 24,
        } => (24, false),
        OutputFormat::Wav {
            sample_format: WavSampleFormat::Float32,
        } => (32, true),
        _ => {
            // MP3: lossy; finite samples and the right length are what can be required.
            assert!(ff.iter().all(|x| x.is_finite()), "{cell}: non-finite");
            return;
        }
    };
    let raw = (frames * channels) as u64 * u64::from(bits / 8);
    assert!(
        size <= raw + raw / 50 + 128,
        "{cell}: {size} B for {raw} B of PCM"
    );
    if matches!(format, OutputFormat::Flac { .. }) {
        flac_test(&path);
    }
    let mut clipped = 0u64;
    let mut non_finite = 0u64;
    if lossless_float {
        for (i, &y) in ff.iter().enumerate() {
            let x = planar[i % channels][i / channels];
            let (want, repaired) = expected_float(x);
            if repaired {
                if x.is_finite() {
                    clipped += 1;
                } else {
                    non_finite += 1;
                }
            }
            assert_eq!(y.to_bits(), want.to_bits(), "{cell}: sample {i}");
        }
    } else {
        let ints = ffmpeg_decode_s32(&path);
        assert_eq!(ints.len(), frames * channels, "{cell}");
        for (i, &y) in ints.iter().enumerate() {
            let x = planar[i % channels][i / channels];
            let (want, repaired) = expected_int(x, bits);
            if repaired {
                if x.is_finite() {
                    clipped += 1;
                } else {
                    non_finite += 1;
                }
            }
            assert_eq!(y >> (32 - bits), want, "{cell}: sample {i}");
        }
    }
    assert_eq!(encoded.clipped_samples, clipped, "{cell}: clipped count");
    assert_eq!(encoded.non_finite_samples, non_finite, "{cell}: non-finite");
}

#[test]
fn wav_pcm16() {
    check_format(OutputFormat::Wav {
        sample_format: WavSampleFormat::Pcm16,
    });
}

#[test]
fn wav_pcm24() {
    check_format(OutputFormat::Wav {
        sample_format: WavSampleFormat::Pcm24,
    });
}

#[test]
fn wav_float32() {
    check_format(OutputFormat::Wav {
        sample_format: WavSampleFormat::Float32,
    });
}

#[test]
fn flac16() {
    check_format(OutputFormat::Flac {
        bits_per_sample: 16,
    });
}

#[test]
fn flac24() {
    check_format(OutputFormat::Flac {
        bits_per_sample: 24,
    });
}

#[test]
fn mp3_cbr() {
    check_format(OutputFormat::Mp3 {
        rate: Mp3Rate::Cbr { kbps: 192 },
    });
}

#[test]
fn mp3_vbr() {
    check_format(OutputFormat::Mp3 {
        rate: Mp3Rate::Vbr { quality: 2 },
    });
}

/// Peak RSS of the largest child this process has waited for, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    u64::try_from(usage.ru_maxrss).unwrap() * 1024
}

/// Runs `longwave process INPUT -o OUT --quiet --preset PRESET [flags]`, which must succeed.
fn process(input: &Path, out: &Path, preset: &str, flags: &[&str]) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_longwave"))
        .args([
            "process",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--quiet", "--preset", preset])
        .args(flags)
        .status()
        .unwrap();
    assert!(status.success(), "{out:?}");
}

#[test]
fn peak_rss_of_every_format_stays_within_one_job_slot() {
    use longwave::io::S3Settings;
    use longwave::job::RunnerConfig;
    let budget =
        longwave::worker::memory_budget_bytes(1, &S3Settings::default(), &RunnerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    // 10 s of the loudest source, 6 channels at 96 kHz, through the CLI (24-bit FLAC of such
    // input took 6.2 GiB before the verbatim bound).
    let rate = 96_000;
    let mut noise = Noise::new(5);
    let samples: Vec<f32> = (0..10 * rate * 6)
        .map(|i| {
            let t = (i / 6) as f32 / rate as f32;
            1.4 * (2.0 * std::f32::consts::PI * 220.0 * t).sin() + 0.2 * noise.normal()
        })
        .collect();
    let input = dir.path().join("loud6.wav");
    write_float_wav(&input, rate as u32, 6, &samples);
    for (name, flags) in [
        ("o16.wav", &["--wav-format", "pcm16"][..]),
        ("o24.wav", &["--wav-format", "pcm24"][..]),
        ("of.wav", &["--wav-format", "float32"][..]),
        ("o16.flac", &["--flac-bits", "16"][..]),
        ("o24.flac", &["--flac-bits", "24"][..]),
    ] {
        process(&input, &dir.path().join(name), "transcode", flags);
        let peak = children_peak_rss();
        assert!(
            peak <= budget,
            "{name}: peak RSS {peak} B over the one-slot budget {budget} B"
        );
    }
    // MP3 carries 2 channels: the stereo downmix is not ours to invent, so stereo input here.
    let stereo: Vec<f32> = samples.chunks_exact(6).flat_map(|f| [f[0], f[1]]).collect();
    let input = dir.path().join("loud2.wav");
    write_float_wav(&input, rate as u32, 2, &stereo);
    process(&input, &dir.path().join("o.mp3"), "8d", &[]);
    assert!(children_peak_rss() <= budget);
}

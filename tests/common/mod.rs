//! Helpers shared by the end-to-end tests (each `tests/*.rs` file is its own crate and uses
//! only some of them).

#![allow(dead_code)] // each test crate uses a different subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

pub mod aws;
pub mod fault_proxy;
pub mod grafana;
pub mod promql;
pub mod rules;
pub mod worker;

use longwave::audio::{Block, StreamSpec};
use longwave::encode::{create_encoder, OutputFormat, WavSampleFormat};
use longwave::io::FileSink;
use longwave::synth::SpeechLike;
use std::path::{Path, PathBuf};

/// Runs the longwave binary with `args` (stdin closed, so nothing waits on a terminal).
pub fn longwave(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_longwave"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A test path as `&str` (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes `seconds` of the speech-like test signal (seeded by `seed`) to `dir/name` as a WAV
/// of `sample_format`, in odd-sized blocks.
pub fn write_speech(
    dir: &Path,
    name: &str,
    spec: StreamSpec,
    seconds: f64,
    sample_format: WavSampleFormat,
    seed: u64,
) -> PathBuf {
    let path = dir.join(name);
    let sink = FileSink::create(&path).unwrap();
    let format = OutputFormat::Wav { sample_format };
    let mut encoder = create_encoder(format, spec, Box::new(sink)).unwrap();
    let mut generator = SpeechLike::new(spec, seconds, seed);
    let mut block = Block::new(spec.channels, 999);
    while generator.fill(&mut block) > 0 {
        encoder.write(&block).unwrap();
    }
    encoder.finish().unwrap();
    path
}

/// Writes interleaved 32-bit float samples as a WAV (format tag 3) byte by byte, independent of
/// longwave's encoder (which repairs NaN/Inf): the way a DAW or numpy writes such files.
pub fn write_float_wav(path: &Path, sample_rate: u32, channels: u16, interleaved: &[f32]) {
    let data_len = u32::try_from(interleaved.len() * 4).unwrap();
    let mut bytes = Vec::with_capacity(44 + interleaved.len() * 4);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&3u16.to_le_bytes()); // WAVE_FORMAT_IEEE_FLOAT
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&sample_rate.to_le_bytes());
    bytes.extend_from_slice(&(sample_rate * u32::from(channels) * 4).to_le_bytes());
    bytes.extend_from_slice(&(channels * 4).to_le_bytes());
    bytes.extend_from_slice(&32u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for x in interleaved {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// A deterministic xorshift generator: uniform samples for noise in tests (no extra crates).
pub struct Noise(u64);

impl Noise {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in −1..1.
    pub fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Approximately normal (sum of four uniforms), standard deviation ≈ 1.
    pub fn normal(&mut self) -> f32 {
        (self.uniform() + self.uniform() + self.uniform() + self.uniform()) * 0.866
    }
}

/// The 6-channel "speech" signal: 1.5 s bursts (a tone with 4 Hz tremolo plus noise)
/// and 1.0 s pauses, each channel 10 % quieter than the one before, over a −80 dB noise floor;
/// interleaved, `channels` wide (the bursts are copied to every channel).
pub fn speech_bursts(sample_rate: u32, channels: usize, seconds: f64, seed: u64) -> Vec<f32> {
    let frames = (seconds * f64::from(sample_rate)) as usize;
    let mut noise = Noise::new(seed);
    let mut out = vec![0.0f32; frames * channels];
    for i in 0..frames {
        let t = i as f64 / f64::from(sample_rate);
        let cycle = (t / 2.5).floor();
        let in_burst = t - cycle * 2.5 < 1.5;
        let burst = if in_burst {
            let f = 180.0 + 40.0 * cycle;
            (0.3 * (2.0 * std::f64::consts::PI * f * t).sin()
                * (0.6 + 0.4 * (2.0 * std::f64::consts::PI * 4.0 * t).sin())) as f32
                + 0.05 * noise.normal()
        } else {
            0.0
        };
        for c in 0..channels {
            out[i * channels + c] = burst * (1.0 - 0.1 * c as f32) + 1e-4 * noise.normal();
        }
    }
    out
}

/// Decodes `path` with ffmpeg to raw interleaved samples of `codec` (`pcm_f32le`, `pcm_s32le`).
fn ffmpeg_decode_raw(path: &Path, codec: &str) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", &codec[4..], "-acodec", codec, "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup-test-env.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Decodes `path` with ffmpeg to interleaved f32 samples; returns (channels, samples).
pub fn ffmpeg_decode_f32(path: &Path) -> (usize, Vec<f32>) {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["stream=channels", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/setup-test-env.sh installs it)");
    assert!(probe.status.success(), "ffprobe {path:?}: {probe:?}");
    let channels: usize = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    let samples = ffmpeg_decode_raw(path, "pcm_f32le")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (channels, samples)
}

/// Decodes `path` with ffmpeg to interleaved signed 32-bit integers (16- and 24-bit PCM land in
/// the top bits).
pub fn ffmpeg_decode_s32(path: &Path) -> Vec<i32> {
    ffmpeg_decode_raw(path, "pcm_s32le")
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Runs the reference decoder's integrity test (`flac -t`: CRCs, MD5, structure) on `path`.
pub fn flac_test(path: &Path) {
    let out = std::process::Command::new("flac")
        .args(["-t", "--silent"])
        .arg(path)
        .output()
        .expect("flac runs (scripts/setup-test-env.sh installs the Debian package flac)");
    assert!(
        out.status.success(),
        "flac -t rejects {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `waveform-data` read from a file: the header fields and per channel the min and max
/// arrays.
pub struct WaveformRead {
    pub header: serde_json::Value,
    pub min: Vec<Vec<i64>>,
    pub max: Vec<Vec<i64>>,
}

/// Loads `path` with the npm `waveform-data` package (tests/js/read-waveform.cjs).
pub fn read_with_waveform_data(path: &Path) -> WaveformRead {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/read-waveform.cjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(path)
        .output()
        .expect("node runs (scripts/setup-test-env.sh installs nodejs and tests/js)");
    assert!(
        out.status.success(),
        "waveform-data cannot read {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arrays = |key: &str| -> Vec<Vec<i64>> {
        header[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .collect()
    };
    WaveformRead {
        min: arrays("min"),
        max: arrays("max"),
        header,
    }
}

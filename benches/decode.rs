//! Decode throughput: a generated 60 s stereo 44.1 kHz WAV and MP3 decoded to the end in
//! 4096-frame blocks. Reports frames per second (`Throughput::Elements`) and prints the realtime
//! factor. Fixtures are generated with ffmpeg into `target/test-fixtures/` (cached).

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use longwave::audio::Block;
use longwave::decode::{AudioDecoder, DecodeOptions};

const SECONDS: u32 = 60;
const RATE: u32 = 44_100;

/// Generates `name` with ffmpeg (a 440 Hz sine plus pink noise, so codecs do real work).
fn fixture(name: &str, codec_args: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-fixtures");
    std::fs::create_dir_all(&dir).expect("create target/test-fixtures");
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    let tmp = dir.join(format!(".{}-{name}", std::process::id()));
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!(
            "sine=frequency=440:sample_rate={RATE}:duration={SECONDS}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "anoisesrc=color=pink:sample_rate={RATE}:duration={SECONDS}:amplitude=0.1"
        ))
        .args([
            "-filter_complex",
            "[0][1]amix=inputs=2,pan=stereo|c0=c0|c1=c0",
        ])
        .args(codec_args)
        .arg(&tmp)
        .status()
        .expect("ffmpeg is required: run scripts/setup-test-env.sh");
    assert!(status.success(), "ffmpeg failed to generate {name}");
    std::fs::rename(&tmp, &path).expect("rename fixture");
    path
}

/// Decodes `path` to the end; returns the frame count.
fn decode_all(path: &Path, block: &mut Block) -> u64 {
    let mut decoder = AudioDecoder::open_file(path, DecodeOptions::default()).expect("open");
    while decoder.fill(block).expect("decode") > 0 {}
    decoder.frames_decoded()
}

fn bench_decode(c: &mut Criterion) {
    let inputs = [
        ("wav_s16", fixture("bench_60s.wav", &["-c:a", "pcm_s16le"])),
        (
            "mp3_192k",
            fixture("bench_60s.mp3", &["-c:a", "libmp3lame", "-b:a", "192k"]),
        ),
    ];
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for (label, path) in &inputs {
        let mut block = Block::new(2, 4096);
        let frames = decode_all(path, &mut block);
        let start = Instant::now();
        decode_all(path, &mut block);
        let realtime = f64::from(SECONDS) / start.elapsed().as_secs_f64();
        println!("decode/{label}: {frames} frames, {realtime:.0}x realtime (one warm run)");
        group.throughput(Throughput::Elements(frames));
        group.bench_function(*label, |b| b.iter(|| decode_all(path, &mut block)));
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);

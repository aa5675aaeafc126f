//! Encoder throughput: 10 s of stereo 44.1 kHz into a [`MemorySink`], in 4096-frame blocks (the
//! pipeline's block size). Reported as frames per second; divide by 44 100 for the realtime
//! factor on one core. `mp3_threads` encodes 60 s of the same signal as one MP3 on 1, 2 and 4
//! threads (`create_encoder_threaded`): the parallel encoder's speed-up, which a machine can
//! show only up to its core count.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use longwave::audio::MemorySink;
use longwave::audio::{Block, StreamSpec};
use longwave::encode::{
    create_encoder, create_encoder_threaded, Mp3Rate, OutputFormat, WavSampleFormat,
};
use std::hint::black_box;

const SPEC: StreamSpec = StreamSpec {
    sample_rate: 44_100,
    channels: 2,
};
const SECONDS: usize = 10;
const BLOCK: usize = 4096;

/// A 440 Hz / 660 Hz tone pair with a little deterministic noise, so that FLAC's predictor and
/// LAME's psychoacoustics do realistic work.
fn blocks(seconds: usize) -> Vec<Block> {
    let frames = seconds * SPEC.sample_rate as usize;
    let mut seed: u32 = 0x1234_5678;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let rate = SPEC.sample_rate as f32;
    let mut left = Vec::with_capacity(frames);
    let mut right = Vec::with_capacity(frames);
    for i in 0..frames {
        let t = i as f32 / rate;
        left.push(0.4 * (std::f32::consts::TAU * 440.0 * t).sin() + 0.02 * noise());
        right.push(0.3 * (std::f32::consts::TAU * 660.0 * t).sin() + 0.02 * noise());
    }
    (0..frames)
        .step_by(BLOCK)
        .map(|start| {
            let end = (start + BLOCK).min(frames);
            Block::from_channels(&[&left[start..end], &right[start..end]])
        })
        .collect()
}

fn bench_encoders(c: &mut Criterion) {
    let blocks = blocks(SECONDS);
    let frames: usize = blocks.iter().map(Block::frames).sum();
    let mut group = c.benchmark_group("encode_10s_stereo_44k");
    group.throughput(Throughput::Elements(frames as u64));
    group.sample_size(10);
    let formats = [
        (
            "wav16",
            OutputFormat::Wav {
                sample_format: WavSampleFormat::Pcm16,
            },
        ),
        (
            "flac16",
            OutputFormat::Flac {
                bits_per_sample: 16,
            },
        ),
        (
            "mp3_cbr192",
            OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 192 },
            },
        ),
    ];
    for (name, format) in formats {
        group.bench_function(name, |b| {
            b.iter(|| {
                let sink = Box::new(MemorySink::with_capacity(frames * 4 + 1024));
                let mut encoder = create_encoder(format, SPEC, sink).expect("encoder");
                for block in &blocks {
                    encoder.write(block).expect("write");
                }
                black_box(encoder.finish().expect("finish"))
            });
        });
    }
    group.finish();
}

fn bench_mp3_threads(c: &mut Criterion) {
    let blocks = blocks(60);
    let frames: usize = blocks.iter().map(Block::frames).sum();
    let mut group = c.benchmark_group("mp3_threads_60s_stereo_44k");
    group.throughput(Throughput::Elements(frames as u64));
    group.sample_size(10);
    let format = OutputFormat::Mp3 {
        rate: Mp3Rate::Cbr { kbps: 192 },
    };
    for threads in [1, 2, 4] {
        group.bench_function(format!("cbr192_{threads}_threads"), |b| {
            b.iter(|| {
                let sink = Box::new(MemorySink::with_capacity(frames + 1024));
                let mut encoder =
                    create_encoder_threaded(format, SPEC, sink, threads).expect("encoder");
                for block in &blocks {
                    encoder.write(block).expect("write");
                }
                black_box(encoder.finish().expect("finish"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encoders, bench_mp3_threads);
criterion_main!(benches);

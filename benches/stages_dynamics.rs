//! Dynamics stages benchmark: `limiter` (juce and true_peak modes) and `normalize` (processing
//! pass only) on 10 s of stereo 44.1 kHz noise in 4096-frame blocks. Reports frames per second
//! (criterion throughput); divide by 44 100 for the realtime factor.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use longwave::audio::{Block, StreamSpec};
use longwave::dsp::{
    Limiter, LimiterMode, LimiterParams, Normalize, NormalizeParams, Stage, StageContext,
};

const SECONDS: usize = 10;
const BLOCK: usize = 4096;

/// Deterministic white noise (xorshift) at about −6 dBFS peak with louder bursts, so the limiters
/// really limit.
fn noise(frames: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..frames)
        .map(|n| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0;
            let burst = if (n / 22_050) % 3 == 0 { 4.0 } else { 0.5 };
            u * burst
        })
        .collect()
}

fn input_blocks(spec: StreamSpec) -> Vec<Block> {
    let frames = SECONDS * spec.sample_rate as usize;
    let left = noise(frames, 1);
    let right = noise(frames, 2);
    (0..frames)
        .step_by(BLOCK)
        .map(|start| {
            let end = (start + BLOCK).min(frames);
            Block::from_channels(&[&left[start..end], &right[start..end]])
        })
        .collect()
}

fn run(stage: &mut dyn Stage, blocks: &[Block], output: &mut Block, cx: &mut StageContext) {
    for block in blocks {
        stage.process(block, output, cx);
    }
}

fn dynamics(c: &mut Criterion) {
    let spec = StreamSpec::new(44_100, 2).expect("spec");
    let blocks = input_blocks(spec);
    let frames = (SECONDS * spec.sample_rate as usize) as u64;
    let mut output = Block::new(spec.channels, BLOCK);
    let mut cx = StageContext::default();

    let mut group = c.benchmark_group("stages_dynamics");
    group.throughput(Throughput::Elements(frames));

    for (name, mode) in [
        ("limiter_juce", LimiterMode::Juce),
        ("limiter_true_peak", LimiterMode::TruePeak),
    ] {
        let mut stage = Limiter::new(LimiterParams {
            mode,
            ..LimiterParams::default()
        });
        stage.prepare(spec, BLOCK).expect("prepare");
        group.bench_function(name, |b| {
            b.iter(|| run(&mut stage, &blocks, &mut output, &mut cx));
        });
    }

    let mut stage = Normalize::new(NormalizeParams {
        lufs: Some(-16.0),
        ..NormalizeParams::default()
    });
    stage.prepare(spec, BLOCK).expect("prepare");
    for block in &blocks {
        stage.observe(block);
    }
    stage.end_observation();
    group.bench_function("normalize_process", |b| {
        b.iter(|| run(&mut stage, &blocks, &mut output, &mut cx));
    });
    group.finish();
}

criterion_group!(benches, dynamics);
criterion_main!(benches);

//! Spatial stages benchmark: `reverb` (pedalboard defaults) and `pan8d` (sine and binaural) on
//! 10 s of stereo 44.1 kHz noise in 4096-frame blocks, as the chain feeds them; and the `8d`
//! preset's whole chain on 10 s of speech-like audio.
//! Reports frames per second (criterion throughput); divide by 44 100 for the realtime factor.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use longwave::audio::{Block, StreamSpec};
use longwave::dsp::{
    Chain, Pan8d, Pan8dParams, PanMode, Reverb, ReverbParams, Stage, StageContext,
};
use longwave::job::{preset, BuildContext};
use longwave::synth::SpeechLike;
use std::hint::black_box;

const SECONDS: usize = 10;
const RATE: u32 = 44_100;
const BLOCK: usize = 4096;

/// Deterministic stereo noise (xorshift64*) cut into `BLOCK`-frame blocks.
fn noise_blocks(frames: usize) -> Vec<Block> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        ((bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * 0.5
    };
    let left: Vec<f32> = (0..frames).map(|_| next()).collect();
    let right: Vec<f32> = (0..frames).map(|_| next()).collect();
    left.chunks(BLOCK)
        .zip(right.chunks(BLOCK))
        .map(|(l, r)| Block::from_channels(&[l, r]))
        .collect()
}

fn bench_stage(c: &mut Criterion, name: &str, mut stage: Box<dyn Stage>, blocks: &[Block]) {
    let spec = StreamSpec::new(RATE, 2).expect("spec");
    let out_spec = stage.prepare(spec, BLOCK).expect("prepare");
    let mut output = Block::new(out_spec.channels, BLOCK);
    let mut cx = StageContext::default();
    let frames: usize = blocks.iter().map(Block::frames).sum();

    let mut group = c.benchmark_group("stages_space");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            stage.reset();
            for block in blocks {
                stage.process(block, &mut output, &mut cx);
                black_box(output.channel(0));
            }
        });
    });
    group.finish();
}

/// The `8d` preset's whole chain (pan8d → reverb → gain → true-peak limiter) through
/// [`Chain`], on 10 s of the speech-like generator (realistic levels: the limiter's detector
/// sees mostly quiet frames and some peaks over its ceiling), as a job runs it.
fn eightd_chain(c: &mut Criterion) {
    let spec = StreamSpec::new(RATE, 2).expect("spec");
    let mut generator = SpeechLike::new(spec, SECONDS as f64, 7);
    let mut blocks = Vec::new();
    loop {
        let mut block = Block::new(2, BLOCK);
        if generator.fill(&mut block) == 0 {
            break;
        }
        blocks.push(block);
    }
    let stages = preset("8d")
        .expect("8d preset")
        .chain
        .iter()
        .map(|s| s.build(&BuildContext::default()))
        .collect();
    let mut chain = Chain::new(stages);
    chain.prepare(spec, BLOCK).expect("prepare");
    let frames: usize = blocks.iter().map(Block::frames).sum();
    let mut group = c.benchmark_group("stages_space");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames as u64));
    group.bench_function("eightd_chain", |b| {
        b.iter(|| {
            chain.reset();
            for block in &blocks {
                black_box(chain.process(block).channel(0));
            }
        });
    });
    group.finish();
}

fn stages_space(c: &mut Criterion) {
    let blocks = noise_blocks(SECONDS * RATE as usize);
    bench_stage(
        c,
        "reverb_default",
        Box::new(Reverb::new(ReverbParams::default())),
        &blocks,
    );
    bench_stage(
        c,
        "pan8d_sine",
        Box::new(Pan8d::new(Pan8dParams::default())),
        &blocks,
    );
    bench_stage(
        c,
        "pan8d_binaural",
        Box::new(Pan8d::new(Pan8dParams {
            mode: PanMode::Binaural,
            ..Pan8dParams::default()
        })),
        &blocks,
    );
}

criterion_group!(benches, stages_space, eightd_chain);
criterion_main!(benches);

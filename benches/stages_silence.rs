//! `silence` stage throughput: pydub-exact and accurate split on 30 s of stereo 44.1 kHz
//! speech-like audio, in 4096-frame blocks (frames per second via criterion throughput).

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use longwave::audio::{Block, StreamSpec};
use longwave::dsp::{Silence, SilenceMode, SilenceParams, Stage, StageContext};
use longwave::synth::SpeechLike;

const SECONDS: f64 = 30.0;
const BLOCK: usize = 4096;

fn blocks(spec: StreamSpec) -> Vec<Block> {
    let mut generator = SpeechLike::new(spec, SECONDS, 3);
    let mut out = Vec::new();
    loop {
        let mut block = Block::new(spec.channels, BLOCK);
        if generator.fill(&mut block) == 0 {
            break;
        }
        out.push(block);
    }
    out
}

fn run(params: &SilenceParams, spec: StreamSpec, input: &[Block]) -> u64 {
    let mut stage = Silence::new(params.clone());
    stage.prepare(spec, BLOCK).expect("prepare");
    let mut output = Block::new(spec.channels, BLOCK);
    let mut cx = StageContext::default();
    let mut frames = 0;
    for block in input {
        stage.process(block, &mut output, &mut cx);
        frames += output.frames() as u64;
        cx.clear_events();
    }
    cx.flushing = true;
    cx.end_of_stream = true;
    let mut silence = Block::new(spec.channels, BLOCK);
    let mut remaining = stage.tail_frames();
    while remaining > 0 {
        let n = remaining.min(BLOCK);
        remaining -= n;
        silence.set_frames(n);
        stage.process(&silence, &mut output, &mut cx);
        frames += output.frames() as u64;
        cx.clear_events();
    }
    frames
}

fn bench(c: &mut Criterion) {
    let spec = StreamSpec::new(44_100, 2).expect("spec");
    let input = blocks(spec);
    let frames: u64 = input.iter().map(|b| b.frames() as u64).sum();
    let mut group = c.benchmark_group("silence_split_30s_stereo_44k1");
    group.throughput(Throughput::Elements(frames));
    for mode in [SilenceMode::Pydub, SilenceMode::Accurate] {
        let params = SilenceParams {
            mode,
            ..SilenceParams::default()
        };
        group.bench_function(format!("{mode:?}").to_lowercase(), |b| {
            b.iter(|| run(&params, spec, &input))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

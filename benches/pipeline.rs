//! Whole-pipeline benchmark: a generated 30 s stereo 44.1 kHz WAV file → decode → gain →
//! encode (WAV, FLAC, MP3 192k) to a real file, as `longwave process` runs it.
//! Reports frames per second (criterion throughput) and prints the realtime factor.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use longwave::audio::{Block, StreamSpec};
use longwave::encode::{create_encoder, Mp3Rate, OutputFormat, WavSampleFormat};
use longwave::io::FileSink;
use longwave::job::{self, LocalJob, NoProgress, RunnerConfig, StageSpec};
use longwave::synth::SpeechLike;
use std::path::Path;
use std::time::Instant;

const SECONDS: f64 = 30.0;

fn make_input(path: &Path, spec: StreamSpec) {
    let sink = FileSink::create(path).expect("create input");
    let format = OutputFormat::Wav {
        sample_format: WavSampleFormat::Pcm16,
    };
    let mut encoder = create_encoder(format, spec, Box::new(sink)).expect("encoder");
    let mut generator = SpeechLike::new(spec, SECONDS, 1);
    let mut block = Block::new(spec.channels, 8192);
    while generator.fill(&mut block) > 0 {
        encoder.write(&block).expect("write");
    }
    encoder.finish().expect("finish");
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = StreamSpec::new(44_100, 2).expect("spec");
    let input = dir.path().join("input.wav");
    make_input(&input, spec);
    let frames = (SECONDS * f64::from(spec.sample_rate)) as u64;
    let config = RunnerConfig::default();

    let mut group = c.benchmark_group("pipeline_gain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames));
    let outputs = [
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
            "mp3_192",
            OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 192 },
            },
        ),
    ];
    for (name, format) in outputs {
        let job = LocalJob {
            input: input.clone(),
            output: Some(dir.path().join(format!("out.{}", format.extension()))),
            preset: None,
            chain: vec![StageSpec::Gain { gain_db: -3.0 }],
            format: Some(format),
            manifest: None,
            overwrite: true,
            waveform: None,
        };
        let started = Instant::now();
        job::run_local(&job, &config, &NoProgress).expect("job");
        eprintln!(
            "pipeline_gain/{name}: {:.0}x realtime (single warm-up run)",
            SECONDS / started.elapsed().as_secs_f64()
        );
        group.bench_function(name, |b| {
            b.iter(|| job::run_local(&job, &config, &NoProgress).expect("job"))
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);

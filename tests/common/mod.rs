//! Helpers shared by the end-to-end tests (each `tests/*.rs` file is its own crate and uses
//! only some of them).

#![allow(dead_code)] // each test crate uses a different subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

pub mod aws;

use longwave::audio::{Block, StreamSpec};
use longwave::encode::{create_encoder, FileSink, OutputFormat, WavSampleFormat};
use longwave::synth::SpeechLike;
use std::path::{Path, PathBuf};

/// A small rayon pool for the runner.
pub fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
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

//! Replays the fuzz targets' seed corpora and every input the fuzzers ever found
//! (`fuzz/regressions/<target>/`) through the same entry points the targets call
//! (`longwave::fuzzing`), so a finding stays fixed under plain `cargo test`. The fuzzers
//! themselves run from `scripts/fuzz.sh` (a bounded smoke in CI, long runs by hand).

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure, which is what we want

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && !path.ends_with(".keep"))
        .collect();
    found.sort();
    found
}

fn fuzz_dir(part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(part)
}

/// The committed seeds of a target's corpus (the fuzzer grows the folder with files of its own,
/// which git ignores and a fresh clone does not have).
fn seeds(target: &str) -> Vec<PathBuf> {
    let mut found = files(&fuzz_dir(&format!("corpus/{target}")));
    found.retain(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("seed-"))
    });
    found
}

/// Runs `entry` on every file, naming the file when it panics.
fn replay<T>(inputs: &[PathBuf], entry: fn(&[u8]) -> T) -> Vec<T> {
    inputs
        .iter()
        .map(|path| {
            let data = std::fs::read(path).unwrap();
            std::panic::catch_unwind(|| entry(&data))
                .unwrap_or_else(|_| panic!("{} fails its target", path.display()))
        })
        .collect()
}

#[test]
fn decode_seeds_fixtures_and_findings_replay_cleanly() {
    let seeds = seeds("decode");
    assert!(seeds.len() >= 20, "the decode seed corpus is missing");
    // The seeds are valid files (one WAV holds no frames): each decodes whole, so the target really
    // reaches the decoders rather than failing at the probe.
    for (seed, outcome) in seeds
        .iter()
        .zip(replay(&seeds, longwave::fuzzing::decode_bytes))
    {
        let name = seed.file_name().unwrap().to_str().unwrap();
        match outcome {
            Ok(0) if name == "seed-pydub-empty.wav" => {}
            Ok(frames) => assert!(frames >= 1_000, "{name}: {frames} frames"),
            Err(error) => panic!("{name}: {error}"),
        }
    }
    let mut inputs = files(&fuzz_dir("regressions/decode"));
    inputs.extend(files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pydub"),
    ));
    replay(&inputs, longwave::fuzzing::decode_bytes);
    // Every prefix of one seed per container: truncation at each byte class is the commonest
    // real damage, and cheap to sweep here.
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap();
        for cut in (0..data.len()).step_by(data.len() / 64 + 1) {
            let outcome =
                std::panic::catch_unwind(|| longwave::fuzzing::decode_bytes(&data[..cut]));
            assert!(outcome.is_ok(), "{} cut at {cut} bytes", seed.display());
        }
    }
}

#[test]
fn message_seeds_and_findings_replay_cleanly() {
    let seeds = seeds("message");
    assert!(seeds.len() >= 8, "the message seed corpus is missing");
    // Every seed is a valid message of one shape, so the fuzzer starts past the JSON syntax.
    for (seed, accepted) in seeds
        .iter()
        .zip(replay(&seeds, longwave::fuzzing::parse_message_bytes))
    {
        assert!(accepted >= 1, "{}: no routing accepts it", seed.display());
    }
    replay(
        &files(&fuzz_dir("regressions/message")),
        longwave::fuzzing::parse_message_bytes,
    );
}

//! The dependency rules the README's architecture table states, checked on the source: a module
//! that imports a layer it must not know fails here, naming the file and the line.
//!
//! - `audio` depends on nothing else in the crate (it holds the byte-sink contract too);
//! - `dsp` is pure: `audio` only, and no metrics, tracing, tokio, AWS, files or sockets;
//! - `encode` knows `audio` only and touches no storage;
//! - `io` knows `audio` and `telemetry`; `decode` knows `audio` and `io` and takes every source
//!   from io (it opens no file itself); `telemetry` nothing.

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure, which is what we want

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every line of `module`'s files (comments excluded) that uses a path outside `allowed` crate
/// modules or one of the `forbidden` external paths.
fn violations(module: &str, allowed: &[&str], forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(module);
    violations_in(&root, allowed, forbidden)
}

/// [`violations`] for the files under `root`.
fn violations_in(root: &Path, allowed: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                let after = &rest[at + "crate::".len()..];
                let target: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !allowed.contains(&target.as_str()) {
                    found.push(format!(
                        "{}:{}: uses crate::{target}",
                        file.display(),
                        n + 1
                    ));
                }
                rest = after;
            }
            for bad in forbidden {
                if code.contains(bad) {
                    found.push(format!("{}:{}: uses {bad}", file.display(), n + 1));
                }
            }
        }
    }
    found
}

const IMPURE: &[&str] = &[
    "metrics::",
    "tracing::",
    "tokio",
    "aws_",
    "std::fs",
    "std::net",
];

#[test]
fn dsp_depends_on_audio_only_and_does_no_io() {
    let found = violations("dsp", &["audio", "dsp"], IMPURE);
    assert!(
        found.is_empty(),
        "dsp must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn audio_depends_on_nothing_else() {
    let found = violations("audio", &["audio"], IMPURE);
    assert!(
        found.is_empty(),
        "audio must stay the bottom floor:\n{}",
        found.join("\n")
    );
}

#[test]
fn encode_depends_on_audio_only_and_touches_no_storage() {
    // Encoders write into `audio::ByteSink`; the file and S3 sinks that implement it live in io.
    let found = violations(
        "encode",
        &["audio", "encode"],
        &["aws_", "tokio", "std::fs", "std::net"],
    );
    assert!(
        found.is_empty(),
        "encode must know only audio:\n{}",
        found.join("\n")
    );
}

#[test]
fn io_decode_and_telemetry_keep_to_their_floors() {
    // io knows no DSP, codec or job; decode reads through io's sources; telemetry knows nothing
    // of the rest.
    // decode opens no file itself (io refuses FIFOs and devices before opening).
    let opens_files: &[&str] = &["File::open", "fs::metadata", "OpenOptions", "std::fs"];
    for (module, allowed, forbidden) in [
        ("io", &["audio", "io", "telemetry"][..], &[][..]),
        ("decode", &["audio", "decode", "io"][..], opens_files),
        ("telemetry", &["telemetry"][..], &[][..]),
    ] {
        let found = violations(module, allowed, forbidden);
        assert!(
            found.is_empty(),
            "{module} may use only {allowed:?}:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_checker_sees_a_violation() {
    // What `dsp/chain.rs` did before: telemetry names and the metrics facade.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chain.rs"),
        "use crate::audio::Block; // fine\nuse crate::telemetry::names;\nmetrics::counter!(x);\n",
    )
    .unwrap();
    let found = violations_in(dir.path(), &["audio", "dsp"], IMPURE);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].ends_with(":2: uses crate::telemetry"), "{found:?}");
    assert!(found[1].ends_with(":3: uses metrics::"), "{found:?}");
}

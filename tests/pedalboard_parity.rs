//! Parity with pedalboard itself: its `Reverb` and `Limiter`, rendered by the real library
//! (pinned, installed by `scripts/pedalboard-venv.sh` into a cached venv), against `longwave
//! process` with the same parameters, float32 WAV in and out, compared bit for bit by
//! `tests/pedalboard/parity.py`. The `reverb` stage and the `limiter` stage's `juce` mode are
//! meant to be sample-exact re-implementations (JUCE 6.1.4's float arithmetic in its order, x86's
//! undenormalise step included); this is where that is checked, not assumed.

mod common;

use common::{longwave, s};
use std::path::Path;
use std::process::Command;

/// Runs `command` (named `what` in a failure) and returns its standard output; a non-zero exit
/// fails the test with the command's standard error.
fn stdout_of(command: &mut Command, what: &str) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The venv's python, installing pedalboard first if needed (fails loudly without PyPI).
fn pedalboard_python() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = stdout_of(
        Command::new("bash").arg(root.join("scripts/pedalboard-venv.sh")),
        "scripts/pedalboard-venv.sh (pedalboard is required for this test)",
    );
    String::from_utf8(out).expect("utf-8").trim().to_string()
}

#[test]
fn reverb_and_juce_limiter_are_bit_identical_to_pedalboard() {
    let python = pedalboard_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pedalboard/parity.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = stdout_of(
        Command::new(&python)
            .arg(&script)
            .args(["render", s(dir.path())]),
        "parity.py render",
    );
    let chains: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&rendered).expect("chains as JSON");
    assert_eq!(chains.len(), 6, "every case rendered");
    for (name, chain) in &chains {
        let input = dir.path().join(format!("{name}.in.wav"));
        let output = dir.path().join(format!("{name}.longwave.wav"));
        let chain = chain.to_string();
        let run = longwave(&[
            "process",
            s(&input),
            "--chain",
            &chain,
            "--format",
            "wav",
            "--wav-format",
            "float32",
            "-o",
            s(&output),
            "--quiet",
        ]);
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let compared = Command::new(&python)
        .arg(&script)
        .args(["compare", s(dir.path())])
        .output()
        .expect("run parity.py compare");
    let report = String::from_utf8_lossy(&compared.stdout);
    eprintln!("{report}");
    assert!(
        compared.status.success(),
        "longwave differs from pedalboard:\n{report}{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    assert_eq!(report.matches("bit-identical").count(), 6, "{report}");
}

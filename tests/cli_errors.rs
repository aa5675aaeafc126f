//! Bad input through the real binary: each case must fail with a non-zero exit code, one clear
//! line on stderr naming the file (or field) and the reason, no panic, and no output file.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

use std::path::{Path, PathBuf};
use std::process::Command;

fn longwave() -> Command {
    Command::new(env!("CARGO_BIN_EXE_longwave"))
}

fn pydub_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pydub")
        .join(name)
}

/// Runs `longwave process INPUT -o OUT_DIR/out.wav [extra]` and checks the failure contract.
/// Returns stderr for case-specific assertions.
fn expect_failure(input: &Path, extra: &[&str], must_mention: &[&str]) -> String {
    expect_failure_to(input, "out.wav", extra, must_mention)
}

/// [`expect_failure`] with the output named `output_name`.
fn expect_failure_to(
    input: &Path,
    output_name: &str,
    extra: &[&str],
    must_mention: &[&str],
) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join(output_name);
    let result = longwave()
        .arg("process")
        .arg(input)
        .arg("-o")
        .arg(&output)
        .arg("--quiet")
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).to_string();
    assert!(
        !result.status.success(),
        "expected failure for {input:?}, got success; stderr: {stderr}"
    );
    assert_eq!(result.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(stderr.starts_with("longwave: error: "), "{stderr}");
    for needle in must_mention {
        assert!(
            stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr should mention {needle:?}: {stderr}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    stderr
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A valid 2 s stereo WAV made by the binary itself.
fn generated_wav(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = longwave()
        .args(["generate", "--seconds", "2"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    path
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    expect_failure(&dir.path().join("nope.mp3"), &[], &["nope.mp3"]);
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "empty.mp3", b"");
    expect_failure(&input, &[], &["empty.mp3"]);
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let input = write_file(dir.path(), "noise.bin", &bytes);
    expect_failure(&input, &[], &["noise.bin"]);
}

#[test]
fn text_named_mp3() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(
        dir.path(),
        "notes.mp3",
        "These are meeting notes, not audio.\n"
            .repeat(200)
            .as_bytes(),
    );
    expect_failure(&input, &[], &["notes.mp3"]);
}

#[test]
fn truncated_wav() {
    let dir = tempfile::tempdir().unwrap();
    let full = generated_wav(dir.path(), "full.wav");
    let bytes = std::fs::read(&full).unwrap();
    let input = write_file(dir.path(), "cut.wav", &bytes[..bytes.len() / 2]);
    expect_failure(&input, &[], &["cut.wav", "truncated"]);
}

#[test]
fn unsupported_codec_opus_in_webm() {
    expect_failure(&pydub_fixture("test5.webm"), &[], &["test5.webm"]);
}

#[test]
fn output_folder_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    let result = longwave()
        .arg("process")
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("missing-folder/out.wav"))
        .arg("--quiet")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("missing-folder"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn output_inside_a_file_is_unwritable() {
    // Root can write into read-only folders, so use a path whose parent is a regular file.
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    let blocker = write_file(dir.path(), "blocker", b"x");
    let result = longwave()
        .arg("process")
        .arg(&input)
        .arg("-o")
        .arg(blocker.join("out.wav"))
        .arg("--quiet")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("blocker"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unknown_chain_stage() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    expect_failure(
        &input,
        &["--chain", r#"[{"type":"chorus","depth":1}]"#],
        &["chain[0]", "chorus"],
    );
}

#[test]
fn out_of_range_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    expect_failure(
        &input,
        &["--chain", r#"[{"type":"gain","gain_db":1000}]"#],
        &["chain[0].gain_db", "1000"],
    );
}

#[test]
fn unknown_field_in_stage() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    expect_failure(
        &input,
        &["--chain", r#"[{"type":"gain","gain_bd":1}]"#],
        &["gain_bd"],
    );
}

#[test]
fn chain_file_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    expect_failure(
        &input,
        &["--chain", "@/no/such/chain.json"],
        &["chain.json"],
    );
}

#[test]
fn invalid_mp3_bitrate() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    expect_failure_to(
        &input,
        "out.mp3",
        &["--format", "mp3", "--bitrate", "100"],
        &["100"],
    );
}

#[test]
fn analyze_reports_errors_too() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "empty.wav", b"");
    let result = longwave().arg("analyze").arg(&input).output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("empty.wav"), "{stderr}");
}

#[test]
fn a_split_that_fails_midway_leaves_no_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("long.wav");
    let status = longwave()
        .args(["generate", "--seconds", "40"])
        .arg(&full)
        .output()
        .unwrap();
    assert!(status.status.success());
    let bytes = std::fs::read(&full).unwrap();
    let input = write_file(dir.path(), "cut.wav", &bytes[..bytes.len() * 3 / 4]);
    let pieces = dir.path().join("pieces");
    let result = longwave()
        .arg("process")
        .arg(&input)
        .args(["--preset", "oneshot", "-o"])
        .arg(&pieces)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("truncated"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&pieces)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "pieces left behind: {left:?}");
}

#[test]
fn help_lists_every_preset_and_stages_lists_every_stage() {
    // Before: `process --help` named only `transcode`, and no command listed the stages.
    let help = longwave_cmd(&["process", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for preset in longwave::job::PRESET_NAMES {
        assert!(text.contains(preset), "{preset} missing from:\n{text}");
    }
    assert!(text.contains("longwave stages"), "{text}");
    let stages = longwave_cmd(&["stages"]);
    assert!(stages.status.success());
    let text = String::from_utf8_lossy(&stages.stdout);
    for stage in longwave::job::STAGE_TYPES {
        assert!(text.contains(&format!("{stage} — ")), "{stage}:\n{text}");
    }
    assert!(
        text.contains("gain_db") && text.contains("-120 ..= 48"),
        "{text}"
    );
    let json = longwave_cmd(&["stages", "--json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        parsed.as_array().map(Vec::len),
        Some(longwave::job::STAGE_TYPES.len())
    );
    // An unknown preset is a usage error naming the known ones.
    let bad = longwave_cmd(&["process", "x.wav", "--preset", "9d"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("8d") && stderr.contains("transcode"),
        "{stderr}"
    );
}

fn longwave_cmd(args: &[&str]) -> std::process::Output {
    longwave().args(args).output().unwrap()
}

/// LAME writes no tag into a CBR frame too small for it, and the MP3 would decode longer than
/// its input: such a rate is refused before anything is decoded or written (it used to fail
/// only after the whole file was encoded, "LAME produced no LAME tag").
#[test]
fn a_cbr_rate_whose_frames_cannot_hold_the_lame_tag_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated_wav(dir.path(), "in.wav");
    for threads in ["1", "2"] {
        expect_failure_to(
            &input,
            "out.mp3",
            &["--bitrate", "32", "--encode-threads", threads],
            &[
                "32 kbps at 44100 Hz",
                "too small for the LAME tag",
                "use at least 64 kbps",
            ],
        );
    }
}

//! `longwave process` on S3 objects end to end, against the local S3 server the test command
//! starts (scripts/test.sh → scripts/local-aws.sh, then again on SeaweedFS through
//! scripts/local-seaweedfs.sh). The aws CLI is the independent client: it
//! uploads the inputs and fetches the outputs, so our own client is not the only judge.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

mod common;

use common::aws::{aws_ok, bucket, endpoint, keys, pending_uploads};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn longwave(args: &[&str]) -> Output {
    endpoint(); // refuses to run without the local server
    Command::new(env!("CARGO_BIN_EXE_longwave"))
        .args(args)
        .output()
        .unwrap()
}

fn longwave_ok(args: &[&str]) {
    let out = longwave(args);
    assert!(
        out.status.success(),
        "longwave {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A speech-like recording with pauses (so the one-shot split has pieces), in `ext` made by
/// ffmpeg from a generated WAV; `.m4a` keeps ffmpeg's default layout (index at the end).
fn make_input(dir: &Path, seconds: u32, ext: &str) -> PathBuf {
    let wav = dir.join(format!("speech-{seconds}.wav"));
    if !wav.exists() {
        let out = Command::new(env!("CARGO_BIN_EXE_longwave"))
            .args(["generate", "--seconds", &seconds.to_string()])
            .arg(&wav)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    if ext == "wav" {
        return wav;
    }
    let path = dir.join(format!("speech-{seconds}.{ext}"));
    let codec: &[&str] = match ext {
        "mp3" => &["-c:a", "libmp3lame", "-b:a", "128k"],
        "flac" => &["-c:a", "flac"],
        "m4a" => &["-c:a", "aac", "-b:a", "128k"],
        "ogg" => &["-c:a", "libvorbis", "-q:a", "4"],
        other => panic!("no recipe for {other}"),
    };
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&wav)
        .args(codec)
        .arg(&path)
        .output()
        .expect("ffmpeg is required: run scripts/setup-test-env.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// `longwave task` on `s3://bucket/key` with `PROCESSING_PARAMS` = `params`.
fn task(bucket: &str, key: &str, params: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_longwave"))
        .arg("task")
        .env("S3_BUCKET", bucket)
        .env("S3_KEY", key)
        .env("PROCESSING_PARAMS", params)
        .output()
        .unwrap()
}

fn fetch(bucket: &str, key: &str, dir: &Path) -> PathBuf {
    let path = dir.join(key.replace('/', "_"));
    aws_ok(&[
        "s3",
        "cp",
        &format!("s3://{bucket}/{key}"),
        path.to_str().unwrap(),
    ]);
    path
}

fn frames(path: &Path) -> (u64, usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_longwave"))
        .arg("analyze")
        .arg(path)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["frames"].as_u64().unwrap(),
        v["channels"].as_u64().unwrap() as usize,
    )
}

#[test]
fn every_input_format_through_both_presets_from_s3_to_s3() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("presets");
    for ext in ["wav", "mp3", "flac", "m4a", "ogg"] {
        let input = make_input(dir.path(), 12, ext);
        let key = format!("public/unprocessed/u1/rec-{ext}.{ext}");
        aws_ok(&[
            "s3",
            "cp",
            input.to_str().unwrap(),
            &format!("s3://{b}/{key}"),
        ]);
        let (in_frames, _) = frames(&input);

        // 8D: one MP3 of the input's length, stereo, plus its manifest.
        let out_key = format!("public/processed/u1/{ext}/8d.mp3");
        longwave_ok(&[
            "process",
            &format!("s3://{b}/{key}"),
            "--preset",
            "8d",
            "-o",
            &format!("s3://{b}/{out_key}"),
            "--quiet",
        ]);
        let mp3 = fetch(&b, &out_key, dir.path());
        assert_eq!(frames(&mp3), (in_frames, 2), "8d from {ext}");
        let manifest = fetch(&b, &format!("{out_key}.manifest.json"), dir.path());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
        assert_eq!(manifest["input"]["path"], format!("s3://{b}/{key}"));
        assert_eq!(
            manifest["outputs"][0]["path"],
            format!("s3://{b}/{out_key}")
        );

        // One-shot: pieces under the prefix, each listed in manifest.json and really there.
        let prefix = format!("public/processed/u1/{ext}/pieces/");
        longwave_ok(&[
            "process",
            &format!("s3://{b}/{key}"),
            "--preset",
            "oneshot",
            "-o",
            &format!("s3://{b}/{prefix}"),
            "--quiet",
        ]);
        let manifest = fetch(&b, &format!("{prefix}manifest.json"), dir.path());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
        let outputs = manifest["outputs"].as_array().unwrap();
        assert!(
            outputs.len() >= 2,
            "{ext}: expected pieces, got {outputs:?}"
        );
        let mut listed: Vec<String> = outputs
            .iter()
            .map(|o| o["path"].as_str().unwrap().to_string())
            .collect();
        listed.push(format!("s3://{b}/{prefix}manifest.json"));
        listed.sort();
        let mut stored: Vec<String> = keys(&b, &prefix)
            .into_iter()
            .map(|k| format!("s3://{b}/{k}"))
            .collect();
        stored.sort();
        assert_eq!(listed, stored, "{ext}");
        let first = fetch(
            &b,
            &format!(
                "{prefix}piece_0001.{}",
                outputs[0]["format"].as_str().unwrap()
            ),
            dir.path(),
        );
        assert_eq!(frames(&first).0, outputs[0]["frames"].as_u64().unwrap());
    }
    assert_eq!(pending_uploads(&b), 0);
}

#[test]
fn a_failure_mid_processing_leaves_no_object_and_no_pending_upload() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("failure");
    // 60 s of WAV is ~10 MiB: with 5 MiB parts the output upload is multipart and under way
    // when decoding hits the cut.
    let input = make_input(dir.path(), 60, "wav");
    let bytes = std::fs::read(&input).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    aws_ok(&[
        "s3",
        "cp",
        cut.to_str().unwrap(),
        &format!("s3://{b}/in/cut.wav"),
    ]);
    for (preset, output) in [("transcode", "out/cut.wav"), ("oneshot", "out/pieces/")] {
        let out = longwave(&[
            "process",
            &format!("s3://{b}/in/cut.wav"),
            "--preset",
            preset,
            "--format",
            "wav",
            "--part-size-mib",
            "5",
            "-o",
            &format!("s3://{b}/{output}"),
            "--quiet",
            // Its waveform object is never completed either.
            "--waveform",
            "dat",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{preset}: a truncated input must fail"
        );
        assert!(stderr.contains("truncated"), "{stderr}");
        assert!(stderr.contains(&format!("s3://{b}/in/cut.wav")), "{stderr}");
        assert!(
            keys(&b, "out/").is_empty(),
            "{preset}: objects left: {:?}",
            keys(&b, "out/")
        );
        assert_eq!(
            pending_uploads(&b),
            0,
            "{preset}: pending multipart uploads left"
        );
    }
}

#[test]
fn a_job_spec_gets_waveform_data_beside_its_outputs_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("waveform");
    let input = make_input(dir.path(), 20, "m4a");
    let key = "input/u1/talk.m4a";
    aws_ok(&[
        "s3",
        "cp",
        input.to_str().unwrap(),
        &format!("s3://{b}/{key}"),
    ]);
    let run = |params: &str| task(&b, key, params);
    // Refused before anything is read or written, the field named as written.
    let out = run(r#"{"preset":"oneshot","waveform":{"bits":12}}"#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("PROCESSING_PARAMS.waveform.bits: 12 is not 8 or 16"),
        "{stderr}"
    );
    assert!(keys(&b, "processed/").is_empty());

    let out = run(r#"{"preset":"oneshot","waveform":{"format":"json","bits":8}}"#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = keys(&b, "processed/u1/talk/");
    assert!(
        stored.contains(&"processed/u1/talk/waveform.json".to_string()),
        "{stored:?}"
    );
    let manifest = fetch(&b, "processed/u1/talk/manifest.json", dir.path());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(
        manifest["waveform"]["path"],
        format!("s3://{b}/processed/u1/talk/waveform.json")
    );
    let waveform = fetch(&b, "processed/u1/talk/waveform.json", dir.path());
    let read = common::read_with_waveform_data(&waveform);
    assert_eq!(read.header["bits"], 8);
    assert_eq!(read.header["length"], manifest["waveform"]["length"]);
    let (frames, _) = frames(&input);
    assert_eq!(
        read.header["length"].as_u64().unwrap(),
        frames.div_ceil(256),
        "one pixel per 256 decoded frames"
    );
}

#[test]
fn missing_key_and_missing_bucket_are_clear_errors() {
    let b = bucket("missing");
    let out = longwave(&[
        "process",
        &format!("s3://{b}/nope.wav"),
        "-o",
        &format!("s3://{b}/x.wav"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("s3://{b}/nope.wav")), "{stderr}");
    assert!(stderr.to_lowercase().contains("no such key"), "{stderr}");
    let out = longwave(&[
        "process",
        "s3://lw-no-such-bucket-here/a.wav",
        "-o",
        "/tmp/x.wav",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.to_lowercase().contains("no such bucket"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A missing output bucket is reported before any processing.
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), 5, "wav");
    let out = longwave(&[
        "process",
        input.to_str().unwrap(),
        "-o",
        "s3://lw-no-such-output-bucket/x.wav",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("s3://lw-no-such-output-bucket/x.wav"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("no such bucket"), "{stderr}");
}

#[test]
fn task_mode_with_the_legacy_environment_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("task");
    let input = make_input(dir.path(), 12, "mp3");
    let key = "public/unprocessed/user-7/meeting.mp3";
    aws_ok(&[
        "s3",
        "cp",
        input.to_str().unwrap(),
        &format!("s3://{b}/{key}"),
    ]);
    let run = |params: &str| task(&b, key, params);
    let out = run(
        r#"{"createOneShot":true,"silenceThreshold":-30,"minSilenceDuration":750,
            "autoDetectThreshold":false,"preserveOriginal":true,"outputFormats":["mp3"]}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = keys(&b, "public/processed/user-7/meeting/");
    assert!(stored.contains(&"public/processed/user-7/meeting/manifest.json".to_string()));
    assert!(stored.contains(&"public/processed/user-7/meeting/original/meeting.mp3".to_string()));
    let pieces = stored
        .iter()
        .filter(|k| k.ends_with(".mp3") && k.contains("piece_"))
        .count();
    assert!(pieces >= 2, "{stored:?}");
    // The copy of the original is byte-identical (server-side copy).
    let copy = fetch(
        &b,
        "public/processed/user-7/meeting/original/meeting.mp3",
        dir.path(),
    );
    assert_eq!(std::fs::read(copy).unwrap(), std::fs::read(&input).unwrap());

    // Invalid parameters are rejected before anything is read or written.
    let before = keys(&b, "");
    let out = run(r#"{"minSilenceDuration":20}"#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("PROCESSING_PARAMS.minSilenceDuration"),
        "{stderr}"
    );
    assert!(stderr.contains("50"), "{stderr}");
    assert_eq!(keys(&b, ""), before);

    // A full job spec works too.
    let out = run(r#"{"preset":"8d"}"#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mp3 = fetch(
        &b,
        "public/processed/user-7/meeting/meeting.mp3",
        dir.path(),
    );
    assert_eq!(frames(&mp3).1, 2);
}

#[test]
fn an_upload_failing_mid_stream_ends_the_job_instead_of_hanging_it() {
    // Hole 1, on S3: every part upload after the first is reset at the wire (a proxy in front of
    // the real server), so the sink fails mid-stream while decoding and DSP are well ahead and
    // waiting on the block pools. Before the cancel signal the output loop dropped its blocks
    // and the DSP thread waited for one forever (`process s3://… -o s3://…` with the server
    // killed 1.5 s in was still running after 100 s). Now each run must end within the
    // timeout, with the store's error, no object and no pending multipart upload.
    let proxy = common::fault_proxy::FaultProxy::start(&endpoint());
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("partfail");
    // Three minutes of WAV (~31 MiB): with 5 MiB parts every output below is multipart.
    let input = make_input(dir.path(), 180, "wav");
    aws_ok(&[
        "s3",
        "cp",
        input.to_str().unwrap(),
        &format!("s3://{b}/in/a.wav"),
    ]);
    // Parts 2 and 3 of the single outputs; every piece of the split (each piece is below the
    // part size, so each is one PUT made while the stream goes on).
    for target in ["partNumber=2", "partNumber=3", "out/pieces/"] {
        proxy.add(common::fault_proxy::Fault {
            method: Some("PUT"),
            contains: vec![target.to_owned()],
            action: common::fault_proxy::Action::Reset,
            times: u64::MAX,
        });
    }
    let url = proxy.url();
    let cases: [(&str, &[&str]); 4] = [
        ("out/a.wav", &["--preset", "transcode"]),
        ("out/a.flac", &["--preset", "transcode"]),
        ("out/a.mp3", &["--preset", "8d", "--bitrate", "320"]),
        ("out/pieces/", &["--preset", "oneshot", "--format", "wav"]),
    ];
    for (output, flags) in cases {
        let started = std::time::Instant::now();
        let run = Command::new("timeout")
            .args([
                "-s",
                "KILL",
                "90",
                env!("CARGO_BIN_EXE_longwave"),
                "process",
            ])
            .arg(format!("s3://{b}/in/a.wav"))
            .args(["-o", &format!("s3://{b}/{output}")])
            .args(["--part-size-mib", "5", "--s3-max-retries", "1", "--quiet"])
            .args(flags)
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ENDPOINT_URL_S3", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        // A hang is killed by `timeout` and shows as exit code 137.
        assert_eq!(run.status.code(), Some(1), "{output}: {stderr}");
        assert!(stderr.contains(&format!("s3://{b}/")), "{output}: {stderr}");
        assert!(
            keys(&b, "out/").is_empty(),
            "{output}: objects left: {:?}",
            keys(&b, "out/")
        );
        assert_eq!(pending_uploads(&b), 0, "{output}: pending upload left");
        eprintln!("{output}: failed in {:?}: {stderr}", started.elapsed());
    }
    assert!(proxy.injected() >= 4, "the faults were injected");
}

#[test]
fn analyze_reads_s3_objects_as_it_reads_files() {
    // Before: `analyze s3://…` took the URL for a local path ("file not found").
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("analyze");
    let input = make_input(dir.path(), 8, "m4a");
    aws_ok(&[
        "s3",
        "cp",
        input.to_str().unwrap(),
        &format!("s3://{b}/in/rec.m4a"),
    ]);
    let analyze = |target: &str| -> serde_json::Value {
        let out = longwave(&["analyze", target, "--json", "--silence"]);
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut remote = analyze(&format!("s3://{b}/in/rec.m4a"));
    let mut local = analyze(input.to_str().unwrap());
    assert_eq!(remote["path"], format!("s3://{b}/in/rec.m4a"));
    // Everything but the name agrees, the silence analysis included.
    remote["path"] = serde_json::Value::Null;
    local["path"] = serde_json::Value::Null;
    assert_eq!(remote, local);
    assert!(remote["frames"].as_u64().unwrap() > 0);
    let out = longwave(&["analyze", &format!("s3://{b}/in/missing.m4a")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("missing.m4a") && stderr.contains("no such key"),
        "{stderr}"
    );
    // `plot` reads S3 the same way: the same picture from the object as from the file (of
    // the same name: the title names it).
    let local = dir.path().join("rec.m4a");
    std::fs::copy(&input, &local).unwrap();
    let (remote_png, local_png) = (dir.path().join("remote.png"), dir.path().join("local.png"));
    longwave_ok(&[
        "plot",
        &format!("s3://{b}/in/rec.m4a"),
        "-o",
        remote_png.to_str().unwrap(),
    ]);
    longwave_ok(&[
        "plot",
        local.to_str().unwrap(),
        "-o",
        local_png.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(remote_png).unwrap() == std::fs::read(local_png).unwrap(),
        "the pictures differ"
    );
}

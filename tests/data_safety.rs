//! Never destroy or silently lose the user's audio (issue 11), through the real binary and the
//! runner: no path a run writes may be its input, another output or a device; existing outputs
//! are kept unless `--overwrite`; a failed or interrupted run leaves nothing behind; errors are
//! one line and tell the truth.

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure, which is what we want

mod common;

use common::{longwave, s};

use longwave::audio::StreamSpec;
use longwave::encode::{WavSampleFormat, WaveformSettings};
use longwave::job::{self, LocalJob, Progress, RunnerConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs an external tool (`mknod`, `ffmpeg` …), which must succeed; `why` says what it needs.
fn tool(program: &str, args: &[&str], why: &str) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} cannot start ({why}): {e}"));
    assert!(status.success(), "{program} {args:?} failed ({why})");
}

/// The one-line failure contract with exit `code`; returns stderr.
fn assert_fails(out: &Output, code: i32, must_mention: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("longwave: error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in must_mention {
        assert!(
            stderr.contains(needle),
            "should mention {needle:?}: {stderr}"
        );
    }
    stderr
}

fn speech(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let spec = StreamSpec::new(44_100, 2).unwrap();
    common::write_speech(dir, name, spec, seconds, WavSampleFormat::Pcm16, 4)
}

/// Names in `dir` (hidden temporary files included).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn the_manifest_can_never_replace_the_input_or_the_output() {
    // Before: `--manifest in.wav` replaced the input audio with 1.3 KB of JSON, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 1.0);
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("o.mp3");
    // The same file under another spelling, and through a symbolic link.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let respelled = dir.path().join("sub/../in.wav");
    let link = dir.path().join("link.wav");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for manifest in [&input, &respelled, &link] {
        assert_fails(
            &longwave(&[
                "process",
                s(&input),
                "-o",
                s(&out),
                "--manifest",
                s(manifest),
            ]),
            1,
            &["manifest would overwrite the input"],
        );
        assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
    }
    // --overwrite does not lift it.
    assert_fails(
        &longwave(&[
            "process",
            s(&input),
            "-o",
            s(&out),
            "--overwrite",
            "--manifest",
            s(&input),
        ]),
        1,
        &["manifest would overwrite the input"],
    );
    // The output as manifest.
    assert_fails(
        &longwave(&["process", s(&input), "-o", s(&out), "--manifest", s(&out)]),
        1,
        &["manifest would overwrite the output"],
    );
    // -o through a link to the input.
    assert_fails(
        &longwave(&["process", s(&input), "-o", s(&link), "--format", "wav"]),
        1,
        &["overwrite the input"],
    );
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert_eq!(listing(dir.path()), ["in.wav", "link.wav", "sub"]);
}

#[test]
fn device_nodes_and_pipes_are_never_outputs_or_inputs() {
    // Before (as root): `-o /dev/null` renamed the MP3 over the device node (it became a
    // regular file) and wrote /dev/null.manifest.json; a FIFO with no writer blocked forever in
    // open().
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 1.0);
    // A character device of our own (the null device's numbers), so a regression cannot
    // replace the machine's /dev/null. Tests run as root (CI does); mknod needs it.
    let device = dir.path().join("null");
    tool(
        "mknod",
        &[s(&device), "c", "1", "3"],
        "needs root, as the test suite runs",
    );
    assert_fails(
        &longwave(&["process", s(&input), "-o", s(&device), "--format", "mp3"]),
        1,
        &["null", "character device"],
    );
    assert!(std::fs::metadata(&device)
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!dir.path().join("null.manifest.json").exists());

    let fifo = dir.path().join("pipe.wav");
    tool("mkfifo", &[s(&fifo)], "coreutils");
    let started = Instant::now();
    assert_fails(
        &longwave(&["process", s(&fifo), "-o", s(&dir.path().join("o.wav"))]),
        1,
        &["pipe.wav", "not a regular file", "named pipe"],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_fails(
        &longwave(&["analyze", "/dev/zero"]),
        1,
        &["/dev/zero", "character device"],
    );
    assert_fails(
        &longwave(&["process", s(&input), "-o", s(&fifo), "--format", "wav"]),
        1,
        &["pipe.wav", "named pipe"],
    );
}

#[test]
fn existing_outputs_are_kept_unless_overwrite() {
    // Before: local outputs were replaced silently (S3 outputs never were).
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 1.0);
    let out = dir.path().join("o.wav");
    std::fs::write(&out, b"precious").unwrap();
    assert_fails(
        &longwave(&["process", s(&input), "-o", s(&out)]),
        1,
        &["o.wav", "already exists", "--overwrite"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // An existing manifest is an output too.
    let other = dir.path().join("p.wav");
    let manifest = dir.path().join("m.json");
    std::fs::write(&manifest, b"{}").unwrap();
    assert_fails(
        &longwave(&[
            "process",
            s(&input),
            "-o",
            s(&other),
            "--manifest",
            s(&manifest),
        ]),
        1,
        &["m.json", "already exists"],
    );
    assert!(!other.exists());
    assert_eq!(std::fs::read(&manifest).unwrap(), b"{}");
    // --overwrite replaces both.
    let run = longwave(&[
        "process",
        s(&input),
        "-o",
        s(&out),
        "--overwrite",
        "--quiet",
    ]);
    assert!(run.status.success(), "{run:?}");
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");
    // A pieces folder holding an earlier run's pieces.
    let pieces = dir.path().join("pieces");
    std::fs::create_dir(&pieces).unwrap();
    std::fs::write(pieces.join("piece_0001.wav"), b"old").unwrap();
    assert_fails(
        &longwave(&[
            "process",
            s(&input),
            "--preset",
            "oneshot",
            "-o",
            s(&pieces),
        ]),
        1,
        &["pieces", "piece_0001.wav", "--overwrite"],
    );
    assert_eq!(
        std::fs::read(pieces.join("piece_0001.wav")).unwrap(),
        b"old"
    );
    // A manifest folder that does not exist fails before any work, naming it.
    let run = longwave(&[
        "process",
        s(&input),
        "-o",
        s(&dir.path().join("q.wav")),
        "--manifest",
        s(&dir.path().join("missing/m.json")),
    ]);
    assert_fails(&run, 1, &["missing", "does not exist"]);
    assert!(!dir.path().join("q.wav").exists());
}

/// A progress observer that makes the manifest's path unusable once audio is flowing, i.e.
/// after every up-front check passed: the manifest write fails at the very end of the job.
struct BlockManifest(PathBuf);

impl Progress for BlockManifest {
    fn start(&self, _total_frames: Option<u64>) {}
    fn advance(&self, _frames: u64) {
        if !self.0.exists() {
            std::fs::create_dir_all(&self.0).unwrap();
        }
    }
    fn finish(&self) {}
}

#[test]
fn outputs_are_taken_back_when_the_manifest_cannot_be_written() {
    // Before: the run exited 1 but the complete output stayed under its final name.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 2.0);
    for (preset, output) in [("transcode", "o.flac"), ("oneshot", "pieces")] {
        let manifest = dir.path().join(format!("{preset}.json"));
        let job = LocalJob {
            input: input.clone(),
            output: Some(dir.path().join(output)),
            preset: Some(preset.into()),
            chain: job::preset(preset).unwrap().chain,
            format: None,
            manifest: Some(manifest.clone()),
            overwrite: false,
            // The waveform file is taken back with the outputs.
            waveform: Some(WaveformSettings::default()),
        };
        let err = job::run_local(
            &job,
            &RunnerConfig::default(),
            &BlockManifest(manifest.clone()),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "manifest", "{err}");
        std::fs::remove_dir(&manifest).unwrap();
        let left = listing(dir.path());
        let leftovers: Vec<&String> = left.iter().filter(|n| *n != "in.wav").collect();
        assert!(leftovers.is_empty(), "{preset}: left {leftovers:?}");
        // The pieces folder the job created is gone again.
        assert!(!dir.path().join("pieces").exists());
    }
}

#[test]
fn sigterm_and_sigint_leave_nothing_behind() {
    // Before: SIGTERM during `process` left `.o.mp3.longwave-PID-0.tmp` (3.6 MB after 2 s).
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 600.0);
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let out_dir = dir.path().join(format!("out-{signal}"));
        std::fs::create_dir(&out_dir).unwrap();
        let out = out_dir.join("o.mp3");
        let child = Command::new(env!("CARGO_BIN_EXE_longwave"))
            .args([
                "process",
                s(&input),
                "--preset",
                "8d",
                "-o",
                s(&out),
                "--quiet",
                "--waveform",
                "dat",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the encoder has written something, so the interruption is mid-stream.
        let started = Instant::now();
        while listing(&out_dir).is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "no output");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        tool(
            "kill",
            &[&format!("-{signal}"), &child.id().to_string()],
            "procps",
        );
        let result = child.wait_with_output().unwrap();
        assert_fails(&result, code, &["in.wav", "interrupted by signal"]);
        assert!(listing(&out_dir).is_empty(), "{:?}", listing(&out_dir));
    }
}

#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    // Before: clap's 2–4 line messages.
    for (args, mention) in [
        (
            &["process", "a.wav", "--preset", "8d", "--chain", "[]"][..],
            "--preset",
        ),
        (&["process", "a.wav", "--bitrate", "-1"][..], "-1"),
        (&["process", "a.wav", "--vbr", "256"][..], "256"),
        (
            &["worker", "--queue-url", "q", "--log-format", "yaml"][..],
            "yaml",
        ),
    ] {
        let out = longwave(args);
        let stderr = assert_fails(&out, 2, &[mention]);
        assert!(stderr.contains("--help"), "{stderr}");
    }
}

#[test]
fn chain_errors_name_the_field_and_echo_little() {
    // Before: "expected value at line 1 column 27"; "invalid type: string \"loud\", expected
    // f64" at chain[0]; 1e308 echoed as 309 digits; a 100 MB stage name echoed whole.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 0.5);
    let out = dir.path().join("o.wav");
    let run = |chain: &str| longwave(&["process", s(&input), "-o", s(&out), "--chain", chain]);
    for (chain, mentions) in [
        (
            r#"[{"type":"gain","gain_db":NaN}]"#,
            &["gain_db", "NaN"][..],
        ),
        (r#"[{"type":"gain","gain_db":Infinity}]"#, &["gain_db"][..]),
        (r#"[{"type":"gain","gain_db":1e309}]"#, &["gain_db"][..]),
        (
            r#"[{"type":"gain","gain_db":"loud"}]"#,
            &["chain[0]", "gain_db", "loud"][..],
        ),
        (
            r#"[{"type":"gain","gain_db":1e308}]"#,
            &["chain[0].gain_db = 1e308"][..],
        ),
    ] {
        let stderr = assert_fails(&run(chain), 1, mentions);
        assert!(stderr.len() < 400, "{stderr}");
    }
    let huge = format!(r#"[{{"type":"{}"}}]"#, "a".repeat(1_000_000));
    let file = dir.path().join("chain.json");
    std::fs::write(&file, huge).unwrap();
    let stderr = assert_fails(&run(&format!("@{}", s(&file))), 1, &["chain[0]"]);
    assert!(stderr.len() < 600, "{} bytes echoed", stderr.len());
    assert!(!out.exists());
}

/// Frames ffmpeg decodes from `path`.
fn ffmpeg_frames(path: &Path) -> usize {
    let (channels, samples) = common::ffmpeg_decode_f32(path);
    samples.len() / channels
}

#[test]
fn streaming_wavs_decode_whole_and_say_their_header_lied() {
    // Before: WAVs written to a pipe by ffmpeg or sox (placeholder sizes, complete data) were
    // rejected as "truncated"; a WAV whose data size is 0 decoded to 0.000 s, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 3.0);
    let shell = |cmd: String| {
        let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
    };
    let ffmpeg_pipe = dir.path().join("ffmpeg-pipe.wav");
    shell(format!(
        "ffmpeg -v error -i {} -f wav - > {}",
        s(&input),
        s(&ffmpeg_pipe)
    ));
    let sox_pipe = dir.path().join("sox-pipe.wav");
    // sox writes placeholders when neither the input's length is known nor the output seekable.
    shell(format!(
        "ffmpeg -v error -i {} -f s16le - | sox -t raw -r 44100 -e signed -b 16 -c 2 - -t wav - \
         | cat > {}",
        s(&input),
        s(&sox_pipe)
    ));
    // A recorder killed before it wrote the sizes: data size 0.
    let zeroed = dir.path().join("zero-size.wav");
    let mut bytes = std::fs::read(&input).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap();
    bytes[data + 4..data + 8].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&zeroed, bytes).unwrap();

    let expected = ffmpeg_frames(&input);
    assert_eq!(expected, 3 * 44_100);
    for source in [&ffmpeg_pipe, &sox_pipe, &zeroed] {
        let out = dir.path().join(format!(
            "{}.out.wav",
            source.file_stem().unwrap().to_str().unwrap()
        ));
        let run = longwave(&["process", s(source), "-o", s(&out), "--quiet"]);
        assert!(run.status.success(), "{source:?}: {run:?}");
        assert_eq!(ffmpeg_frames(&out), expected, "{source:?}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{}.manifest.json", s(&out))).unwrap())
                .unwrap();
        assert_eq!(manifest["input"]["frames"], expected, "{source:?}");
        let notes = manifest["input"]["header_notes"].as_array().unwrap();
        assert!(
            notes[0].as_str().unwrap().contains("placeholder"),
            "{notes:?}"
        );
        let report = longwave(&["analyze", s(source), "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
        assert_eq!(report["frames"], expected, "analyze {source:?}");
    }
}

#[test]
fn a_write_failure_mid_stream_ends_the_job_instead_of_hanging_it() {
    // Before: when the output failed mid-stream (disk full), the output side dropped its blocks
    // instead of giving them back and the DSP thread waited for one forever: measured 4 of 20
    // WAV and 9 of 20 FLAC runs never exited. Here the file-size limit (`ulimit -f`, SIGXFSZ
    // ignored so the write fails with EFBIG) makes every write past 100 KiB fail.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 60.0);
    let cases = [
        ("o.wav", &["--preset", "transcode"][..]),
        (
            "o.flac",
            &["--preset", "transcode", "--waveform", "json"][..],
        ),
        ("o.mp3", &["--preset", "8d", "--waveform", "dat"][..]),
        ("pieces", &["--preset", "oneshot", "--waveform", "dat"][..]),
    ];
    for round in 0..3 {
        for (name, flags) in cases {
            let out_dir = dir.path().join(format!("out-{round}-{name}"));
            std::fs::create_dir(&out_dir).unwrap();
            let out = out_dir.join(name);
            let cmd = format!(
                "trap '' XFSZ; ulimit -f 200; exec {} process {} -o {} --quiet {}",
                env!("CARGO_BIN_EXE_longwave"),
                s(&input),
                s(&out),
                flags.join(" ")
            );
            // A hang is killed after 60 s and shows as exit code 137.
            let run = Command::new("timeout")
                .args(["-s", "KILL", "60", "sh", "-c", &cmd])
                .output()
                .unwrap();
            assert_fails(&run, 1, &[name, "File too large"]);
            assert!(
                listing(&out_dir).is_empty(),
                "{name}: left {:?}",
                listing(&out_dir)
            );
        }
    }
}

#[test]
fn aiff_decodes_and_a_corrupt_decoder_config_is_corrupt_not_io() {
    // Before: a valid AIFF was "unsupported audio: codec aac: channels or channel layout is
    // required"; a corrupt AudioSpecificConfig was an "I/O error" (metric error_type=io, which
    // the worker would retry).
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 2.0);
    let aiff = dir.path().join("in.aiff");
    tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            s(&input),
            "-c:a",
            "pcm_s16be",
            s(&aiff),
        ],
        "scripts/setup-test-env.sh installs it",
    );
    let out = dir.path().join("from-aiff.wav");
    let run = longwave(&["process", s(&aiff), "-o", s(&out), "--quiet"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        common::ffmpeg_decode_s32(&out),
        common::ffmpeg_decode_s32(&input)
    );

    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pydub/format_test.m4a");
    let mut bytes = std::fs::read(fixture).unwrap();
    let esds = bytes.windows(4).position(|w| w == b"esds").unwrap();
    // DecoderSpecificInfo: tag 0x05, a (possibly padded) length, then the 2-byte ASC.
    let tag = esds + 12 + bytes[esds + 12..].iter().position(|&b| b == 0x05).unwrap();
    let mut asc = tag + 1;
    while bytes[asc] & 0x80 != 0 {
        asc += 1;
    }
    asc += 1;
    bytes[asc..asc + 2].copy_from_slice(&[0xFF, 0xFF]);
    let broken = dir.path().join("broken-asc.m4a");
    std::fs::write(&broken, bytes).unwrap();
    let stderr = assert_fails(
        &longwave(&["analyze", s(&broken)]),
        1,
        &["broken-asc.m4a", "corrupt audio"],
    );
    assert!(!stderr.contains("I/O error"), "{stderr}");
}

#[test]
fn an_mp3_whose_xing_count_is_impossible_decodes_whole() {
    // Before: a Xing/Info frame count of 0 or 1 gave 0.000 s (or one frame) of a 20 s file, exit
    // 0, where ffmpeg decodes all of it.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 20.0);
    let mp3 = dir.path().join("in.mp3");
    tool(
        "ffmpeg",
        &["-v", "error", "-i", s(&input), "-b:a", "128k", s(&mp3)],
        "scripts/setup-test-env.sh installs it",
    );
    let bytes = std::fs::read(&mp3).unwrap();
    let tag = bytes
        .windows(4)
        .position(|w| w == b"Info" || w == b"Xing")
        .unwrap();
    assert_ne!(bytes[tag + 7] & 1, 0, "ffmpeg's tag carries a frame count");
    for count in [0u32, 1] {
        let mut broken = bytes.clone();
        broken[tag + 8..tag + 12].copy_from_slice(&count.to_be_bytes());
        let path = dir.path().join(format!("xing{count}.mp3"));
        std::fs::write(&path, broken).unwrap();
        let ffmpeg = ffmpeg_frames(&path);
        assert!(ffmpeg > 19 * 44_100, "ffmpeg decodes {ffmpeg}");
        let out = dir.path().join(format!("xing{count}.wav"));
        let run = longwave(&["process", s(&path), "-o", s(&out), "--quiet"]);
        assert!(run.status.success(), "{run:?}");
        let ours = ffmpeg_frames(&out);
        // Equal up to the encoder delay and padding ffmpeg trims and we keep (< 2 frames).
        assert!(
            ours.abs_diff(ffmpeg) < 2 * 1152,
            "ours {ours}, ffmpeg {ffmpeg}"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{}.manifest.json", s(&out))).unwrap())
                .unwrap();
        let note = manifest["input"]["header_notes"][0].as_str().unwrap();
        assert!(note.contains(&format!("{count} frames")), "{note}");
    }
}

/// Ogg's page checksum, written out here independently of the code under test (CRC-32,
/// polynomial 0x04C11DB7, not reflected, initial value 0, checksum field zeroed).
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for (i, &byte) in page.iter().enumerate() {
        let byte = if (22..26).contains(&i) { 0 } else { byte };
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[test]
fn an_ogg_whose_last_granule_is_before_the_previous_page_decodes_whole() {
    // Before: a last page whose granule position lies before the previous page's made every
    // packet of that page trimmed away: 19.4 s of a 20 s Vorbis file, exit 0, where ffmpeg
    // decodes all 20 s.
    let dir = tempfile::tempdir().unwrap();
    let input = speech(dir.path(), "in.wav", 20.0);
    let ogg = dir.path().join("in.ogg");
    tool(
        "ffmpeg",
        &["-v", "error", "-i", s(&input), "-c:a", "libvorbis", s(&ogg)],
        "scripts/setup-test-env.sh installs it",
    );
    let mut bytes = std::fs::read(&ogg).unwrap();
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"OggS")
        .map(|(i, _)| i)
        .collect();
    let (previous, last) = (starts[starts.len() - 2], starts[starts.len() - 1]);
    let granule = |at: usize| i64::from_le_bytes(bytes[at + 6..at + 14].try_into().unwrap());
    let honest = granule(last);
    let lying = granule(previous) - 13_230; // 0.3 s before the previous page's end
    bytes[last + 6..last + 14].copy_from_slice(&lying.to_le_bytes());
    let crc = ogg_crc(&bytes[last..]);
    bytes[last + 22..last + 26].copy_from_slice(&crc.to_le_bytes());
    let broken = dir.path().join("lying-granule.ogg");
    std::fs::write(&broken, &bytes).unwrap();

    let ffmpeg = ffmpeg_frames(&broken);
    assert!(ffmpeg as i64 >= honest, "ffmpeg {ffmpeg}, granule {honest}");
    let out = dir.path().join("out.wav");
    let run = longwave(&["process", s(&broken), "-o", s(&out), "--quiet"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(ffmpeg_frames(&out), ffmpeg);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.manifest.json", s(&out))).unwrap())
            .unwrap();
    let note = manifest["input"]["header_notes"][0].as_str().unwrap();
    assert!(note.contains(&format!("({lying})")), "{note}");

    // The honest file keeps its end trim: exactly what its last granule position says.
    let out = dir.path().join("honest.wav");
    let run = longwave(&["process", s(&ogg), "-o", s(&out), "--quiet"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(ffmpeg_frames(&out) as i64, honest);
}

#[test]
fn an_mkv_that_lost_data_to_corruption_is_not_a_silent_success() {
    // Before: 100 flipped bytes in a 20 s Vorbis MKV made the reader resynchronise over whole
    // block groups without an error: exit 0 with 14.7 s of 20 s and a few "bad packets"
    // reported. Matroska states its duration; a stream ending clearly short of it is truncated.
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("in.mkv");
    tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=20:sample_rate=44100",
            "-ac",
            "2",
            "-c:a",
            "libvorbis",
            s(&mkv),
        ],
        "scripts/setup-test-env.sh installs it",
    );
    let whole = dir.path().join("whole.wav");
    let run = longwave(&["process", s(&mkv), "-o", s(&whole), "--quiet"]);
    assert!(run.status.success(), "the intact file decodes: {run:?}");
    let announced = 20 * 44_100;
    assert!(ffmpeg_frames(&whole) >= announced);

    // 100 bytes flipped after the first cluster (the codec setup stays intact), at positions
    // from a fixed LCG: this pattern loses about 5 s without a decode error.
    let mut bytes = std::fs::read(&mkv).unwrap();
    let first_cluster = bytes
        .windows(4)
        .position(|w| w == [0x1F, 0x43, 0xB6, 0x75])
        .unwrap();
    let mut state = 2u64;
    for _ in 0..100 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let at = first_cluster + (state >> 33) as usize % (bytes.len() - first_cluster);
        bytes[at] ^= 0xFF;
    }
    let broken = dir.path().join("flipped.mkv");
    std::fs::write(&broken, &bytes).unwrap();
    let out = dir.path().join("flipped.wav");
    let run = longwave(&["process", s(&broken), "-o", s(&out), "--quiet"]);
    assert_fails(&run, 1, &["flipped.mkv", "truncated", "882132 frames"]);
    assert!(!out.exists(), "no output for a failed run");
    let report = longwave(&["analyze", s(&broken)]);
    assert_fails(&report, 1, &["flipped.mkv", "truncated"]);
}

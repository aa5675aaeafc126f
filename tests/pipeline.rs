//! The whole pipeline on real files: chunk-size invariance, exact output lengths checked by two
//! independent decoders (ours and ffmpeg's), and the manifest.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

mod common;

use longwave::audio::{Block, StreamSpec};
use longwave::decode::{AudioDecoder, DecodeOptions};
use longwave::encode::{Mp3Rate, OutputFormat, WavSampleFormat};
use longwave::job::{self, LocalJob, NoProgress, RunnerConfig, StageSpec};
use std::path::{Path, PathBuf};
use std::process::Command;

fn make_input(dir: &Path, name: &str, spec: StreamSpec, seconds: f64) -> PathBuf {
    common::write_speech(dir, name, spec, seconds, WavSampleFormat::Pcm16, 3)
}

fn run(
    input: &Path,
    output: &Path,
    chain: Vec<StageSpec>,
    format: OutputFormat,
    block_frames: usize,
) -> job::Manifest {
    let job = LocalJob {
        input: input.to_path_buf(),
        output: Some(output.to_path_buf()),
        preset: None,
        chain,
        format: Some(format),
        manifest: None,
        overwrite: false,
        waveform: None,
    };
    let config = RunnerConfig {
        block_frames,
        ..RunnerConfig::default()
    };
    job::run_local(&job, &config, &NoProgress).unwrap()
}

fn decoded_frames(path: &Path) -> u64 {
    let mut decoder = AudioDecoder::open_file(path, DecodeOptions::default()).unwrap();
    let mut block = Block::new(decoder.info().spec.channels, 4096);
    while decoder.fill(&mut block).unwrap() > 0 {}
    decoder.frames_decoded()
}

/// ffmpeg's own decode of the first audio stream, counted in frames: an independent judge of
/// the header totals (WAV sizes, FLAC STREAMINFO, the MP3 LAME tag's delay and padding).
fn ffmpeg_frames(path: &Path) -> u64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg is required: run scripts/setup-test-env.sh");
    assert!(
        out.status.success(),
        "ffmpeg failed on {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.len() as u64 / 4
}

#[test]
fn chunk_size_does_not_change_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = make_input(dir.path(), "in.wav", spec, 3.0);
    let chain = vec![StageSpec::Gain { gain_db: -4.5 }];
    let float_wav = OutputFormat::Wav {
        sample_format: WavSampleFormat::Float32,
    };
    let reference_path = dir.path().join("whole.wav");
    run(&input, &reference_path, chain.clone(), float_wav, 200_000);
    let reference = std::fs::read(&reference_path).unwrap();
    for block_frames in [1, 17, 4096, 48_000] {
        let path = dir.path().join(format!("blocks-{block_frames}.wav"));
        let manifest = run(&input, &path, chain.clone(), float_wav, block_frames);
        assert_eq!(manifest.outputs[0].frames, 132_300);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes == reference,
            "output with {block_frames}-frame blocks differs from the whole-signal output"
        );
    }
}

#[test]
fn every_output_format_has_the_exact_length_for_both_decoders() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = make_input(dir.path(), "in.wav", spec, 2.5);
    let expected = 110_250;
    let formats = [
        (
            "pcm16.wav",
            OutputFormat::Wav {
                sample_format: WavSampleFormat::Pcm16,
            },
        ),
        (
            "pcm24.wav",
            OutputFormat::Wav {
                sample_format: WavSampleFormat::Pcm24,
            },
        ),
        (
            "f32.wav",
            OutputFormat::Wav {
                sample_format: WavSampleFormat::Float32,
            },
        ),
        (
            "s16.flac",
            OutputFormat::Flac {
                bits_per_sample: 16,
            },
        ),
        (
            "s24.flac",
            OutputFormat::Flac {
                bits_per_sample: 24,
            },
        ),
        (
            "cbr.mp3",
            OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 128 },
            },
        ),
        (
            "vbr.mp3",
            OutputFormat::Mp3 {
                rate: Mp3Rate::Vbr { quality: 2 },
            },
        ),
    ];
    for (name, format) in formats {
        let path = dir.path().join(name);
        let manifest = run(
            &input,
            &path,
            vec![StageSpec::Gain { gain_db: 0.0 }],
            format,
            4096,
        );
        assert_eq!(manifest.outputs[0].frames, expected, "{name}: manifest");
        assert_eq!(decoded_frames(&path), expected, "{name}: symphonia");
        assert_eq!(ffmpeg_frames(&path), expected, "{name}: ffmpeg");
    }
}

#[test]
fn manifest_records_input_chain_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(48_000, 1).unwrap();
    let input = make_input(dir.path(), "voice.wav", spec, 1.5);
    let output = dir.path().join("voice.flac");
    run(
        &input,
        &output,
        vec![StageSpec::Gain { gain_db: -2.0 }],
        OutputFormat::Flac {
            bits_per_sample: 16,
        },
        4096,
    );
    let manifest_path = dir.path().join("voice.flac.manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["input"]["sample_rate"], 48_000);
    assert_eq!(manifest["input"]["channels"], 1);
    assert_eq!(manifest["input"]["duration_s"], 1.5);
    assert_eq!(manifest["chain"][0]["type"], "gain");
    assert_eq!(manifest["chain"][0]["gain_db"], -2.0);
    let out = &manifest["outputs"][0];
    assert_eq!(out["format"], "flac");
    assert_eq!(out["duration_s"], 1.5);
    assert!(out["path"].as_str().unwrap().ends_with("voice.flac"));
    assert!(manifest["wall_time_s"].as_f64().unwrap() > 0.0);
    assert!(manifest["realtime_factor"].as_f64().unwrap() > 0.0);
}

#[test]
fn gain_changes_the_level_by_the_requested_amount() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = make_input(dir.path(), "in.wav", spec, 2.0);
    let output = dir.path().join("out.wav");
    run(
        &input,
        &output,
        vec![StageSpec::Gain { gain_db: -6.0 }],
        OutputFormat::Wav {
            sample_format: WavSampleFormat::Float32,
        },
        4096,
    );
    let before = job::analyze_file(&input, DecodeOptions::default()).unwrap();
    let after = job::analyze_file(&output, DecodeOptions::default()).unwrap();
    let drop = before.rms_dbfs.unwrap() - after.rms_dbfs.unwrap();
    assert!((drop - 6.0).abs() < 0.01, "RMS dropped by {drop} dB");
}

/// Records every progress report.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, u64)>>);

impl job::Progress for Recorder {
    fn start(&self, _total_frames: Option<u64>) {
        self.0.lock().unwrap().push(("start".into(), 0));
    }
    fn advance(&self, frames: u64) {
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.1 += frames;
        }
    }
    fn finish(&self) {}
    fn phase(&self, name: &str, _total_frames: Option<u64>) {
        self.0.lock().unwrap().push((name.into(), 0));
    }
}

#[test]
fn progress_moves_through_each_analysis_pass_then_the_processing() {
    // Before: the bar stood still during analysis passes (a 3-hour loudness job showed 0 % for
    // its first half), and nothing said which pass was running.
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = make_input(dir.path(), "in.wav", spec, 3.0);
    let chain = job::parse_chain(
        r#"[{"type":"normalize","lufs":-16},{"type":"silence","threshold_db":"auto","action":"detect"}]"#,
    )
    .unwrap();
    let job = LocalJob {
        input: input.clone(),
        output: Some(dir.path().join("out.wav")),
        preset: None,
        chain,
        format: None,
        manifest: None,
        overwrite: false,
        waveform: None,
    };
    let recorder = Recorder::default();
    job::run_local(&job, &RunnerConfig::default(), &recorder).unwrap();
    let frames = 3 * 44_100;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            ("start".to_owned(), 0),
            ("analysis 1/2: normalize".to_owned(), frames),
            ("analysis 2/2: silence".to_owned(), frames),
            ("processing".to_owned(), frames),
        ]
    );
    // A job without analysis reports no phase: one run of frames after start.
    let plain = LocalJob {
        chain: Vec::new(),
        output: Some(dir.path().join("plain.wav")),
        ..job
    };
    let recorder = Recorder::default();
    job::run_local(&plain, &RunnerConfig::default(), &recorder).unwrap();
    assert_eq!(*recorder.0.lock().unwrap(), [("start".to_owned(), frames)]);
}

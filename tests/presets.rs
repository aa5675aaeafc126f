//! The presets end to end: `8d` (pan → reverb → gain → limiter → MP3) and, through the same
//! runner, the invariance of every preset's output to the block size at 44.1, 48 and 96 kHz.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

mod common;

use longwave::audio::{Block, StreamSpec};
use longwave::encode::{create_encoder, OutputFormat, WavSampleFormat};
use longwave::io::FileSink;
use longwave::job::{self, LocalJob, NoProgress, RunnerConfig};
use longwave::synth::SpeechLike;
use std::path::{Path, PathBuf};

fn make_input(dir: &Path, name: &str, spec: StreamSpec, seconds: f64) -> PathBuf {
    common::write_speech(dir, name, spec, seconds, WavSampleFormat::Float32, 11)
}

fn run_preset(
    input: &Path,
    output: &Path,
    preset: &str,
    format: Option<OutputFormat>,
    block_frames: usize,
) -> job::Manifest {
    let preset = job::preset(preset).unwrap();
    let job = LocalJob {
        input: input.to_path_buf(),
        output: Some(output.to_path_buf()),
        preset: Some(preset.name.to_string()),
        chain: preset.chain,
        format: format.or(preset.format),
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

/// All files of a finished job (a single output, or every piece), in name order, as bytes.
fn output_bytes(manifest: &job::Manifest) -> Vec<Vec<u8>> {
    manifest
        .outputs
        .iter()
        .map(|o| std::fs::read(&o.path).unwrap())
        .collect()
}

/// Runs a preset through the real runner (threads, channels, encoder) with several block sizes
/// and checks the files are byte-identical. The exhaustive whole-vs-blocks check at every rate is
/// [`assert_chain_invariant`], which needs no threads and so can afford 1-frame blocks.
fn assert_block_size_invariant(preset: &str, format: Option<OutputFormat>, ext: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 2).unwrap();
    let input = make_input(dir.path(), "in.wav", spec, 3.0);
    let whole = dir.path().join(format!("whole{ext}"));
    let reference = run_preset(&input, &whole, preset, format, 400_000);
    let reference_bytes = output_bytes(&reference);
    assert!(!reference_bytes.is_empty(), "{preset} made no output");
    for block_frames in [17, 4096, 48_000] {
        let out = dir.path().join(format!("b{block_frames}{ext}"));
        let manifest = run_preset(&input, &out, preset, format, block_frames);
        assert_eq!(
            manifest.outputs.len(),
            reference.outputs.len(),
            "{preset}, {block_frames}-frame blocks: number of outputs"
        );
        for (a, b) in manifest.outputs.iter().zip(&reference.outputs) {
            assert_eq!(a.frames, b.frames, "{preset} {block_frames}: length");
            assert_eq!(a.start_ms, b.start_ms);
            assert_eq!(a.end_ms, b.end_ms);
        }
        assert!(
            output_bytes(&manifest) == reference_bytes,
            "{preset}: output with {block_frames}-frame blocks differs from whole"
        );
    }
}

/// Processes `signal` (planar) through a fresh chain of `stages` in blocks of `block` frames,
/// including the flush; returns the output (planar) and the events.
fn run_chain(
    stages: &[longwave::job::StageSpec],
    spec: StreamSpec,
    signal: &[Vec<f32>],
    block: usize,
) -> (Vec<Vec<f32>>, Vec<longwave::dsp::StageEvent>) {
    let build = longwave::job::BuildContext {
        source_bits: Some(16),
    };
    let mut chain = longwave::dsp::Chain::new(stages.iter().map(|s| s.build(&build)).collect());
    let out_spec = chain.prepare(spec, block).unwrap();
    let mut out = vec![Vec::new(); out_spec.channels];
    let mut events = Vec::new();
    let frames = signal[0].len();
    let mut collect = |b: &Block, chain_events: &[longwave::dsp::StageEvent]| {
        for (ch, samples) in b.channels().enumerate() {
            out[ch].extend_from_slice(samples);
        }
        events.extend_from_slice(chain_events);
    };
    // Analysis passes first, as the runner does.
    for index in chain.analysis_stages() {
        let mut start = 0;
        while start < frames {
            let end = (start + block).min(frames);
            let channels: Vec<&[f32]> = signal.iter().map(|c| &c[start..end]).collect();
            chain.observe(index, &Block::from_channels(&channels));
            start = end;
        }
        chain.end_observation(index);
    }
    let mut start = 0;
    while start < frames {
        let end = (start + block).min(frames);
        let channels: Vec<&[f32]> = signal.iter().map(|c| &c[start..end]).collect();
        let input = Block::from_channels(&channels);
        let output = chain.process(&input).clone();
        collect(&output, chain.events());
        start = end;
    }
    while let Some(output) = chain.flush().cloned() {
        collect(&output, chain.events());
    }
    (out, events)
}

/// The invariant every chain is tested for: whole signal vs blocks of 1, 17, 4096 and 48000
/// frames, at 44.1, 48 and 96 kHz: identical samples, identical length, identical pieces.
/// Returns the number of events (piece boundaries) the whole signal produced at 44.1 kHz.
fn assert_chain_invariant(stages: &[longwave::job::StageSpec], seconds: f64) -> usize {
    let mut events_at_44k = 0;
    for rate in [44_100, 48_000, 96_000] {
        let spec = StreamSpec::new(rate, 2).unwrap();
        let mut generator = SpeechLike::new(spec, seconds, 5);
        let total = generator.total_frames() as usize;
        let mut block = Block::new(2, total);
        generator.fill(&mut block);
        let signal: Vec<Vec<f32>> = block.channels().map(<[f32]>::to_vec).collect();
        let (whole, whole_events) = run_chain(stages, spec, &signal, total);
        assert!(!whole[0].is_empty(), "no output at {rate} Hz");
        if rate == 44_100 {
            events_at_44k = whole_events.len();
        }
        for size in [1, 17, 4096, 48_000] {
            let (out, events) = run_chain(stages, spec, &signal, size);
            assert_eq!(
                out[0].len(),
                whole[0].len(),
                "{rate} Hz, {size}-frame blocks: length"
            );
            assert!(
                out == whole,
                "{rate} Hz, {size}-frame blocks: samples differ"
            );
            assert_eq!(
                events, whole_events,
                "{rate} Hz, {size}-frame blocks: pieces"
            );
        }
    }
    events_at_44k
}

#[test]
fn preset_chains_are_block_size_invariant_at_every_rate() {
    assert_eq!(
        assert_chain_invariant(&job::preset("8d").unwrap().chain, 3.0),
        0
    );
    let events = assert_chain_invariant(&job::preset("oneshot").unwrap().chain, 6.0);
    assert!(
        events >= 4,
        "expected at least two pieces, got {events} events"
    );
}

#[test]
fn every_stage_with_non_default_options_is_block_size_invariant() {
    let chain = job::parse_chain(
        r#"[{"type":"normalize","lufs":-18},
            {"type":"pan8d","mode":"binaural","period_s":2},
            {"type":"reverb","room_size":0.8,"tail":true},
            {"type":"gain","gain_db":-1},
            {"type":"limiter","mode":"juce","threshold_db":-6}]"#,
    )
    .unwrap();
    assert_eq!(assert_chain_invariant(&chain, 2.0), 0);
    let chain = job::parse_chain(
        r#"[{"type":"silence","mode":"accurate","threshold_db":"auto","action":"trim"},
            {"type":"limiter","threshold_db":-3,"lookahead_ms":2}]"#,
    )
    .unwrap();
    assert_eq!(assert_chain_invariant(&chain, 4.0), 0);
}

#[test]
fn preset_8d_is_block_size_invariant() {
    let float_wav = OutputFormat::Wav {
        sample_format: WavSampleFormat::Float32,
    };
    assert_block_size_invariant("8d", Some(float_wav), ".wav");
}

#[test]
fn preset_8d_mp3_is_block_size_invariant() {
    // LAME's own framing must not depend on how we feed it either.
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 1).unwrap();
    let input = make_input(dir.path(), "mono.wav", spec, 3.0);
    let a = run_preset(&input, &dir.path().join("a.mp3"), "8d", None, 17);
    let b = run_preset(&input, &dir.path().join("b.mp3"), "8d", None, 4096);
    assert_eq!(output_bytes(&a), output_bytes(&b));
}

#[test]
fn preset_8d_makes_stereo_mp3_of_the_input_length_under_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 1).unwrap();
    let input = make_input(dir.path(), "mono.wav", spec, 4.0);
    let manifest = run_preset(&input, &dir.path().join("out.mp3"), "8d", None, 4096);
    let out = &manifest.outputs[0];
    assert_eq!(out.format, "mp3");
    assert_eq!(out.channels, 2, "mono input becomes stereo");
    assert_eq!(out.frames, 176_400, "reverb tail is cut like pedalboard's");
    let analysis = job::analyze_file(
        Path::new(&out.path),
        longwave::decode::DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(analysis.frames, 176_400);
    // The limiter guarantees −2 dBTP before encoding; MP3 coding adds a little overshoot.
    assert!(analysis.peak_dbfs.unwrap() < -1.0, "{analysis:?}");

    // Before encoding the ceiling holds to the limiter's tolerance.
    let float_wav = OutputFormat::Wav {
        sample_format: WavSampleFormat::Float32,
    };
    let manifest = run_preset(
        &input,
        &dir.path().join("out.wav"),
        "8d",
        Some(float_wav),
        4096,
    );
    let analysis = job::analyze_file(
        Path::new(&manifest.outputs[0].path),
        longwave::decode::DecodeOptions::default(),
    )
    .unwrap();
    assert!(analysis.peak_dbfs.unwrap() <= -2.0 + 1e-3, "{analysis:?}");
}

#[test]
fn preset_oneshot_is_block_size_invariant() {
    let float_wav = OutputFormat::Wav {
        sample_format: WavSampleFormat::Float32,
    };
    assert_block_size_invariant("oneshot", Some(float_wav), "");
}

fn pydub_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pydub")
        .join(name)
}

#[test]
fn preset_oneshot_matches_pydub_on_its_own_test_file() {
    // pydub split_on_silence(test4.wav, 750, -30, keep_silence=50): detect_nonsilent =
    // [[3205, 6236], [7572, 8000]] → pieces [3155, 6286] and [7522, 8000] ms, 3131 + 478 ms
    // (dsp-reference §1.7, measured with pydub 0.25.1).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pieces");
    let manifest = run_preset(&pydub_fixture("test4.wav"), &out, "oneshot", None, 4096);
    let ranges: Vec<_> = manifest
        .outputs
        .iter()
        .map(|o| (o.start_ms.unwrap(), o.end_ms.unwrap()))
        .collect();
    assert_eq!(ranges, vec![(3155, 6286), (7522, 8000)]);
    let frames: Vec<u64> = manifest.outputs.iter().map(|o| o.frames).collect();
    // pydub slices frames int(ms * 48.0): 151440..301728 and 361056..384000.
    assert_eq!(frames, vec![150_288, 22_944]);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["manifest.json", "piece_0001.wav", "piece_0002.wav"]);

    // The pieces are the source's own samples, bit for bit (16-bit WAV in, 16-bit WAV out).
    let source = std::fs::read(pydub_fixture("test4.wav")).unwrap();
    let piece = std::fs::read(out.join("piece_0002.wav")).unwrap();
    let source_data = &source[source.len() - 22_944 * 2..];
    assert_eq!(&piece[piece.len() - 22_944 * 2..], source_data);

    // Re-running into the same folder (with --overwrite: it holds pieces) with fewer pieces
    // removes the stale ones.
    let preset = job::preset("oneshot").unwrap();
    let mut chain = preset.chain;
    if let longwave::job::StageSpec::Silence(params) = &mut chain[0] {
        params.min_silence_ms = 2000.0;
        params.threshold_db = longwave::dsp::Threshold::Db(-50.0);
    }
    let job = LocalJob {
        input: pydub_fixture("test4.wav"),
        output: Some(out.clone()),
        preset: None,
        chain,
        format: None,
        manifest: None,
        overwrite: true,
        waveform: None,
    };
    let manifest = job::run_local(&job, &RunnerConfig::default(), &NoProgress).unwrap();
    assert_eq!(
        manifest.outputs.len(),
        1,
        "test4 at -50 dB / 2000 ms is one piece"
    );
    assert!(!out.join("piece_0002.wav").exists());
}

#[test]
fn all_silent_input_makes_no_pieces_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new(44_100, 1).unwrap();
    let input = dir.path().join("silence.wav");
    let sink = FileSink::create(&input).unwrap();
    let format = OutputFormat::Wav {
        sample_format: WavSampleFormat::Pcm16,
    };
    let mut encoder = create_encoder(format, spec, Box::new(sink)).unwrap();
    let mut block = Block::new(1, 44_100);
    block.set_frames(44_100);
    block.fill_silence();
    for _ in 0..3 {
        encoder.write(&block).unwrap();
    }
    encoder.finish().unwrap();
    let chain = job::parse_chain(r#"[{"type":"silence","threshold_db":"auto"}]"#).unwrap();
    let job = LocalJob {
        input,
        output: Some(dir.path().join("pieces")),
        preset: None,
        chain,
        format: None,
        manifest: None,
        overwrite: false,
        waveform: None,
    };
    let manifest = job::run_local(&job, &RunnerConfig::default(), &NoProgress).unwrap();
    assert!(manifest.outputs.is_empty());
    let report = &manifest.stage_reports[0].report;
    assert_eq!(report["all_silent"], true, "{report}");
    assert!(dir.path().join("pieces/manifest.json").exists());
}

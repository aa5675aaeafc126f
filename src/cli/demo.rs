//! `longwave demo` and `longwave generate`: a synthetic example input and the main jobs run on
//! it, so a newcomer sees the whole pipeline work with no input file and no AWS account.

use anyhow::{Context, Result};
use longwave::audio::{Block, StreamSpec};
use longwave::encode::{
    create_encoder, Mp3Rate, OutputFormat, WavSampleFormat, WaveformFormat, WaveformSettings,
};
use longwave::io::FileSink;
use longwave::job::{self, LocalJob, NoProgress, RunnerConfig};
use longwave::synth::SpeechLike;
use std::path::Path;

/// Writes `seconds` of the speech-like test signal to `path`, in the format its extension names
/// (`.wav` 16-bit, `.flac` 16-bit, `.mp3` 192 kbit/s); returns the frames written.
pub fn write_speech_like(
    path: &Path,
    spec: StreamSpec,
    seconds: f64,
    seed: u64,
    format: Option<OutputFormat>,
) -> Result<u64> {
    let format = match format {
        Some(format) => format,
        None => match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("wav") => OutputFormat::Wav {
                sample_format: WavSampleFormat::Pcm16,
            },
            Some("flac") => OutputFormat::Flac {
                bits_per_sample: 16,
            },
            Some("mp3") => OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 192 },
            },
            _ => anyhow::bail!(
                "cannot tell the format of {}: use a .wav, .flac or .mp3 name",
                path.display()
            ),
        },
    };
    let mut generator = SpeechLike::new(spec, seconds, seed);
    let sink = FileSink::create(path)?;
    let mut encoder = create_encoder(format, spec, Box::new(sink))?;
    let mut block = Block::new(spec.channels, 8192);
    while generator.fill(&mut block) > 0 {
        encoder.write(&block)?;
    }
    let written = encoder.finish()?;
    Ok(written.frames)
}

/// Generates `dir/input.wav` and runs the example jobs on it, printing every file written.
pub fn run(dir: &Path, seconds: f64) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create demo folder {}", dir.display()))?;
    let input = dir.join("input.wav");
    let spec = StreamSpec::new(44_100, 2).map_err(anyhow::Error::msg)?;
    let frames = write_speech_like(&input, spec, seconds, 8, None)?;
    println!(
        "generated {} ({:.1} s speech-like recording with pauses, stereo 44.1 kHz)",
        input.display(),
        spec.seconds(frames)
    );

    let config = RunnerConfig::default();
    // The two jobs people run today: one-shot pieces split on silence (pydub semantics, pieces
    // in the input's format) and the 8D mix (pan → reverb → gain → limiter → MP3 192k).
    let jobs = [("oneshot", dir.join("oneshot")), ("8d", dir.join("8d.mp3"))];
    for (name, output) in jobs {
        let preset = job::preset(name)?;
        let job = LocalJob {
            input: input.clone(),
            output: Some(output),
            preset: Some(preset.name.to_string()),
            chain: preset.chain,
            format: preset.format,
            manifest: None,
            overwrite: true,
            // The one-shot job also writes the recording's waveform (audiowaveform JSON).
            waveform: (name == "oneshot").then(|| WaveformSettings {
                format: WaveformFormat::Json,
                ..WaveformSettings::default()
            }),
        };
        let manifest = job::run_local(&job, &config, &NoProgress)?;
        println!(
            "preset {name}: {} output(s) in {:.2} s ({:.0}x realtime)",
            manifest.outputs.len(),
            manifest.wall_time_s,
            manifest.realtime_factor
        );
        for output in &manifest.outputs {
            let range = match (output.start_ms, output.end_ms) {
                (Some(start), Some(end)) => format!(", source {start}..{end} ms"),
                _ => String::new(),
            };
            println!(
                "  wrote {} ({}, {:.3} s{range})",
                output.path, output.format, output.duration_s
            );
        }
        if name == "oneshot" {
            // The picture of the split: waveform, silent ranges, threshold and pieces.
            let picture = dir.join("oneshot.png");
            let size = super::plot::DEFAULT_SIZE;
            let mut data = job::plot_data(
                &longwave::io::ObjectRef::File(input.clone()),
                None,
                config.decode,
                None,
                super::plot::columns_for(size.0),
            )?;
            data.silence = super::silence_marks(&manifest);
            super::plot::write(&data, &picture, size, true)?;
            println!("  wrote {} (the split, drawn)", picture.display());
        }
        if let Some(waveform) = &manifest.waveform {
            println!(
                "  wrote {} (waveform, {} pixels of {} frames)",
                waveform.path, waveform.length, waveform.settings.samples_per_pixel
            );
        }
    }
    Ok(())
}

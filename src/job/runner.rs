//! The local runner: decode thread → chain on the rayon pool → encoder, joined by bounded
//! channels, with outputs committed only when everything succeeded.
//!
//! Memory per job is fixed by [`RunnerConfig`]: two pools of `queue_blocks + 2` blocks of
//! `block_frames` frames (decoded and processed), the chain's own buffers and stage state, and
//! the encoder's buffers. Nothing depends on the input's length.

use super::manifest::{InputSummary, Manifest, OutputEntry, StageReport};
use super::outputs::{Outputs, Published};
use super::spec::BuildContext;
use super::{JobError, StageSpec};
use crate::audio::{Block, BlockPool, StreamSpec};
use crate::decode::{AudioDecoder, DecodeError, DecodeOptions, SourceInfo};
use crate::dsp::{Chain, StageEvent};
use crate::encode::{FileSink, Mp3Rate, OutputFormat, WavSampleFormat};
use crossbeam_channel::bounded;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Tuning of the pipeline; none of it changes the output.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Frames per block between decode, chain and encoder.
    pub block_frames: usize,
    /// Capacity of each channel between the threads, in blocks (backpressure bound).
    pub queue_blocks: usize,
    /// Decoder options (bad-packet tolerance).
    pub decode: DecodeOptions,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            block_frames: 4096,
            queue_blocks: 4,
            decode: DecodeOptions::default(),
        }
    }
}

impl RunnerConfig {
    /// Upper bound of the sample buffers this config makes a job hold, in bytes, for a stream of
    /// `channels` in and `channels` out (stage state and codec buffers come on top).
    pub fn block_memory_bytes(&self, channels_in: usize, channels_out: usize) -> usize {
        let per_frame = (channels_in + channels_out) * std::mem::size_of::<f32>();
        // Two pools plus the chain's intermediate blocks (one per stage, bounded by a few).
        (2 * (self.queue_blocks + 2) + 4) * self.block_frames * per_frame
    }
}

/// Where a job's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// One output file.
    File(PathBuf),
    /// A folder receiving several outputs (`piece_0001.<ext>` …) and `manifest.json`.
    Folder(PathBuf),
}

/// A job on local files, as the CLI builds it.
#[derive(Debug, Clone)]
pub struct LocalJob {
    /// The input file.
    pub input: PathBuf,
    /// The output file or folder; `None` = next to the input, named `<stem>.longwave.<ext>`.
    pub output: Option<PathBuf>,
    /// The preset's name, if the chain came from one (recorded in the manifest).
    pub preset: Option<String>,
    /// The validated chain.
    pub chain: Vec<StageSpec>,
    /// The output format; `None` = from the output's extension, else the input's format family.
    pub format: Option<OutputFormat>,
    /// Where to write the manifest; `None` = next to the output.
    pub manifest: Option<PathBuf>,
}

/// Receives progress reports; implemented by the CLI's progress bar.
pub trait Progress: Sync {
    /// The job started; `total_frames` is the input length when known.
    fn start(&self, total_frames: Option<u64>);
    /// `frames` more input frames were decoded.
    fn advance(&self, frames: u64);
    /// The job ended (successfully or not).
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total_frames: Option<u64>) {}
    fn advance(&self, _frames: u64) {}
    fn finish(&self) {}
}

/// Runs `job` to completion: every output is committed and the manifest written, or an error is
/// returned and nothing appears under the final names.
///
/// Stages that need statistics of the whole input (loudness normalisation, an automatic silence
/// threshold) get an analysis pass first: the input is decoded once more per such stage, still
/// in constant memory.
///
/// # Errors
/// Any [`JobError`]: unreadable or corrupt input, a stage that cannot handle the stream, an
/// unwritable output, a failed manifest write.
pub fn run_local(
    job: &LocalJob,
    config: &RunnerConfig,
    pool: &rayon::ThreadPool,
    progress: &dyn Progress,
) -> Result<Manifest, JobError> {
    let started = Instant::now();
    let decoder = AudioDecoder::open_file(&job.input, config.decode)?;
    let info = decoder.info().clone();

    let build = BuildContext {
        source_bits: info.bits_per_sample,
    };
    let mut chain = Chain::new(job.chain.iter().map(|s| s.build(&build)).collect());
    let out_spec = chain.prepare(info.spec, config.block_frames)?;
    let format = match job.format {
        Some(format) => format,
        None => format_for(job.output.as_deref(), &info),
    };
    let splits = job.chain.iter().any(StageSpec::splits);
    let (outputs, target) = if splits {
        let dir = resolve_output_dir(job);
        let outputs = Outputs::pieces(dir.clone(), format, out_spec, info.spec.sample_rate)?;
        (outputs, OutputTarget::Folder(dir))
    } else {
        let path = resolve_output_path(job, format)?;
        let outputs = Outputs::single(path.clone(), format, out_spec)?;
        (outputs, OutputTarget::File(path))
    };

    progress.start(info.frames);
    let result = analyse(&mut chain, job, config, pool).and_then(|()| {
        stream(
            decoder, &mut chain, outputs, config, pool, progress, &job.input,
        )
    });
    progress.finish();
    let (decoded_frames, skipped_packets, entries, published) = result?;

    let wall_time_s = started.elapsed().as_secs_f64();
    let duration_s = info.spec.seconds(decoded_frames);
    let manifest = Manifest {
        longwave_version: env!("CARGO_PKG_VERSION"),
        input: InputSummary {
            path: job.input.display().to_string(),
            container: info.container.clone(),
            codec: info.codec.clone(),
            duration_s,
            frames: decoded_frames,
            sample_rate: info.spec.sample_rate,
            channels: info.spec.channels,
        },
        preset: job.preset.clone(),
        chain: job.chain.clone(),
        stage_reports: chain
            .reports()
            .into_iter()
            .enumerate()
            .filter_map(|(index, (stage, report))| {
                report.map(|report| StageReport {
                    index,
                    stage,
                    report,
                })
            })
            .collect(),
        outputs: entries,
        skipped_packets,
        block_frames: config.block_frames,
        wall_time_s,
        realtime_factor: if wall_time_s > 0.0 {
            duration_s / wall_time_s
        } else {
            0.0
        },
    };
    published.publish()?;
    let manifest_path = job
        .manifest
        .clone()
        .unwrap_or_else(|| manifest_path_for(&target));
    write_manifest(&manifest_path, &manifest)?;
    Ok(manifest)
}

/// Runs one analysis pass per stage that wants one, in chain order, each on a fresh decode of
/// the input (the stages before it already configured by their own passes).
fn analyse(
    chain: &mut Chain,
    job: &LocalJob,
    config: &RunnerConfig,
    pool: &rayon::ThreadPool,
) -> Result<(), JobError> {
    for index in chain.analysis_stages() {
        let mut decoder = AudioDecoder::open_file(&job.input, config.decode)?;
        let mut block = Block::new(decoder.info().spec.channels, config.block_frames.max(1));
        while decoder.fill(&mut block)? > 0 {
            pool.install(|| chain.observe(index, &block));
        }
        chain.end_observation(index);
    }
    Ok(())
}

/// What the DSP thread sends the output side, in stream order.
enum Processed {
    /// A piece boundary, sent before the block that contains its frame.
    Event(StageEvent),
    /// Processed audio.
    Audio(Block),
}

/// Outcome of streaming: frames decoded, packets skipped, manifest entries, pieces to publish.
type Streamed = (u64, u64, Vec<OutputEntry>, Published);

/// Decodes, processes and encodes on three threads. The outputs are finished (committed) only
/// when every thread succeeded; on any failure they are dropped, which aborts them.
fn stream(
    mut decoder: AudioDecoder,
    chain: &mut Chain,
    mut outputs: Outputs,
    config: &RunnerConfig,
    pool: &rayon::ThreadPool,
    progress: &dyn Progress,
    input: &Path,
) -> Result<Streamed, JobError> {
    let block_frames = config.block_frames.max(1);
    let queue = config.queue_blocks.max(1);
    let in_channels = decoder.info().spec.channels;
    let out_channels = chain
        .output_spec()
        .map_or(in_channels, |spec: StreamSpec| spec.channels);
    let decoded_pool = BlockPool::new(queue + 2, in_channels, block_frames);
    let processed_pool = BlockPool::new(queue + 2, out_channels, block_frames);
    let (decoded_tx, decoded_rx) = bounded::<Block>(queue);
    // Events ride the same channel as audio so their order is kept; a few extra slots keep a
    // burst of events from stalling the pipeline.
    let (processed_tx, processed_rx) = bounded::<Processed>(queue + 8);

    std::thread::scope(|scope| {
        let decode_thread = {
            let pool = decoded_pool.clone();
            std::thread::Builder::new()
                .name("longwave-decode".into())
                .spawn_scoped(scope, move || -> Result<(u64, u64), DecodeError> {
                    while let Some(mut block) = pool.take() {
                        let frames = decoder.fill(&mut block)?;
                        if frames == 0 {
                            break;
                        }
                        progress.advance(frames as u64);
                        if decoded_tx.send(block).is_err() {
                            break; // downstream failed; its error is reported instead
                        }
                    }
                    Ok((decoder.frames_decoded(), decoder.skipped_packets()))
                })
        };
        let dsp_thread = {
            let decoded_pool = decoded_pool.clone();
            let processed_pool = processed_pool.clone();
            std::thread::Builder::new()
                .name("longwave-dsp".into())
                .spawn_scoped(scope, move || {
                    // Sends the chain's events, then its output block; false when the output
                    // side has gone away (it failed and reports its own error).
                    let forward = |chain: &Chain, out: Block| -> bool {
                        for &event in chain.events() {
                            if processed_tx.send(Processed::Event(event)).is_err() {
                                return false;
                            }
                        }
                        if out.is_empty() {
                            processed_pool.give(out);
                            true
                        } else {
                            processed_tx.send(Processed::Audio(out)).is_ok()
                        }
                    };
                    for block in decoded_rx {
                        let Some(mut out) = processed_pool.take() else {
                            return;
                        };
                        pool.install(|| out.copy_from(chain.process(&block)));
                        decoded_pool.give(block);
                        if !forward(chain, out) {
                            return;
                        }
                    }
                    loop {
                        let Some(mut out) = processed_pool.take() else {
                            return;
                        };
                        let more = pool.install(|| match chain.flush() {
                            Some(flushed) => {
                                out.copy_from(flushed);
                                true
                            }
                            None => false,
                        });
                        if !more || !forward(chain, out) {
                            return;
                        }
                    }
                })
        };
        let (decode_thread, dsp_thread) = match (decode_thread, dsp_thread) {
            (Ok(d), Ok(p)) => (d, p),
            (Err(e), _) | (_, Err(e)) => {
                return Err(JobError::Panic {
                    input: input.to_path_buf(),
                    what: format!("cannot start pipeline thread: {e}"),
                })
            }
        };

        let mut output_result = Ok(());
        for message in &processed_rx {
            match message {
                Processed::Event(event) => outputs.event(event),
                Processed::Audio(block) => {
                    if let Err(e) = outputs.write(&block) {
                        output_result = Err(e);
                        break;
                    }
                    processed_pool.give(block);
                }
            }
        }
        drop(processed_rx); // unblocks the DSP thread if the output side failed

        let decoded = decode_thread.join().map_err(|panic| JobError::Panic {
            input: input.to_path_buf(),
            what: format!("decoder thread: {}", panic_message(&panic)),
        })?;
        dsp_thread.join().map_err(|panic| JobError::Panic {
            input: input.to_path_buf(),
            what: format!("dsp thread: {}", panic_message(&panic)),
        })?;
        let (frames, skipped) = decoded?;
        output_result?;
        let (entries, published) = outputs.finish()?;
        Ok((frames, skipped, entries, published))
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// The output format a job gets when none was asked for: the output file's extension if it names
/// one, otherwise the input's format family (MP3 → MP3, FLAC → FLAC, WAV → WAV, others → FLAC).
pub fn format_for(output: Option<&Path>, input: &SourceInfo) -> OutputFormat {
    let from_ext = output
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let family = match from_ext.as_deref() {
        Some(ext @ ("wav" | "flac" | "mp3")) => ext.to_string(),
        _ => match (input.container.as_str(), input.codec.as_str()) {
            (_, "mp3") => "mp3".to_string(),
            ("wav", _) => "wav".to_string(),
            _ => "flac".to_string(),
        },
    };
    let bits = input.bits_per_sample.unwrap_or(16);
    match family.as_str() {
        "mp3" => OutputFormat::Mp3 {
            rate: Mp3Rate::default(),
        },
        "wav" => OutputFormat::Wav {
            sample_format: if input.codec.starts_with("pcm_f") {
                WavSampleFormat::Float32
            } else if bits > 16 {
                WavSampleFormat::Pcm24
            } else {
                WavSampleFormat::Pcm16
            },
        },
        _ => OutputFormat::Flac {
            bits_per_sample: if bits > 16 { 24 } else { 16 },
        },
    }
}

/// Where the single output of `job` goes: the given file, `<dir>/<stem>.<ext>` for an existing
/// folder, or `<stem>.longwave.<ext>` next to the input.
fn resolve_output_path(job: &LocalJob, format: OutputFormat) -> Result<PathBuf, JobError> {
    let stem = job
        .input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    let path = match &job.output {
        Some(path) if path.is_dir() => path.join(format!("{stem}.{}", format.extension())),
        Some(path) => path.clone(),
        None => job
            .input
            .with_file_name(format!("{stem}.longwave.{}", format.extension())),
    };
    let same = match (path.canonicalize(), job.input.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(JobError::Output {
            path,
            reason: "the output would overwrite the input; choose another name with -o".into(),
        });
    }
    Ok(path)
}

/// The folder that receives the pieces of a split: the given output, or `<stem>_pieces` next to
/// the input.
fn resolve_output_dir(job: &LocalJob) -> PathBuf {
    match &job.output {
        Some(path) => path.clone(),
        None => {
            let stem = job
                .input
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".to_string());
            job.input.with_file_name(format!("{stem}_pieces"))
        }
    }
}

/// The default manifest location for an output target: `manifest.json` inside a folder,
/// `<file>.manifest.json` next to a file.
pub fn manifest_path_for(target: &OutputTarget) -> PathBuf {
    match target {
        OutputTarget::Folder(dir) => dir.join("manifest.json"),
        OutputTarget::File(file) => {
            let mut name = file.file_name().unwrap_or_default().to_os_string();
            name.push(".manifest.json");
            file.with_file_name(name)
        }
    }
}

/// Writes the manifest atomically (temporary name, then rename).
fn write_manifest(path: &Path, manifest: &Manifest) -> Result<(), JobError> {
    let manifest_error = |reason: String| JobError::Manifest {
        path: path.to_path_buf(),
        reason,
    };
    let mut json =
        serde_json::to_vec_pretty(manifest).map_err(|e| manifest_error(e.to_string()))?;
    json.push(b'\n');
    let mut sink = FileSink::create(path).map_err(|e| manifest_error(e.to_string()))?;
    use crate::encode::ByteSink;
    sink.write_all(&json)
        .map_err(|e| manifest_error(e.to_string()))?;
    Box::new(sink)
        .commit()
        .map_err(|e| manifest_error(e.to_string()))?;
    Ok(())
}

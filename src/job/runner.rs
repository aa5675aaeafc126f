//! The local runner: decode thread → DSP thread (the chain) → encoder, joined by bounded
//! channels, with outputs committed only when everything succeeded.
//!
//! Each job runs on its own three threads; the worker bounds how many jobs run at once (its
//! slots). The chain once ran on a shared rayon pool, one `install` per block: that hand-off
//! (a futex wake per block and the pool's idle threads spinning on `sched_yield` between blocks)
//! cost 10 % of an 8D job's CPU (4.98 vs 4.45 CPU s on a 5-minute MP3, mean of 4 runs each) and
//! bought nothing, since the chain is sequential and the decoder and encoder threads already
//! ran outside the pool.
//!
//! Memory per job is fixed by [`RunnerConfig`]: two pools of `queue_blocks + 2` blocks of
//! `block_frames` frames (decoded and processed), the chain's own buffers and stage state, and
//! the encoder's buffers. Nothing depends on the input's length.

use super::manifest::{InputSummary, Manifest, OutputEntry, StageReport};
use super::memory::{self, JobMemory, MemoryPart};
use super::outputs::{FinishedWaveform, Outputs, Published, WaveformOutput};
use super::spec::BuildContext;
use super::{identity, targets};
use super::{JobError, StageSpec};
use crate::audio::{Block, BlockPool, SampleRepairs, StreamSpec};
use crate::decode::{AudioDecoder, DecodeError, DecodeOptions, SourceInfo};
use crate::dsp::{Chain, StageEvent};
use crate::encode::{
    mp3_output_sample_rate, Mp3Rate, OutputFormat, ParallelMp3Encoder, WavSampleFormat,
    WaveformSettings,
};
use crate::io::{self, move_into_place, ObjectRef, ObjectVersion, S3Context, S3Settings};
use crate::telemetry::{self, names, AudioSecondsCounter, StageMeter};
use crossbeam_channel::bounded;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Memory one job may use, in bytes (`--max-job-memory-mib`); `None` = the default budget
    /// of a worker slot ([`RunnerConfig::job_budget`]). A job whose computed bound exceeds it is
    /// refused before any audio is decoded.
    pub job_budget_bytes: Option<u64>,
    /// Threads that encode a job's single MP3 output (`--encode-threads`): above 1, the
    /// stream is encoded in parallel segments ([`crate::encode::ParallelMp3Encoder`]). Pieces
    /// of a split, other formats and MP3 that LAME resamples always use one thread.
    pub encode_threads: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            block_frames: 4096,
            queue_blocks: 4,
            decode: DecodeOptions::default(),
            job_budget_bytes: None,
            encode_threads: 1,
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

    /// The memory budget of one job with these settings: the one set, or the default of a
    /// worker slot ([`memory::default_job_budget`] for an 8-channel stream at the default
    /// block size: a larger `--block-frames` must fit the budget, not grow it).
    pub fn job_budget(&self, s3: &S3Settings) -> u64 {
        self.job_budget_bytes.unwrap_or_else(|| {
            let blocks = RunnerConfig::default().block_memory_bytes(8, 8) as u64;
            memory::default_job_budget(s3, blocks) + self.parallel_encoder_bytes(2, 48_000)
        })
    }

    /// Memory of the parallel MP3 encoder these settings would start for a `channels` stream
    /// at `sample_rate` (0 with one encode thread).
    fn parallel_encoder_bytes(&self, channels: usize, sample_rate: u32) -> u64 {
        if self.encode_threads > 1 {
            ParallelMp3Encoder::memory_bytes(self.encode_threads, channels, sample_rate)
        } else {
            0
        }
    }

    /// The encode threads a single output in `format` of `spec` gets (see
    /// [`RunnerConfig::encode_threads`]).
    fn threads_for(&self, format: OutputFormat, spec: StreamSpec) -> usize {
        match format {
            OutputFormat::Mp3 { .. }
                if mp3_output_sample_rate(spec.sample_rate) == spec.sample_rate =>
            {
                self.encode_threads.max(1)
            }
            _ => 1,
        }
    }

    /// The bound of a job on `chain` (prepared for a stream of `channels_in` → `channels_out`),
    /// reading from S3 when `s3_input`, writing to S3 when `s3_output`, against its budget.
    fn job_memory(
        &self,
        chain: &Chain,
        specs: &[StageSpec],
        (channels_in, channels_out): (usize, usize),
        s3: &S3Settings,
        (s3_input, s3_output): (bool, bool),
        (encoder_bytes, waveform_bytes): (u64, u64),
    ) -> JobMemory {
        let f32_bytes = std::mem::size_of::<f32>() as u64;
        let block = |channels: usize| self.block_frames as u64 * channels as u64 * f32_bytes;
        let pool_blocks = (self.queue_blocks + 2) as u64;
        let analysis = !chain.analysis_stages().is_empty();
        let reader = (1 + s3.read_ahead as u64) * s3.read_chunk as u64;
        let sink = (2 + s3.parts_in_flight as u64) * s3.part_size as u64;
        let mut parts = vec![
            MemoryPart {
                what: "block pools (--block-frames × channels)".into(),
                bytes: pool_blocks * (block(channels_in) + block(channels_out))
                    + if analysis { block(channels_in) } else { 0 },
            },
            MemoryPart {
                what: "chain blocks (--block-frames × stages)".into(),
                bytes: chain.buffer_bytes() as u64,
            },
            MemoryPart {
                what: "decoder and encoder state".into(),
                bytes: memory::CODEC_BYTES * if analysis { 2 } else { 1 },
            },
            MemoryPart {
                what: "S3 read buffers (read chunk × read-ahead)".into(),
                bytes: if s3_input {
                    reader * if analysis { 2 } else { 1 }
                } else {
                    0
                },
            },
            MemoryPart {
                what: "S3 upload buffers (--part-size-mib × parts in flight)".into(),
                bytes: if s3_output { sink } else { 0 },
            },
            MemoryPart {
                what: "parallel MP3 encoder segments (--encode-threads)".into(),
                bytes: encoder_bytes,
            },
            MemoryPart {
                what: "waveform data (buffer, and its upload to S3)".into(),
                bytes: waveform_bytes,
            },
        ];
        for (index, (bytes, spec)) in chain.stage_state_bytes().into_iter().zip(specs).enumerate() {
            parts.push(MemoryPart {
                what: format!("chain[{index}] ({})", spec.memory_parameters()),
                bytes: bytes as u64,
            });
        }
        JobMemory::new(parts, self.job_budget(s3))
    }
}

/// Where a job's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// One output file or object.
    File(ObjectRef),
    /// A folder or S3 prefix receiving several outputs (`piece_0001.<ext>` …) and
    /// `manifest.json`.
    Folder(ObjectRef),
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
    /// Replace existing local outputs and manifest (`--overwrite`); otherwise a job refuses
    /// to start when one exists.
    pub overwrite: bool,
    /// Waveform data of the input to write beside the outputs (`--waveform`); `None` = none.
    pub waveform: Option<WaveformSettings>,
}

/// A job on files or S3 objects (`s3://bucket/key`); [`LocalJob`] is the same with paths.
#[derive(Debug, Clone)]
pub struct Job {
    /// The input object.
    pub input: ObjectRef,
    /// The output object, or folder/prefix for several outputs; `None` = next to the input,
    /// named `<stem>.longwave.<ext>` (or `<stem>_pieces/` for a split).
    pub output: Option<ObjectRef>,
    /// The preset's name, if the chain came from one (recorded in the manifest).
    pub preset: Option<String>,
    /// The validated chain.
    pub chain: Vec<StageSpec>,
    /// The output format; `None` = from the output's extension, else the input's format family.
    pub format: Option<OutputFormat>,
    /// Where to write the manifest; `None` = next to the output(s).
    pub manifest: Option<ObjectRef>,
    /// Replace existing local outputs and manifest; without it a job refuses to start when one
    /// exists (and refuses to replace one that appears while it runs). S3 outputs are never
    /// replaced (`If-None-Match: *`), whatever this says, except this job's own from an earlier
    /// attempt (see `identity.rs`).
    pub overwrite: bool,
    /// The S3 input version to read, as the event that triggered the job reported it (default:
    /// the current object). Every pass of the job reads the same version.
    pub input_version: ObjectVersion,
    /// Waveform data of the decoded input (before any stage) to write beside the outputs, at
    /// [`waveform_path_for`] the target; `None` = none.
    pub waveform: Option<WaveformSettings>,
}

impl From<&LocalJob> for Job {
    fn from(job: &LocalJob) -> Self {
        Job {
            input: ObjectRef::File(job.input.clone()),
            output: job.output.clone().map(ObjectRef::File),
            preset: job.preset.clone(),
            chain: job.chain.clone(),
            format: job.format,
            manifest: job.manifest.clone().map(ObjectRef::File),
            overwrite: job.overwrite,
            input_version: ObjectVersion::default(),
            waveform: job.waveform,
        }
    }
}

/// Receives progress reports; implemented by the CLI's progress bar.
pub trait Progress: Sync {
    /// The job started; `total_frames` is the input length when known.
    fn start(&self, total_frames: Option<u64>);
    /// `frames` more input frames were decoded.
    fn advance(&self, frames: u64);
    /// The job ended (successfully or not).
    fn finish(&self);
    /// A pass over the input begins: `name` says which (`analysis 1/2: normalize`, then
    /// `processing`); the frame count starts again from 0. Jobs without an analysis pass report
    /// no phase.
    fn phase(&self, _name: &str, _total_frames: Option<u64>) {}
    /// Polled once per block: `true` asks the job to stop as soon as possible, without
    /// committing anything (it then fails with [`JobError::Cancelled`]). The worker uses it at
    /// the end of its shutdown grace period.
    fn should_stop(&self) -> bool {
        false
    }
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total_frames: Option<u64>) {}
    fn advance(&self, _frames: u64) {}
    fn finish(&self) {}
}

/// Runs a job on local files: [`run`] without S3.
///
/// # Errors
/// As [`run`].
pub fn run_local(
    job: &LocalJob,
    config: &RunnerConfig,
    progress: &dyn Progress,
) -> Result<Manifest, JobError> {
    run(&Job::from(job), None, config, progress)
}

/// Runs `job` to completion: every output is committed and the manifest written, or an error is
/// returned and nothing appears under the final names. `s3` is needed when an input or output
/// is an S3 object.
///
/// Stages that need statistics of the whole input (loudness normalisation, an automatic silence
/// threshold) get an analysis pass first: the input is decoded once more per such stage, still
/// in constant memory.
///
/// # Errors
/// Any [`JobError`]: unreadable or corrupt input, a stage that cannot handle the stream, an
/// unwritable output, a failed manifest write.
pub fn run(
    job: &Job,
    s3: Option<&S3Context>,
    config: &RunnerConfig,
    progress: &dyn Progress,
) -> Result<Manifest, JobError> {
    run_located(job, s3, config, progress).map(|(manifest, _)| manifest)
}

/// [`run`], also returning where the manifest was written (a status record points to it).
///
/// # Errors
/// As [`run`].
pub fn run_located(
    job: &Job,
    s3: Option<&S3Context>,
    config: &RunnerConfig,
    progress: &dyn Progress,
) -> Result<(Manifest, ObjectRef), JobError> {
    let started = Instant::now();
    for target in job.output.iter().chain(job.manifest.iter()) {
        if let (ObjectRef::S3 { bucket, .. }, Some(s3)) = (target, s3) {
            s3.check_bucket_exists(bucket, &target.to_string())?;
        }
    }
    let (decoder, etag) = open_decoder(&job.input, s3, config.decode, &job.input_version)?;
    // Analysis passes reopen the input: they must see the version this pass sees.
    let pinned = ObjectVersion {
        version_id: job.input_version.version_id.clone(),
        etag: etag.clone(),
    };
    let info = decoder.info().clone();

    let build = BuildContext {
        source_bits: info.bits_per_sample,
    };
    let mut chain = Chain::new(job.chain.iter().map(|s| s.build(&build)).collect());
    let out_spec = chain.prepare(info.spec, config.block_frames)?;
    let format = match job.format {
        Some(format) => format,
        None => format_for(job.output.as_ref().and_then(ObjectRef::extension), &info),
    }
    .fitted(out_spec);
    let splits = job.chain.iter().any(StageSpec::splits);
    let encode_threads = if splits {
        1
    } else {
        config.threads_for(format, out_spec)
    };
    let encoder_bytes = RunnerConfig {
        encode_threads,
        ..RunnerConfig::default()
    }
    .parallel_encoder_bytes(out_spec.channels, out_spec.sample_rate);
    // Only the header has been read: a job that cannot fit its budget stops here.
    let default_settings = S3Settings::default();
    let memory = config.job_memory(
        &chain,
        &job.chain,
        (info.spec.channels, out_spec.channels),
        s3.map_or(&default_settings, S3Context::settings),
        (
            job.input.is_s3(),
            // Without an output the result goes next to the input: to S3 for an S3 input.
            job.output
                .as_ref()
                .map_or(job.input.is_s3(), ObjectRef::is_s3),
        ),
        (
            encoder_bytes,
            job.waveform.map_or(0, |settings| {
                waveform_memory_bytes(
                    settings,
                    info.spec.channels,
                    info.frames,
                    job.output
                        .as_ref()
                        .map_or(job.input.is_s3(), ObjectRef::is_s3)
                        .then(|| s3.map_or(&default_settings, S3Context::settings)),
                )
            }),
        ),
    );
    if !memory.fits() {
        return Err(JobError::OverBudget {
            input: job.input.to_string(),
            reason: memory.refusal(),
        });
    }
    let format_error = |target: &ObjectRef, source| JobError::Format {
        path: target.to_string(),
        source,
    };
    let target = if splits {
        let dir = resolve_output_dir(job);
        format.check(out_spec).map_err(|e| format_error(&dir, e))?;
        OutputTarget::Folder(dir)
    } else {
        let path = resolve_output_path(job, format)?;
        format.check(out_spec).map_err(|e| format_error(&path, e))?;
        OutputTarget::File(path)
    };
    let manifest_path = job
        .manifest
        .clone()
        .unwrap_or_else(|| manifest_path_for(&target));
    let waveform_path = job
        .waveform
        .map(|settings| waveform_path_for(&target, settings));
    check_local_targets(job, &target, &manifest_path, waveform_path.as_ref())?;
    let input_version = match &job.input {
        ObjectRef::File(path) => identity::local_version(path),
        ObjectRef::S3 { .. } => etag.clone(),
    };
    let (OutputTarget::Folder(target_ref) | OutputTarget::File(target_ref)) = &target;
    let job_id = identity::job_id(
        &job.input,
        input_version.as_deref(),
        &job.chain,
        format,
        target_ref,
        job.waveform.as_ref(),
    );
    let outputs = match &target {
        OutputTarget::Folder(dir) => Outputs::pieces(
            dir.clone(),
            s3,
            format,
            out_spec,
            info.spec.sample_rate,
            job.overwrite,
            &job_id,
        )?,
        OutputTarget::File(path) => Outputs::single(
            path.clone(),
            s3,
            (format, encode_threads),
            out_spec,
            job.overwrite,
            &job_id,
        )?,
    };

    let waveform = match (job.waveform, waveform_path) {
        (Some(settings), Some(path)) => Some(WaveformOutput::create(
            path, s3, settings, info.spec, &job_id,
        )?),
        _ => None,
    };

    progress.start(info.frames);
    let result = analyse(&mut chain, job, &pinned, s3, config, progress).and_then(|()| {
        if !chain.analysis_stages().is_empty() {
            progress.phase("processing", info.frames);
        }
        stream(
            decoder,
            &mut chain,
            (outputs, waveform),
            config,
            progress,
            &job.input,
        )
    });
    progress.finish();
    let (decoded, entries, mut published, waveform) = result?;
    let waveform_entry = waveform.as_ref().map(|w| w.entry.clone());
    if let Some(waveform) = waveform {
        published.add_waveform(waveform);
    }
    let DecodeTotals {
        frames: decoded_frames,
        skipped_packets,
        repairs,
    } = decoded;
    if skipped_packets > 0 {
        let codec = telemetry::codec_label(&info.codec);
        metrics::counter!(names::DECODE_SKIPPED_PACKETS_TOTAL, "codec" => codec)
            .increment(skipped_packets);
    }
    record_repairs(repairs, &entries);
    if let ObjectRef::File(path) = &job.input {
        // S3 reads are counted per chunk by the reader; a local file once, by its size.
        if let Ok(meta) = std::fs::metadata(path) {
            telemetry::add_read_bytes(meta.len());
        }
    }

    let wall_time_s = started.elapsed().as_secs_f64();
    let duration_s = info.spec.seconds(decoded_frames);
    let manifest = Manifest {
        longwave_version: env!("CARGO_PKG_VERSION"),
        job_identity: job_id,
        input: InputSummary {
            path: job.input.to_string(),
            container: info.container.clone(),
            codec: info.codec.clone(),
            duration_s,
            frames: decoded_frames,
            sample_rate: info.spec.sample_rate,
            channels: info.spec.channels,
            repaired_samples: repairs,
            header_notes: info.header_notes.clone(),
            etag,
        },
        preset: job.preset.clone(),
        chain: job.chain.clone(),
        memory,
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
        waveform: waveform_entry,
        skipped_packets,
        block_frames: config.block_frames,
        wall_time_s,
        realtime_factor: if wall_time_s > 0.0 {
            duration_s / wall_time_s
        } else {
            0.0
        },
    };
    let committed = published.publish()?;
    if let Err(e) = write_manifest(&manifest_path, s3, &manifest, job.overwrite) {
        // Outputs without their manifest are not a finished job: take them back, so a failed
        // run leaves nothing behind (and a retry is not refused as "already exists").
        committed.retract();
        return Err(e);
    }
    Ok((manifest, manifest_path))
}

/// Opens the decoder for `input`: local files directly (their errors say "file not found",
/// "file is empty"), S3 objects through a ranged, seekable reader. Returns the object's ETag
/// for S3.
pub(super) fn open_decoder(
    input: &ObjectRef,
    s3: Option<&S3Context>,
    options: DecodeOptions,
    version: &ObjectVersion,
) -> Result<(AudioDecoder, Option<String>), JobError> {
    match input {
        ObjectRef::File(path) => Ok((AudioDecoder::open_file(path, options)?, None)),
        ObjectRef::S3 { .. } => {
            let (source, etag) = io::open_source_versioned(s3, input, version)?;
            let decoder =
                AudioDecoder::open_source(source, &input.to_string(), input.extension(), options)?;
            Ok((decoder, etag))
        }
    }
}

/// Runs one analysis pass per stage that wants one, in chain order, each on a fresh decode of
/// the input (the stages before it already configured by their own passes).
fn analyse(
    chain: &mut Chain,
    job: &Job,
    version: &ObjectVersion,
    s3: Option<&S3Context>,
    config: &RunnerConfig,
    progress: &dyn Progress,
) -> Result<(), JobError> {
    let passes = chain.analysis_stages();
    let names = chain.stage_names();
    for (pass, &index) in passes.iter().enumerate() {
        let (mut decoder, _) = open_decoder(&job.input, s3, config.decode, version)?;
        progress.phase(
            &format!(
                "analysis {}/{}: {}",
                pass + 1,
                passes.len(),
                names.get(index).copied().unwrap_or("stage")
            ),
            decoder.info().frames,
        );
        let mut block = Block::new(decoder.info().spec.channels, config.block_frames.max(1));
        loop {
            let frames = decoder.fill(&mut block)?;
            if frames == 0 {
                break;
            }
            if progress.should_stop() {
                return Err(JobError::Cancelled {
                    input: job.input.to_string(),
                });
            }
            chain.observe(index, &block);
            progress.advance(frames as u64);
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

/// What the decoder reports at the end of a stream.
struct DecodeTotals {
    /// Frames decoded.
    frames: u64,
    /// Corrupt packets skipped.
    skipped_packets: u64,
    /// Samples repaired by the decoder's hygiene step.
    repairs: SampleRepairs,
}

/// Outcome of streaming: decoder totals, manifest entries, outputs to publish, the waveform.
type Streamed<'a> = (
    DecodeTotals,
    Vec<OutputEntry>,
    Published<'a>,
    Option<FinishedWaveform<'a>>,
);

/// Counts the decoder's repairs and the encoders' clamps in the metrics.
fn record_repairs(repairs: SampleRepairs, entries: &[OutputEntry]) {
    let counts = [
        (
            names::DECODE_REPAIRED_SAMPLES_TOTAL,
            "non_finite",
            repairs.non_finite,
        ),
        (
            names::DECODE_REPAIRED_SAMPLES_TOTAL,
            "out_of_range",
            repairs.out_of_range,
        ),
        (
            names::ENCODE_REPAIRED_SAMPLES_TOTAL,
            "clipped",
            entries.iter().map(|e| e.clipped_samples).sum(),
        ),
        (
            names::ENCODE_REPAIRED_SAMPLES_TOTAL,
            "non_finite",
            entries.iter().map(|e| e.non_finite_samples).sum(),
        ),
    ];
    for (name, kind, count) in counts {
        if count > 0 {
            metrics::counter!(name, "kind" => kind).increment(count);
        }
    }
}

/// Decodes, processes and encodes on three threads. The outputs are finished (committed) only
/// when every thread succeeded; on any failure they are dropped, which aborts them.
fn stream<'a>(
    mut decoder: AudioDecoder,
    chain: &mut Chain,
    (mut outputs, mut waveform): (Outputs<'a>, Option<WaveformOutput<'a>>),
    config: &RunnerConfig,
    progress: &dyn Progress,
    input: &ObjectRef,
) -> Result<Streamed<'a>, JobError> {
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
    // Set when any side fails (an error or a panic): every wait for a pool block gives up, so no
    // thread waits forever for blocks the failed side will never give back.
    let failed = AtomicBool::new(false);
    let failed = &failed;

    std::thread::scope(|scope| {
        let decode_thread = {
            let pool = decoded_pool.clone();
            std::thread::Builder::new()
                .name("longwave-decode".into())
                .spawn_scoped(scope, move || -> Result<Decoded<'a>, JobError> {
                    let guard = FailOnDrop::new(failed);
                    let mut audio_seconds =
                        AudioSecondsCounter::new(decoder.info().spec.sample_rate);
                    while let Some(mut block) = pool.take_unless(failed) {
                        if progress.should_stop() {
                            return Err(JobError::Cancelled {
                                input: input.to_string(),
                            });
                        }
                        let frames = decoder.fill(&mut block)?;
                        if frames == 0 {
                            break;
                        }
                        progress.advance(frames as u64);
                        audio_seconds.add_frames(frames as u64);
                        if let Some(waveform) = waveform.as_mut() {
                            waveform.write(&block)?;
                        }
                        if decoded_tx.send(block).is_err() {
                            break; // downstream failed; its error is reported instead
                        }
                    }
                    audio_seconds.finish();
                    // Only a complete decode finishes the waveform: a decode cut short by a
                    // failure elsewhere drops it, which aborts its file.
                    let waveform = if failed.load(Ordering::Acquire) {
                        None
                    } else {
                        waveform.map(WaveformOutput::finish).transpose()?
                    };
                    guard.disarm();
                    Ok((
                        DecodeTotals {
                            frames: decoder.frames_decoded(),
                            skipped_packets: decoder.skipped_packets(),
                            repairs: decoder.sample_repairs(),
                        },
                        waveform,
                    ))
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
                    // Any exit but the end of the flush means the job failed.
                    let guard = FailOnDrop::new(failed);
                    let meters: Vec<StageMeter> = chain
                        .stage_names()
                        .into_iter()
                        .map(StageMeter::new)
                        .collect();
                    for block in decoded_rx {
                        let Some(mut out) = processed_pool.take_unless(failed) else {
                            return;
                        };
                        out.copy_from(chain.process(&block));
                        record_stage_timings(&meters, chain);
                        decoded_pool.give(block);
                        if !forward(chain, out) {
                            return;
                        }
                    }
                    loop {
                        let Some(mut out) = processed_pool.take_unless(failed) else {
                            return;
                        };
                        let more = match chain.flush() {
                            Some(flushed) => {
                                out.copy_from(flushed);
                                true
                            }
                            None => false,
                        };
                        if more {
                            record_stage_timings(&meters, chain);
                        }
                        if !more {
                            guard.disarm();
                            return;
                        }
                        if !forward(chain, out) {
                            return;
                        }
                    }
                })
        };
        let (decode_thread, dsp_thread) = match (decode_thread, dsp_thread) {
            (Ok(d), Ok(p)) => (d, p),
            (Err(e), _) | (_, Err(e)) => {
                failed.store(true, Ordering::Release);
                return Err(JobError::Panic {
                    input: input.to_string(),
                    what: format!("cannot start pipeline thread: {e}"),
                });
            }
        };

        let mut output_result = Ok(());
        for message in &processed_rx {
            match message {
                Processed::Event(event) => outputs.event(event),
                Processed::Audio(block) => {
                    if let Err(e) = outputs.write(&block) {
                        failed.store(true, Ordering::Release);
                        output_result = Err(e);
                        break;
                    }
                    processed_pool.give(block);
                }
            }
        }
        drop(processed_rx); // unblocks the DSP thread if the output side failed

        let decoded = decode_thread.join().map_err(|panic| JobError::Panic {
            input: input.to_string(),
            what: format!(
                "decoder thread: {}",
                crate::audio::panic_message(panic.as_ref())
            ),
        })?;
        dsp_thread.join().map_err(|panic| JobError::Panic {
            input: input.to_string(),
            what: format!(
                "dsp thread: {}",
                crate::audio::panic_message(panic.as_ref())
            ),
        })?;
        let (decoded, waveform) = decoded?;
        output_result?;
        if decoded.frames == 0 {
            // Refused before any output is committed: nothing to process.
            return Err(JobError::Decode(DecodeError::NoFrames {
                file: input.to_string(),
            }));
        }
        let (entries, published) = outputs.finish()?;
        Ok((decoded, entries, published, waveform))
    })
}

/// What the decode thread returns: its totals and the finished waveform file, if any.
type Decoded<'a> = (DecodeTotals, Option<FinishedWaveform<'a>>);

/// Records the chain's last per-stage timings in the metrics (`dsp` itself knows no metrics).
fn record_stage_timings(meters: &[StageMeter], chain: &Chain) {
    for (meter, timing) in meters.iter().zip(chain.last_stage_timings()) {
        meter.record(timing.elapsed, timing.frames);
    }
}

/// Sets the pipeline's `failed` flag when dropped, unless [`FailOnDrop::disarm`]ed: a thread
/// that returns early with an error or unwinds from a panic releases the others' waits.
struct FailOnDrop<'a> {
    failed: &'a AtomicBool,
    armed: bool,
}

impl<'a> FailOnDrop<'a> {
    fn new(failed: &'a AtomicBool) -> Self {
        Self {
            failed,
            armed: true,
        }
    }

    /// The thread finished its work normally.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for FailOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.failed.store(true, Ordering::Release);
        }
    }
}

/// The output format a job gets when none was asked for: the output's extension if it names
/// one, otherwise the input's format family (MP3 → MP3, FLAC → FLAC, WAV → WAV, others → FLAC).
pub fn format_for(output_extension: Option<&str>, input: &SourceInfo) -> OutputFormat {
    let from_ext = output_extension.map(str::to_ascii_lowercase);
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

/// The input's name without its extension (`rec` for `s3://b/u1/rec.m4a`).
fn input_stem(input: &ObjectRef) -> String {
    let name = input.file_name().unwrap_or("output");
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => name.to_string(),
    }
}

/// A sibling of `object` named `name` (same folder or S3 prefix).
fn sibling(object: &ObjectRef, name: &str) -> ObjectRef {
    match object {
        ObjectRef::File(path) => ObjectRef::File(path.with_file_name(name)),
        ObjectRef::S3 { bucket, key } => {
            let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
            let key = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            ObjectRef::S3 {
                bucket: bucket.clone(),
                key,
            }
        }
    }
}

/// Where the single output of `job` goes: the given file or object, `<dir>/<stem>.<ext>` for a
/// folder or prefix, or `<stem>.longwave.<ext>` next to the input.
fn resolve_output_path(job: &Job, format: OutputFormat) -> Result<ObjectRef, JobError> {
    let stem = input_stem(&job.input);
    let target = match &job.output {
        Some(out) if out.is_prefix() => out.join(&format!("{stem}.{}", format.extension())),
        Some(out) => out.clone(),
        None => sibling(
            &job.input,
            &format!("{stem}.longwave.{}", format.extension()),
        ),
    };
    let same = match (&target, &job.input) {
        (ObjectRef::File(a), ObjectRef::File(b)) => targets::same_file(a, b),
        (a, b) => a == b,
    };
    if same {
        return Err(JobError::Output {
            path: target.to_string(),
            reason: "the output would overwrite the input; choose another name with -o".into(),
        });
    }
    Ok(target)
}

/// The folder or prefix that receives the pieces of a split: the given output (an S3 output is
/// always taken as a prefix), or `<stem>_pieces` next to the input.
fn resolve_output_dir(job: &Job) -> ObjectRef {
    match &job.output {
        Some(ObjectRef::S3 { bucket, key }) if !key.is_empty() && !key.ends_with('/') => {
            ObjectRef::S3 {
                bucket: bucket.clone(),
                key: format!("{key}/"),
            }
        }
        Some(out) => out.clone(),
        None => match sibling(&job.input, &format!("{}_pieces", input_stem(&job.input))) {
            ObjectRef::S3 { bucket, key } => ObjectRef::S3 {
                bucket,
                key: format!("{key}/"),
            },
            file => file,
        },
    }
}

impl OutputTarget {
    /// The target an output location names by its form: a prefix or folder (ending in `/`, or
    /// an existing directory) receives pieces, anything else is one file.
    pub fn named_by(output: &ObjectRef) -> OutputTarget {
        if output.is_prefix() {
            OutputTarget::Folder(output.clone())
        } else {
            OutputTarget::File(output.clone())
        }
    }
}

/// The default manifest location for an output target: `manifest.json` inside a folder or
/// prefix, `<name>.manifest.json` next to a single output.
pub fn manifest_path_for(target: &OutputTarget) -> ObjectRef {
    match target {
        OutputTarget::Folder(dir) => dir.join("manifest.json"),
        OutputTarget::File(file) => {
            let name = file.file_name().unwrap_or("output");
            sibling(file, &format!("{name}.manifest.json"))
        }
    }
}

/// Where a job's waveform data goes: `waveform.<dat|json>` inside a folder or prefix,
/// `<name>.waveform.<dat|json>` next to a single output (as the manifest).
pub fn waveform_path_for(target: &OutputTarget, settings: WaveformSettings) -> ObjectRef {
    let extension = settings.format.extension();
    match target {
        OutputTarget::Folder(dir) => dir.join(&format!("waveform.{extension}")),
        OutputTarget::File(file) => {
            let name = file.file_name().unwrap_or("output");
            sibling(file, &format!("{name}.waveform.{extension}"))
        }
    }
}

/// Memory of writing a waveform: its buffer, and for an S3 output what the upload holds (the
/// whole file up to the sink's bound, since the first part is kept for the header patch); the
/// file's size is estimated from the input's frame count when the header gives one (JSON: at
/// most 7 bytes per value).
fn waveform_memory_bytes(
    settings: WaveformSettings,
    channels: usize,
    frames: Option<u64>,
    s3_output: Option<&S3Settings>,
) -> u64 {
    const BUFFER: u64 = 64 * 1024 + 256;
    let Some(s3) = s3_output else {
        return BUFFER;
    };
    let sink_bound = (2 + s3.parts_in_flight as u64) * s3.part_size as u64;
    let value_bytes: u64 = match (settings.format, settings.bits) {
        (crate::encode::WaveformFormat::Json, _) => 7,
        (_, 8) => 1,
        _ => 2,
    };
    let file_bytes = frames.map_or(u64::MAX, |frames| {
        let pixels = frames.div_ceil(u64::from(settings.samples_per_pixel.max(1)));
        let values = pixels.saturating_mul(2 * settings.output_channels(channels) as u64);
        // 10 % over the header's count: a header may understate the length a little.
        (values.saturating_mul(value_bytes).saturating_add(256)).saturating_mul(11) / 10
    });
    BUFFER + file_bytes.min(sink_bound)
}

/// Checks every local path the job writes (see [`super::targets`]) before any byte is read.
fn check_local_targets(
    job: &Job,
    target: &OutputTarget,
    manifest: &ObjectRef,
    waveform: Option<&ObjectRef>,
) -> Result<(), JobError> {
    let mut paths: Vec<(&str, &std::path::Path)> = Vec::new();
    if let ObjectRef::File(input) = &job.input {
        paths.push(("input", input));
    }
    let mut pieces_folder = None;
    match target {
        OutputTarget::File(ObjectRef::File(out)) => {
            targets::check_file_target(out, "output", job.overwrite, false)?;
            paths.push(("output", out));
        }
        OutputTarget::Folder(ObjectRef::File(dir)) => {
            targets::check_pieces_folder(dir, job.overwrite)?;
            paths.push(("pieces folder", dir));
            pieces_folder = Some(dir);
        }
        _ => {}
    }
    let in_pieces_folder = |path: &std::path::Path| {
        path.parent()
            .is_some_and(|p| Some(p) == pieces_folder.map(|d| d.as_path()))
    };
    let mut files = Vec::new();
    if let ObjectRef::File(manifest) = manifest {
        paths.push(("manifest", manifest));
        files.push(("manifest", manifest));
    }
    if let Some(ObjectRef::File(waveform)) = waveform {
        paths.push(("waveform", waveform));
        files.push(("waveform", waveform));
    }
    targets::check_distinct(&paths)?;
    for (role, path) in files {
        targets::check_file_target(path, role, job.overwrite, in_pieces_folder(path))?;
    }
    Ok(())
}

/// Writes the manifest: for a file, under a temporary name then moved into place (never over
/// an existing file unless `overwrite`); as one PutObject for S3.
fn write_manifest(
    path: &ObjectRef,
    s3: Option<&S3Context>,
    manifest: &Manifest,
    overwrite: bool,
) -> Result<(), JobError> {
    let manifest_error = |reason: String, retryable: bool| JobError::Manifest {
        path: path.to_string(),
        reason,
        retryable,
    };
    let io_error = |e: io::IoError| manifest_error(e.to_string(), e.retryable());
    let mut json =
        serde_json::to_vec_pretty(manifest).map_err(|e| manifest_error(e.to_string(), false))?;
    json.push(b'\n');
    match path {
        ObjectRef::File(final_path) => {
            let pending = super::outputs::pending_path(final_path);
            io::put_bytes(s3, &ObjectRef::File(pending.clone()), json, None).map_err(io_error)?;
            move_into_place(&pending, final_path, overwrite).map_err(|e| {
                let _ = std::fs::remove_file(&pending);
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    manifest_error(
                        "it appeared while the job ran; pass --overwrite to replace it".into(),
                        false,
                    )
                } else {
                    manifest_error(e.to_string(), false)
                }
            })
        }
        ObjectRef::S3 { .. } => {
            io::put_bytes(s3, path, json, Some("application/json")).map_err(io_error)
        }
    }
}

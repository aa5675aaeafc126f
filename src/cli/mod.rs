//! Argument parsing (clap) and the subcommands' glue. Library errors are typed; here they become
//! `anyhow` errors with the context a user needs.

mod demo;
mod plot;
mod progress;
mod worker;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use longwave::audio::StreamSpec;
use longwave::decode::DecodeOptions;
use longwave::dsp::{AutoKeyword, SilenceParams, Threshold};
use longwave::encode::{
    Mp3Rate, OutputFormat, WavSampleFormat, WaveformFormat, WaveformSettings,
    DEFAULT_SAMPLES_PER_PIXEL, MAX_SAMPLES_PER_PIXEL, MIN_SAMPLES_PER_PIXEL,
};
use longwave::io::{ObjectRef, S3Context, S3Settings, StatusTable, StatusWrite};
use longwave::job::status::StatusRecord;
use longwave::job::{self, Job, RunnerConfig, StageSpec};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Streaming audio processing for long files, in constant memory.
#[derive(Parser, Debug)]
#[command(name = "longwave", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Process an audio file through a chain of stages and write the result.
    Process(ProcessArgs),
    /// Report container, codec, duration, sample rate, channels, peak and RMS of a file.
    Analyze(AnalyzeArgs),
    /// Run one job described by environment variables (an ECS task): S3_BUCKET, S3_KEY,
    /// PROCESSING_PARAMS (legacy one-shot parameters or a job spec), optional OUTPUT_BUCKET and
    /// OUTPUT_PREFIX.
    Task(TaskArgs),
    /// Serve an SQS queue: run each message's jobs in job slots, with heartbeats, a
    /// dead-letter route, graceful shutdown and a Prometheus endpoint.
    Worker(worker::WorkerArgs),
    /// Synthesise a speech-like test recording (pauses, noise floor) of any length.
    Generate(GenerateArgs),
    /// Run the main job end to end on a generated example; no input or AWS account needed.
    Demo(DemoArgs),
    /// List every stage a chain may hold, with each parameter's default, range and choices.
    Stages(StagesArgs),
    /// Draw a PNG of a recording's waveform with the silent ranges, the threshold and the pieces
    /// of a silence split (by default the oneshot preset's).
    Plot(PlotArgs),
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// Input audio: a file or `s3://bucket/key`.
    input: String,
    /// The PNG to write. Default: `<input stem>.plot.png` next to a local input, in the
    /// current folder for an S3 input.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The split to show, as the `silence` stage's fields in JSON (e.g.
    /// `{"mode":"pydub","threshold_db":-40,"min_silence_ms":500}`); default: the oneshot
    /// preset's (pydub, −30 dBFS, 750 ms, 50 ms kept).
    #[arg(long, value_name = "JSON", conflicts_with = "no_silence")]
    silence_params: Option<String>,
    /// The waveform alone, without a split.
    #[arg(long)]
    no_silence: bool,
    #[command(flatten)]
    size: PlotSizeArgs,
    /// Replace an existing PNG.
    #[arg(long)]
    overwrite: bool,
}

/// The size of a picture (`plot`, `process --plot`).
#[derive(Args, Debug)]
struct PlotSizeArgs {
    /// Picture width in pixels (200…8000).
    #[arg(long, value_name = "PX", default_value_t = plot::DEFAULT_SIZE.0, value_parser = clap::value_parser!(u32).range(i64::from(*plot::SIZE_RANGE.start())..=i64::from(*plot::SIZE_RANGE.end())))]
    width: u32,
    /// Picture height in pixels (200…8000).
    #[arg(long, value_name = "PX", default_value_t = plot::DEFAULT_SIZE.1, value_parser = clap::value_parser!(u32).range(i64::from(*plot::SIZE_RANGE.start())..=i64::from(*plot::SIZE_RANGE.end())))]
    height: u32,
}

impl PlotSizeArgs {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

#[derive(Args, Debug)]
struct StagesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ProcessArgs {
    /// Input audio: a file or `s3://bucket/key` (MP3, M4A/AAC, FLAC, WAV, Ogg Vorbis, or a
    /// video's first audio track).
    input: String,
    /// Output file or `s3://bucket/key`; a folder or `s3://bucket/prefix/` when the job makes
    /// several outputs. Default: `<input stem>.longwave.<ext>` next to the input.
    #[arg(short, long)]
    output: Option<String>,
    /// A named job.
    #[arg(long, conflicts_with = "chain", value_parser = preset_values())]
    preset: Option<String>,
    /// The chain as JSON (`[{"type":"gain","gain_db":-3}]`) or `@FILE` to read it from a file;
    /// `longwave stages` lists every stage and parameter.
    #[arg(long)]
    chain: Option<String>,
    /// Output format; default: the output file's extension, else the input's format family.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// MP3 constant bitrate in kbit/s (8…320, LAME's CBR rates).
    #[arg(long, value_name = "KBPS", conflicts_with = "vbr")]
    bitrate: Option<u32>,
    /// MP3 variable bitrate quality, 0 (best) … 9 (smallest).
    #[arg(long, value_name = "QUALITY")]
    vbr: Option<u8>,
    /// WAV sample format.
    #[arg(long, value_enum)]
    wav_format: Option<WavFormatArg>,
    /// FLAC bits per sample (16 or 24).
    #[arg(long, value_name = "BITS")]
    flac_bits: Option<u8>,
    /// Where to write the JSON manifest, a file or `s3://…` (default: next to the output).
    #[arg(long)]
    manifest: Option<String>,
    /// Replace existing local outputs and manifest. Without it an existing output, manifest or
    /// pieces folder with pieces is refused before any work (S3 outputs are never replaced).
    /// No path a run writes may be its input or another of its outputs, nor a device or pipe.
    #[arg(long)]
    overwrite: bool,
    /// S3 multipart part size in MiB (5…5120); the first part is held in memory until the end.
    #[arg(long, value_name = "MIB")]
    part_size_mib: Option<usize>,
    /// S3 parts uploaded concurrently (backpressure beyond).
    #[arg(long, value_name = "N")]
    parts_in_flight: Option<usize>,
    /// Attempts after the first for every S3 request and download resume (0–20, default 5).
    #[arg(long, value_name = "N")]
    s3_max_retries: Option<u32>,
    /// Write S3 outputs even when the server does not implement `If-None-Match` (an older S3
    /// clone); without it such a server fails the write, since an existing object could be
    /// replaced.
    #[arg(long)]
    s3_allow_unconditional_writes: bool,
    #[command(flatten)]
    memory: MemoryArgs,
    #[command(flatten)]
    encode: EncodeArgs,
    #[command(flatten)]
    waveform: WaveformArgs,
    /// Also draw a PNG of the input's waveform with the job's silent ranges, threshold and
    /// pieces (a local file; drawn after the job from one more decode of the input).
    #[arg(long, value_name = "PNG")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    plot_size: PlotSizeArgs,
    #[command(flatten)]
    status: StatusArgs,
    /// The status record's key; default: the input as given (`s3://bucket/key` or the path).
    #[arg(long, value_name = "KEY", requires = "status_table")]
    status_key: Option<String>,
    /// No progress bar and no summary line.
    #[arg(short, long)]
    quiet: bool,
    /// Serve Prometheus metrics on this address (e.g. `127.0.0.1:9000`, path `/metrics`) while
    /// the job runs.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Frames per processing block (changes speed and memory, never the result).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    block_frames: u32,
    /// Undecodable packets tolerated before the job fails.
    #[arg(long, default_value_t = DecodeOptions::default().max_skipped_packets)]
    max_bad_packets: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Wav,
    Flac,
    Mp3,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum WavFormatArg {
    Pcm16,
    Pcm24,
    Float32,
}

/// The job memory budget, one flag for `process`, `task` and `worker`.
#[derive(Args, Debug)]
pub(crate) struct MemoryArgs {
    /// Memory one job may use, in MiB (16–65536). Each job's bound (block pools, chain and stage
    /// state, S3 buffers, codecs) is computed once the input's header is read; a job over it is
    /// refused before any audio is decoded, naming the parameter to lower. Default: the budget
    /// of one worker slot (transfer buffers + blocks + codecs + 24 MiB of stage state).
    #[arg(long, env = "LONGWAVE_MAX_JOB_MEMORY_MIB", value_name = "MIB", value_parser = clap::value_parser!(u64).range(16..=65536))]
    max_job_memory_mib: Option<u64>,
}

impl MemoryArgs {
    /// The budget for `RunnerConfig::job_budget_bytes`.
    pub(crate) fn job_budget_bytes(&self) -> Option<u64> {
        self.max_job_memory_mib.map(|mib| mib << 20)
    }
}

/// The threads that encode one MP3 output, one flag for `process`, `task` and `worker`.
#[derive(Args, Debug)]
pub(crate) struct EncodeArgs {
    /// Threads that encode one MP3 output (1–64). Above 1, the MP3 is encoded in parallel
    /// segments joined into one gapless stream (exact length; CBR within 0.2 % of one thread's
    /// size). Default: `process` and `task` use every CPU; the worker uses CPUs ÷ --max-jobs
    /// (1 at the default slots) and refuses --max-jobs × --encode-threads above the CPU count.
    /// Pieces of a split and resampled MP3 always use one thread.
    #[arg(long, env = "LONGWAVE_ENCODE_THREADS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    encode_threads: Option<u64>,
}

impl EncodeArgs {
    /// The thread count set, or `default`.
    pub(crate) fn threads_or(&self, default: usize) -> usize {
        self.encode_threads.map_or(default, |n| n as usize)
    }

    /// The thread count if one was set.
    pub(crate) fn threads(&self) -> Option<usize> {
        self.encode_threads.map(|n| n as usize)
    }
}

/// The DynamoDB table of job status records (`process`, `task`, `worker`).
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Keep a status record per job in this DynamoDB table: PROCESSING (worker, attempt,
    /// start) → COMPLETE (outputs, durations, levels, manifest, timings) or FAILED (error,
    /// retryable). Conditional: a COMPLETE record of the same input version never goes back.
    #[arg(long, env = "STATUS_TABLE", value_name = "TABLE")]
    status_table: Option<String>,
    /// The table's partition key attribute (a string).
    #[arg(
        long,
        env = "STATUS_KEY_ATTRIBUTE",
        value_name = "NAME",
        default_value = "id"
    )]
    status_key_attribute: String,
}

impl StatusArgs {
    /// The table and key attribute, or `None` without a table (an empty `STATUS_TABLE` too).
    pub(crate) fn table(&self) -> Option<(String, String)> {
        let table = self.status_table.as_deref()?.trim();
        (!table.is_empty()).then(|| (table.to_owned(), self.status_key_attribute.clone()))
    }
}

/// Waveform data of the input beside the outputs (`process`).
#[derive(Args, Debug)]
struct WaveformArgs {
    /// Also write the input's waveform peaks in BBC audiowaveform's format (version 2; what
    /// peaks.js reads) beside the outputs: `<output>.waveform.dat|json`, or
    /// `waveform.dat|json` in a pieces folder. Listed in the manifest.
    #[arg(long, value_name = "dat|json", value_parser = ["dat", "json"])]
    waveform: Option<String>,
    /// Input frames per min/max pair of the waveform (2…1048576, default 256).
    #[arg(long, value_name = "FRAMES", requires = "waveform", value_parser = clap::value_parser!(u32).range(MIN_SAMPLES_PER_PIXEL as i64..=MAX_SAMPLES_PER_PIXEL as i64))]
    waveform_zoom: Option<u32>,
    /// Bits per waveform value, 8 or 16 (default 16).
    #[arg(long, value_name = "BITS", requires = "waveform", value_parser = ["8", "16"])]
    waveform_bits: Option<String>,
    /// One waveform per input channel instead of the channels mixed.
    #[arg(long, requires = "waveform")]
    waveform_split_channels: bool,
}

impl WaveformArgs {
    /// The settings asked for, or `None` without `--waveform`.
    fn settings(&self) -> Option<WaveformSettings> {
        let format = WaveformFormat::from_name(self.waveform.as_deref()?)?;
        Some(WaveformSettings {
            format,
            samples_per_pixel: self.waveform_zoom.unwrap_or(DEFAULT_SAMPLES_PER_PIXEL),
            bits: if self.waveform_bits.as_deref() == Some("8") {
                8
            } else {
                16
            },
            split_channels: self.waveform_split_channels,
        })
    }
}

/// The CPUs this process may use (1 when unknown).
pub(crate) fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[derive(Args, Debug)]
struct TaskArgs {
    /// No summary lines.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    memory: MemoryArgs,
    #[command(flatten)]
    encode: EncodeArgs,
    #[command(flatten)]
    status: StatusArgs,
    /// The status record's key (the one-shot service's recording id); default: the input,
    /// `s3://S3_BUCKET/S3_KEY`.
    #[arg(long, env = "SAMPLE_ID", value_name = "KEY")]
    status_key: Option<String>,
}

#[derive(Args, Debug)]
struct AnalyzeArgs {
    /// Input audio: a file or `s3://bucket/key`.
    input: String,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also detect silences: the suggested threshold and the silent/non-silent ranges.
    #[arg(long)]
    silence: bool,
    /// Silence detection parameters as JSON (the `silence` stage's fields), e.g.
    /// `{"mode":"pydub","threshold_db":-30,"min_silence_ms":750}`; default: accurate mode with an
    /// automatic threshold.
    #[arg(long, value_name = "JSON", requires = "silence")]
    silence_params: Option<String>,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Output file (`.wav`, `.flac` or `.mp3`).
    output: PathBuf,
    /// Length in seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Sample rate in Hz.
    #[arg(long, default_value_t = 44_100)]
    sample_rate: u32,
    /// Channels (1…8).
    #[arg(long, default_value_t = 2)]
    channels: usize,
    /// Seed: the same seed gives the same recording.
    #[arg(long, default_value_t = 8)]
    seed: u64,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Folder for the example input and the outputs.
    #[arg(default_value = "demo-output")]
    dir: PathBuf,
    /// Length of the generated example, seconds.
    #[arg(long, default_value_t = 90.0)]
    seconds: f64,
}

/// Parses the command line and runs the subcommand.
/// A command line clap rejected (unknown flag, bad value, conflicting flags): one line, exit
/// code 2, as usage errors conventionally have.
#[derive(Debug, thiserror::Error)]
#[error("{0} (see longwave --help)")]
pub struct UsageError(pub String);

pub fn run() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit(); // help and version text go to stdout, exit 0 (or 2 for a bare call)
            }
            // clap renders "error: <what>" (possibly over several lines, e.g. the missing
            // arguments), a blank line, then the usage; keep the first paragraph on one line.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            return Err(UsageError(job::cap_echo(first)).into());
        }
    };
    match cli.command {
        Command::Process(args) => process(args),
        Command::Analyze(args) => analyze(args),
        Command::Task(args) => task(args),
        Command::Worker(args) => worker::run(args),
        Command::Generate(args) => generate(args),
        Command::Demo(args) => demo::run(&args.dir, args.seconds),
        Command::Stages(args) => stages(&args),
        Command::Plot(args) => plot_command(args),
    }
}

fn process(args: ProcessArgs) -> Result<()> {
    if let Some(addr) = &args.metrics_addr {
        if let Some(addr) = worker::metrics_addr(addr)? {
            longwave::telemetry::install_prometheus(addr)?;
        }
    }
    let (preset_name, chain, preset_format) = match (&args.preset, &args.chain) {
        (Some(name), _) => {
            let preset = job::preset(name)?;
            (Some(preset.name.to_string()), preset.chain, preset.format)
        }
        (None, Some(chain)) => (None, read_chain(chain)?, None),
        (None, None) => (None, Vec::new(), None),
    };
    let format = output_format(&args)?.or(preset_format);
    let parse = |s: &String| ObjectRef::parse(s);
    let job = Job {
        input: parse(&args.input)?,
        output: args.output.as_ref().map(parse).transpose()?,
        preset: preset_name,
        chain,
        format,
        manifest: args.manifest.as_ref().map(parse).transpose()?,
        overwrite: args.overwrite,
        input_version: Default::default(),
        waveform: args.waveform.settings(),
    };
    if let Some(plot) = &args.plot {
        check_plot_target(plot, &job, args.overwrite)?;
    }
    let status_table = args.status.table();
    let needs_s3 = job.input.is_s3()
        || job.output.as_ref().is_some_and(ObjectRef::is_s3)
        || job.manifest.as_ref().is_some_and(ObjectRef::is_s3)
        || status_table.is_some();
    let s3 = if needs_s3 {
        let mut settings = S3Settings::default();
        if let Some(mib) = args.part_size_mib {
            settings.part_size = mib.saturating_mul(1024 * 1024);
        }
        if let Some(parts) = args.parts_in_flight {
            settings.parts_in_flight = parts;
        }
        if let Some(retries) = args.s3_max_retries {
            settings.max_retries = retries;
        }
        settings.allow_unconditional_writes = args.s3_allow_unconditional_writes;
        Some(S3Context::from_env(settings)?)
    } else {
        None
    };
    let config = RunnerConfig {
        block_frames: args.block_frames as usize,
        job_budget_bytes: args.memory.job_budget_bytes(),
        decode: DecodeOptions {
            max_skipped_packets: args.max_bad_packets,
        },
        encode_threads: args.encode.threads_or(cpu_count()),
        ..RunnerConfig::default()
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let signal = stop_on_signals()?;
    let progress = progress::Bar::new(
        show_progress,
        job.input.file_name().unwrap_or(""),
        Arc::clone(&signal),
    );
    let table = match (&status_table, &s3) {
        (Some((table, key_attribute)), Some(s3)) => {
            Some(StatusTable::connect(s3, table, key_attribute)?)
        }
        _ => None,
    };
    let status = table
        .as_ref()
        .map(|table| (table, status_key(args.status_key.as_deref(), &job.input)));
    let jobs = [job];
    let result = run_recorded(&jobs, s3.as_ref(), &config, &progress, status);
    let [job] = jobs;
    let manifest = match result.map(|done| done.and_then(|mut all| all.pop())) {
        Err(error)
            if signal.load(Ordering::Relaxed) != 0
                && matches!(
                    error.downcast_ref::<job::JobError>(),
                    Some(job::JobError::Cancelled { .. })
                ) =>
        {
            return Err(Interrupted {
                input: job.input.to_string(),
                signal: signal.load(Ordering::Relaxed),
            }
            .into());
        }
        Err(error) => return Err(error),
        Ok(None) => {
            if !args.quiet {
                eprintln!(
                    "{}: the status record says this input is already complete; nothing to do",
                    job.input
                );
            }
            return Ok(());
        }
        Ok(Some(manifest)) => manifest,
    };
    if !args.quiet {
        for output in &manifest.outputs {
            eprintln!(
                "wrote {} ({}, {:.3} s, {} bytes)",
                output.path, output.format, output.duration_s, output.bytes
            );
        }
        eprintln!(
            "{:.1} s of audio in {:.2} s ({:.0}x realtime)",
            manifest.input.duration_s, manifest.wall_time_s, manifest.realtime_factor
        );
    }
    if let Some(path) = &args.plot {
        let size = args.plot_size.size();
        let mut data = job::plot_data(
            &job.input,
            s3.as_ref(),
            config.decode,
            None,
            plot::columns_for(size.0),
        )?;
        data.silence = silence_marks(&manifest);
        plot::write(&data, path, size, args.overwrite)?;
        if !args.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The marks a finished job's manifest gives a picture: the silence stage's threshold and
/// silent ranges, and the pieces it wrote; `None` for a job without a silence stage.
fn silence_marks(manifest: &job::Manifest) -> Option<job::SilenceMarks> {
    let report = manifest
        .stage_reports
        .iter()
        .find(|r| r.stage == "silence")?;
    let pieces: Vec<(u64, u64)> = manifest
        .outputs
        .iter()
        .filter_map(|o| Some((o.start_ms?, o.end_ms?)))
        .collect();
    Some(job::SilenceMarks {
        pieces_count: pieces.len() as u64,
        pieces_ms: pieces,
        ..job::SilenceMarks::from_report(&report.report)
    })
}

/// Refuses a `--plot` path before the job runs: not a PNG, existing without `--overwrite`, or
/// the input or the output itself.
fn check_plot_target(plot: &std::path::Path, job: &Job, overwrite: bool) -> Result<()> {
    let is_png = plot
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(UsageError(format!(
            "--plot {}: the picture is a PNG; name it .png",
            plot.display()
        ))
        .into());
    }
    let same = |other: &ObjectRef| match other {
        ObjectRef::File(path) => same_path(plot, path),
        ObjectRef::S3 { .. } => false,
    };
    if same(&job.input) || job.output.as_ref().is_some_and(same) {
        bail!(
            "{}: the plot would overwrite the job's input or output; choose another name",
            plot.display()
        );
    }
    if plot.exists() && !overwrite {
        bail!(
            "{}: already exists; pass --overwrite to replace it",
            plot.display()
        );
    }
    Ok(())
}

/// Whether two local paths name the same file (or would: same canonical folder and name).
fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        let parent = match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("."),
        };
        Some(parent.canonicalize().ok()?.join(p.file_name()?))
    };
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => resolve(a).is_some() && resolve(a) == resolve(b),
    }
}

/// `longwave plot`: the picture of a recording and, unless `--no-silence`, of its split.
fn plot_command(args: PlotArgs) -> Result<()> {
    let input = ObjectRef::parse(&args.input).map_err(|e| UsageError(e.to_string()))?;
    let output = match &args.output {
        Some(path) => path.clone(),
        None => {
            let stem = input
                .file_name()
                .and_then(|n| {
                    n.rsplit_once('.')
                        .map(|(stem, _)| stem.to_owned())
                        .or(Some(n.to_owned()))
                })
                .unwrap_or_else(|| "plot".to_owned());
            let name = format!("{stem}.plot.png");
            match &input {
                ObjectRef::File(path) => path.with_file_name(name),
                ObjectRef::S3 { .. } => PathBuf::from(name),
            }
        }
    };
    let probe = Job {
        input: input.clone(),
        output: None,
        preset: None,
        chain: Vec::new(),
        format: None,
        manifest: None,
        overwrite: args.overwrite,
        input_version: Default::default(),
        waveform: None,
    };
    check_plot_target(&output, &probe, args.overwrite)?;
    let silence = if args.no_silence {
        None
    } else {
        Some(match &args.silence_params {
            Some(json) => serde_json::from_str::<SilenceParams>(json).map_err(|e| {
                UsageError(format!(
                    "--silence-params: {}",
                    job::cap_echo(&e.to_string())
                ))
            })?,
            None => match job::preset("oneshot")?.chain.first() {
                Some(StageSpec::Silence(params)) => params.clone(),
                _ => bail!("the oneshot preset has no silence stage"),
            },
        })
    };
    let s3 = match &input {
        ObjectRef::S3 { .. } => Some(S3Context::from_env(S3Settings::default())?),
        ObjectRef::File(_) => None,
    };
    let size = args.size.size();
    let data = job::plot_data(
        &input,
        s3.as_ref(),
        DecodeOptions::default(),
        silence,
        plot::columns_for(size.0),
    )?;
    plot::write(&data, &output, size, args.overwrite)?;
    match &data.silence {
        Some(marks) => println!(
            "wrote {} ({:.1} s, {} pieces, {} silent ranges, threshold {})",
            output.display(),
            data.envelope.frames as f64 / f64::from(data.sample_rate.max(1)),
            marks.pieces_count,
            marks.silent_ranges_ms.len(),
            marks
                .threshold_db
                .map_or("none (all silent)".to_owned(), |t| format!("{t:.1} dBFS"))
        ),
        None => println!("wrote {}", output.display()),
    }
    Ok(())
}

/// Task mode: everything is validated from the environment before any byte is read.
/// A job stopped by SIGINT/SIGTERM (the signal's number): its pending outputs were removed
/// and nothing was committed. `main` exits with 128 + the signal number, as shells expect.
#[derive(Debug, thiserror::Error)]
#[error("{input}: interrupted by signal {signal} before the job finished; nothing was written")]
pub struct Interrupted {
    /// The job's input.
    pub input: String,
    /// The signal's number.
    pub signal: usize,
}

/// Makes SIGINT and SIGTERM request a clean stop: the job stops at its next block, removes its
/// pending files and aborts its uploads. A second signal ends the process at once.
fn stop_on_signals() -> Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let signal = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional shutdown sees `received` still false on the first
        // signal, then the flag is set; a second signal finds it set and exits.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&received))
            .context("cannot install the signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&received))
            .context("cannot install the signal handlers")?;
        signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
            .context("cannot install the signal handlers")?;
    }
    Ok(signal)
}

fn task(args: TaskArgs) -> Result<()> {
    if std::env::var("PROCESSING_MODE").is_ok_and(|m| m.trim().eq_ignore_ascii_case("service")) {
        // The legacy image switched to its queue worker this way; the worker takes its whole
        // configuration from the environment (SQS_QUEUE_URL, …).
        return match Cli::try_parse_from(["longwave", "worker"]) {
            Ok(Cli {
                command: Command::Worker(worker_args),
            }) => worker::run(worker_args),
            Ok(_) => bail!("PROCESSING_MODE=service: internal error selecting the worker"),
            Err(e) => bail!("PROCESSING_MODE=service needs the worker's settings: {e}"),
        };
    }
    let plan = job::plan_from_env(|name| std::env::var(name).ok())?;
    let s3 = S3Context::from_env(S3Settings::default())?;
    let config = RunnerConfig {
        job_budget_bytes: args.memory.job_budget_bytes(),
        encode_threads: args.encode.threads_or(cpu_count()),
        ..RunnerConfig::default()
    };
    if let Some(copy) = &plan.preserve_original {
        longwave::io::copy_object(Some(&s3), &plan.input, copy)?;
        if !args.quiet {
            eprintln!("copied {} to {copy}", plan.input);
        }
    }
    let table = match args.status.table() {
        Some((table, key_attribute)) => Some(StatusTable::connect(&s3, &table, &key_attribute)?),
        None => None,
    };
    let key = status_key(args.status_key.as_deref(), &plan.input);
    let jobs: Vec<Job> = plan
        .jobs
        .iter()
        .map(|task_job| Job {
            input: plan.input.clone(),
            output: Some(task_job.output.clone()),
            preset: task_job.preset.clone(),
            chain: task_job.chain.clone(),
            format: task_job.format,
            manifest: None,
            overwrite: false,
            input_version: Default::default(),
            waveform: task_job.waveform,
        })
        .collect();
    let status = table.as_ref().map(|table| (table, key));
    let Some(manifests) = run_recorded(&jobs, Some(&s3), &config, &job::NoProgress, status)? else {
        if !args.quiet {
            eprintln!(
                "{}: the status record says this input is already complete; nothing to do",
                plan.input
            );
        }
        return Ok(());
    };
    if !args.quiet {
        for (manifest, task_job) in manifests.iter().zip(&plan.jobs) {
            eprintln!(
                "{}: {} output(s) under {} ({:.0}x realtime)",
                plan.input,
                manifest.outputs.len(),
                task_job.output,
                manifest.realtime_factor
            );
        }
    }
    Ok(())
}

/// The key of a job's status record: the one given, else the input's name.
fn status_key(given: Option<&str>, input: &ObjectRef) -> String {
    given
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map_or_else(|| input.to_string(), str::to_owned)
}

/// Runs `jobs` (one request: one input, one job per output) in order and, with a status
/// table, keeps the request's record: PROCESSING before the first, COMPLETE (from every
/// manifest) after the last, FAILED when one fails. `None` when the record is already COMPLETE
/// for this input version: nothing is run.
fn run_recorded(
    jobs: &[Job],
    s3: Option<&S3Context>,
    config: &RunnerConfig,
    progress: &dyn job::Progress,
    status: Option<(&StatusTable, String)>,
) -> Result<Option<Vec<job::Manifest>>> {
    let (Some((table, key)), Some(s3), Some(first)) = (status, s3, jobs.first()) else {
        return jobs
            .iter()
            .map(|job| Ok(job::run(job, s3, config, progress)?))
            .collect::<Result<Vec<_>>>()
            .map(Some);
    };
    let version = job::status::input_version(&first.input, s3)?;
    let record = StatusRecord::new(table, key, version);
    let worker = job::status::worker_id();
    if record.processing(&first.input.to_string(), &worker, None)? == StatusWrite::KeptComplete {
        return Ok(None);
    }
    let mut manifests = Vec::with_capacity(jobs.len());
    let mut written = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job::run_located(job, Some(s3), config, progress) {
            Ok((manifest, location)) => {
                written.push((serde_json::to_value(&manifest)?, location.to_string()));
                manifests.push(manifest);
            }
            Err(error) => {
                if let Err(status) =
                    record.failed(error.kind(), &error.to_string(), error.retryable())
                {
                    // The job's own error is what the user must see; the record's is printed.
                    eprintln!("longwave: {status}");
                }
                return Err(error.into());
            }
        }
    }
    record.complete(&written).with_context(|| {
        format!(
            "{}: the outputs and the manifests are complete, but",
            first.input
        )
    })?;
    Ok(Some(manifests))
}

/// Reads `--chain`: inline JSON or `@FILE`.
fn read_chain(arg: &str) -> Result<Vec<StageSpec>> {
    let json = match arg.strip_prefix('@') {
        Some(path) => read_chain_file(path)?,
        None => arg.to_string(),
    };
    Ok(job::parse_chain(&json)?)
}

/// Reads a `--chain @FILE`: a regular file of at most 1 MiB (`@/dev/zero` or a FIFO would
/// otherwise be read until memory runs out, or forever).
fn read_chain_file(path: &str) -> Result<String> {
    use std::io::Read;
    let limit = job::MAX_CHAIN_JSON_BYTES as u64;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read chain file {path}"))?;
    if !meta.is_file() {
        bail!("cannot read chain file {path}: not a regular file");
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit + 1).read_to_string(&mut text))
        .with_context(|| format!("cannot read chain file {path}"))?;
    if text.len() as u64 > limit {
        bail!("chain file {path} is larger than 1 MiB");
    }
    Ok(text)
}

/// Output extensions of audio formats longwave does not write: an output named like this would
/// hold data that is not what its name says.
const FOREIGN_AUDIO_EXTENSIONS: &[&str] = &[
    "aac", "aif", "aifc", "aiff", "alac", "caf", "m4a", "m4b", "mka", "mkv", "mov", "mp2", "mp4",
    "oga", "ogg", "opus", "wma", "webm", "weba",
];

impl FormatArg {
    fn name(self) -> &'static str {
        match self {
            FormatArg::Wav => "wav",
            FormatArg::Flac => "flac",
            FormatArg::Mp3 => "mp3",
        }
    }
}

/// The explicit output format from the flags, if any flag names or implies one.
///
/// The format can come from `--format`, from a format's own option (`--bitrate`/`--vbr` → mp3,
/// `--wav-format` → wav, `--flac-bits` → flac) or from the output's extension. When two of
/// these disagree it is an error naming both, never a file whose content is not what its name
/// or the options say.
fn output_format(args: &ProcessArgs) -> Result<Option<OutputFormat>> {
    let mut options: Vec<(String, FormatArg)> = Vec::new();
    if let Some(kbps) = args.bitrate {
        options.push((format!("--bitrate {kbps}"), FormatArg::Mp3));
    }
    if let Some(quality) = args.vbr {
        options.push((format!("--vbr {quality}"), FormatArg::Mp3));
    }
    if let Some(wav) = args.wav_format {
        let name = wav.to_possible_value().map(|v| v.get_name().to_owned());
        options.push((
            format!("--wav-format {}", name.unwrap_or_default()),
            FormatArg::Wav,
        ));
    }
    if let Some(bits) = args.flac_bits {
        options.push((format!("--flac-bits {bits}"), FormatArg::Flac));
    }
    if let Some((first, first_kind)) = options.first() {
        if let Some((other, other_kind)) = options.iter().find(|(_, k)| k != first_kind) {
            bail!(
                "{first} applies to {} and {other} to {}: give the options of one output format",
                first_kind.name(),
                other_kind.name()
            );
        }
    }
    let implied = options.first().map(|(flag, kind)| (flag.clone(), *kind));
    if let (Some(format), Some((flag, kind))) = (args.format, &implied) {
        if format.name() != kind.name() {
            bail!(
                "{flag} applies to {}, but --format is {}",
                kind.name(),
                format.name()
            );
        }
    }
    let output = args
        .output
        .as_deref()
        .and_then(|o| ObjectRef::parse(o).ok());
    let extension = output
        .as_ref()
        .and_then(|o| o.extension().map(str::to_ascii_lowercase));
    let from_extension = match extension.as_deref() {
        Some("wav") => Some(FormatArg::Wav),
        Some("flac") => Some(FormatArg::Flac),
        Some("mp3") => Some(FormatArg::Mp3),
        Some(ext) if FOREIGN_AUDIO_EXTENSIONS.contains(&ext) => bail!(
            "-o {}: longwave writes wav, flac or mp3, not .{ext}; name the output accordingly",
            args.output.as_deref().unwrap_or_default()
        ),
        _ => None,
    };
    let chosen = args
        .format
        .map(|f| (format!("--format {}", f.name()), f))
        .or(implied);
    if let (Some(ext_kind), Some((flag, kind))) = (from_extension, &chosen) {
        if ext_kind.name() != kind.name() {
            bail!(
                "-o {} names a {} file, but {flag} asks for {}",
                args.output.as_deref().unwrap_or_default(),
                ext_kind.name(),
                kind.name()
            );
        }
    }
    let Some(kind) = chosen.map(|(_, k)| k).or(from_extension) else {
        return Ok(None);
    };
    Ok(Some(match kind {
        FormatArg::Mp3 => match (args.vbr, args.bitrate) {
            (Some(quality), _) => {
                if quality > 9 {
                    bail!("--vbr {quality} is out of range (allowed 0 ..= 9)");
                }
                OutputFormat::Mp3 {
                    rate: Mp3Rate::Vbr { quality },
                }
            }
            // A bitrate the user chose is kept or fails; without one, the default adapts to
            // the input's sample rate.
            (None, Some(kbps)) => OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps },
            },
            (None, None) => OutputFormat::Mp3 {
                rate: Mp3Rate::default(),
            },
        },
        FormatArg::Wav => OutputFormat::Wav {
            sample_format: match args.wav_format.unwrap_or(WavFormatArg::Pcm16) {
                WavFormatArg::Pcm16 => WavSampleFormat::Pcm16,
                WavFormatArg::Pcm24 => WavSampleFormat::Pcm24,
                WavFormatArg::Float32 => WavSampleFormat::Float32,
            },
        },
        FormatArg::Flac => {
            let bits = args.flac_bits.unwrap_or(16);
            if bits != 16 && bits != 24 {
                bail!("--flac-bits {bits} is not supported (allowed 16 or 24)");
            }
            OutputFormat::Flac {
                bits_per_sample: bits,
            }
        }
    }))
}

/// `--preset`'s values, each with its one-line description, from the job layer's list.
fn preset_values() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(job::PRESET_NAMES.iter().map(|&name| {
        clap::builder::PossibleValue::new(name).help(job::preset_summary(name).unwrap_or_default())
    }))
}

/// `longwave stages`: the stage catalogue as text or JSON.
fn stages(args: &StagesArgs) -> Result<()> {
    let catalogue = job::stage_catalogue();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&catalogue)?);
        return Ok(());
    }
    println!("Stages of a chain ([{{\"type\": \"…\", parameter: value, …}}, …]); unset parameters take their default.\n");
    for stage in &catalogue {
        println!("{} — {}", stage.type_name, stage.summary);
        for param in &stage.params {
            let mut line = format!("    {:<18} default {}", param.name, param.default);
            if let Some((min, max)) = param.range {
                line.push_str(&format!(", {min} ..= {max}"));
            }
            if let Some(choices) = &param.choices {
                line.push_str(&format!(", {choices}"));
            }
            println!("{line}");
        }
        println!();
    }
    println!("Presets (--preset, or {{\"preset\": …}} in a job):");
    for name in job::PRESET_NAMES {
        println!(
            "    {:<18} {}",
            name,
            job::preset_summary(name).unwrap_or_default()
        );
    }
    Ok(())
}

fn analyze(args: AnalyzeArgs) -> Result<()> {
    let input = ObjectRef::parse(&args.input).map_err(|e| UsageError(e.to_string()))?;
    let s3 = match &input {
        ObjectRef::S3 { .. } => Some(S3Context::from_env(S3Settings::default())?),
        ObjectRef::File(_) => None,
    };
    let analysis = job::analyze_input(&input, s3.as_ref(), DecodeOptions::default())?;
    let silence = if args.silence {
        let params: SilenceParams = match &args.silence_params {
            Some(json) => serde_json::from_str(json).context("invalid --silence-params")?,
            None => SilenceParams {
                threshold_db: Threshold::Auto(AutoKeyword::Auto),
                ..SilenceParams::default()
            },
        };
        Some(job::analyze_silence(
            &input,
            s3.as_ref(),
            DecodeOptions::default(),
            params,
        )?)
    } else {
        None
    };
    if args.json {
        let mut value = serde_json::to_value(&analysis)?;
        if let (Some(silence), Some(object)) = (silence, value.as_object_mut()) {
            object.insert("silence".to_string(), silence);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let db = |v: Option<f64>| v.map_or("-inf".to_string(), |v| format!("{v:.2}"));
    println!("file:        {}", analysis.path);
    println!("container:   {}", analysis.container);
    println!("codec:       {}", analysis.codec);
    println!(
        "duration:    {:.3} s ({} frames)",
        analysis.duration_s, analysis.frames
    );
    println!("sample rate: {} Hz", analysis.sample_rate);
    println!("channels:    {}", analysis.channels);
    println!("peak:        {} dBFS", db(analysis.peak_dbfs));
    println!("rms:         {} dBFS", db(analysis.rms_dbfs));
    if analysis.skipped_packets > 0 {
        println!("skipped:     {} bad packets", analysis.skipped_packets);
    }
    if let Some(silence) = silence {
        print_silence(&silence);
    }
    Ok(())
}

fn print_silence(report: &serde_json::Value) {
    let threshold = report["threshold_db"]
        .as_f64()
        .map_or("none (all silent)".to_string(), |t| format!("{t:.1} dBFS"));
    let how = if report["threshold_auto"].as_bool() == Some(true) {
        " (suggested)"
    } else {
        ""
    };
    println!("silence:     threshold {threshold}{how}");
    if let Some(auto) = report.get("auto") {
        let p = |k: &str| {
            auto[k]
                .as_f64()
                .map_or("-inf".into(), |v| format!("{v:.1}"))
        };
        println!(
            "levels:      P10 {} / P50 {} / P90 {} dBFS (30 ms frames)",
            p("p10_db"),
            p("p50_db"),
            p("p90_db")
        );
    }
    println!(
        "silences:    {} ranges, {:.2} s in all",
        report["silent_ranges_count"],
        report["silence_seconds"].as_f64().unwrap_or(0.0)
    );
    let ranges = |key: &str| -> String {
        report[key]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|r| format!("[{}, {}]", r[0], r[1]))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    println!("silent ms:   {}", ranges("silent_ranges_ms"));
    println!("sound ms:    {}", ranges("nonsilent_ranges_ms"));
}

fn generate(args: GenerateArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 86_400.0) {
        bail!(
            "--seconds {} is out of range (allowed 0 < s <= 86400)",
            args.seconds
        );
    }
    let spec = StreamSpec::new(args.sample_rate, args.channels)
        .map_err(|reason| anyhow::anyhow!("cannot generate: {reason}"))?;
    demo::write_speech_like(&args.output, spec, args.seconds, args.seed, None)?;
    eprintln!("wrote {} ({:.1} s)", args.output.display(), args.seconds);
    Ok(())
}

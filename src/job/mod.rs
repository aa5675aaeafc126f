//! Jobs: what to do (the chain and output specification, parsed and validated from JSON or a
//! preset; [`JobRequest`], the one typed request every way of asking for a job on S3 becomes),
//! and the runner that wires decode → chain → encode with bounded channels.
//!
//! `job` is the one layer that knows every other layer. Parsing is strict: unknown stage types,
//! unknown fields and out-of-range values are rejected with a message naming the field and the
//! allowed range.

mod analyze;
mod catalogue;
mod envelope;
mod error;
mod identity;
mod manifest;
pub mod memory;
mod outputs;
pub mod request;
mod runner;
mod spec;
pub mod status;
mod targets;
mod task;

pub use analyze::{
    analyze_file, analyze_input, analyze_silence, plot_data, Analysis, PlotData, SilenceMarks,
    PLOT_PIECES_CAP,
};
pub use catalogue::{stage_catalogue, ParamDoc, StageDoc, STAGE_TYPES};
pub use envelope::{Envelope, EnvelopeColumns};
pub use error::JobError;
pub use manifest::{InputSummary, Manifest, OutputEntry, StageReport, WaveformEntry};
pub use request::{
    default_output_prefix, JobPlan, JobRequest, JobSpec, OneShotParams, PlannedJob, RequestError,
    Work,
};
pub use runner::{
    format_for, manifest_path_for, run, run_local, run_located, waveform_path_for, Job, LocalJob,
    NoProgress, OutputTarget, Progress, RunnerConfig,
};
pub use spec::{
    cap_echo, cap_echo_at, parse_chain, preset, preset_summary, BuildContext, Preset, SpecError,
    StageSpec, MAX_ANALYSIS_PASSES, MAX_CHAIN_JSON_BYTES, MAX_STAGES, PRESET_NAMES,
};
pub use task::{plan_from_env, request_from_env};

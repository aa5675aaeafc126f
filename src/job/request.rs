//! The typed job request: what every way of asking for a job on S3 becomes, and the one planner
//! that turns it into jobs.
//!
//! Four shapes ask for work: the `task` command's environment (`S3_BUCKET`, `S3_KEY`,
//! `PROCESSING_PARAMS`, …), the same variables in a legacy queue message, this project's job
//! message (`{"input": "s3://…", "preset": …}`) and S3/EventBridge events (the worker supplies
//! the parameters). Each is parsed where it arrives (`job::task`, `worker::message`) into one
//! [`JobRequest`]; parsing validates everything and names fields as the user wrote them
//! (`PROCESSING_PARAMS.bitrate` in a task, `bitrate` in a job message, see [`Fields`]), so
//! [`JobRequest::plan`] cannot fail and every shape gets the same presets, format rules and
//! output routing by construction.

use super::spec::{cap_echo_at, parse_chain, preset, StageSpec};
use crate::dsp::{AutoKeyword, KeepSilence, SilenceAction, SilenceMode, SilenceParams, Threshold};
use crate::encode::{Mp3Rate, OutputFormat, WaveformSettings};
use crate::io::ObjectRef;
use serde::Deserialize;
use serde_json::Value;

/// One job request, validated: an input object, what to do with it, and where outputs go.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// The input object (`s3://bucket/key`).
    pub input: ObjectRef,
    /// What to do with it.
    pub work: Work,
    /// The prefix (`s3://bucket/prefix/`) the outputs go under, unless the work names its own
    /// output.
    pub output_folder: ObjectRef,
}

/// What a request asks to be done.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A preset or chain, with an optional output format and location.
    Spec(JobSpec),
    /// The legacy one-shot service's parameters.
    OneShot(OneShotParams),
}

impl Default for Work {
    /// The legacy defaults, which an empty `PROCESSING_PARAMS` means: a one-shot silence split.
    fn default() -> Self {
        Work::OneShot(OneShotParams::default())
    }
}

/// A job spec: `{"preset": "8d"}` or `{"chain": […], "format": "mp3", "bitrate": 320,
/// "output": "s3://…"}`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The preset's name, when the job named one.
    pub preset: Option<String>,
    /// The stages (the preset's, or the job's own chain).
    pub chain: Vec<StageSpec>,
    /// The output format; `None` = the input's format family.
    pub format: Option<OutputFormat>,
    /// Where the output goes (an object, or a prefix for pieces); `None` = under the request's
    /// output folder.
    pub output: Option<ObjectRef>,
    /// Waveform data of the input to write beside the outputs (`"waveform": {…}`).
    pub waveform: Option<WaveformSettings>,
}

/// The legacy one-shot service's parameters, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OneShotParams {
    /// The silence split (pydub semantics) to run; `None` = transcode only
    /// (`createOneShot: false`).
    pub split: Option<SilenceParams>,
    /// Copy the original next to the outputs (`preserveOriginal`).
    pub preserve_original: bool,
    /// One job per format, in the order asked; empty = the input's format family.
    pub formats: Vec<OutputFormat>,
}

impl Default for OneShotParams {
    fn default() -> Self {
        Self {
            split: Some(one_shot_split(
                Threshold::Db(DEFAULT_THRESHOLD_DB),
                DEFAULT_MIN_SILENCE_MS,
            )),
            preserve_original: false,
            formats: Vec::new(),
        }
    }
}

/// The legacy service's default `silenceThreshold`, in dBFS.
const DEFAULT_THRESHOLD_DB: f64 = -30.0;
/// The legacy service's default `minSilenceDuration`, in ms.
const DEFAULT_MIN_SILENCE_MS: f64 = 750.0;

/// The one-shot split: pydub's `split_on_silence` with 50 ms of silence kept on each side.
fn one_shot_split(threshold_db: Threshold, min_silence_ms: f64) -> SilenceParams {
    SilenceParams {
        mode: SilenceMode::Pydub,
        threshold_db,
        min_silence_ms,
        keep_silence_ms: KeepSilence::Ms(50.0),
        action: SilenceAction::Split,
        ..SilenceParams::default()
    }
}

/// Where a request's fields sit in what the user wrote, so that errors name them as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// The name of the object as a whole.
    whole: &'static str,
    /// Prepended to a field's name.
    prefix: &'static str,
}

impl Fields {
    /// Inside `PROCESSING_PARAMS` (task mode, legacy messages, the worker's event parameters).
    pub const PROCESSING_PARAMS: Fields = Fields {
        whole: "PROCESSING_PARAMS",
        prefix: "PROCESSING_PARAMS.",
    };
    /// At the top level of a job message.
    pub const JOB_MESSAGE: Fields = Fields {
        whole: "job",
        prefix: "",
    };

    /// The path of the field `name`.
    fn field(self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Why a request cannot be accepted. Every message names the variable or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A required environment variable is missing or blank (task mode).
    #[error("environment variable {0} is required")]
    MissingVariable(&'static str),
    /// The input's location is unusable: the message or environment itself is wrong.
    #[error("{field}: {reason}")]
    Input {
        /// The variable or field, e.g. `S3_BUCKET/S3_KEY`.
        field: String,
        /// Why.
        reason: String,
    },
    /// What to do, or where to write, is unusable: preset, chain, format, bitrate, output,
    /// processing parameters.
    #[error("{field}: {reason}")]
    Invalid {
        /// The variable or field, e.g. `PROCESSING_PARAMS.silenceThreshold` or `bitrate`.
        field: String,
        /// Why.
        reason: String,
    },
}

impl RequestError {
    /// Low-cardinality kind (a metric label): `invalid_message` when the request's input is
    /// missing or malformed, `invalid_spec` when what it asks for is.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::MissingVariable(_) | RequestError::Input { .. } => "invalid_message",
            RequestError::Invalid { .. } => "invalid_spec",
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> RequestError {
    RequestError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A value of the user's in an error: at most 64 characters, on one line.
fn short(text: &str) -> String {
    cap_echo_at(text, 64)
}

/// Foreign error text (serde echoes unknown field names): at most 512 characters, on one line.
fn bounded(text: &str) -> String {
    cap_echo_at(text, 512)
}

/// The fields of a job spec as written; a job message has `input` besides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFields {
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    chain: Option<Value>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    bitrate: Option<u32>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    waveform: Option<Value>,
}

impl SpecFields {
    /// Reads the fields of `value` (an object), rejecting unknown ones.
    ///
    /// # Errors
    /// [`RequestError::Invalid`] on the object as a whole (`job: unknown field …`).
    pub fn from_value(value: Value, at: Fields) -> Result<Self, RequestError> {
        SpecFields::deserialize(value).map_err(|e| invalid(at.whole, bounded(&e.to_string())))
    }
}

impl JobSpec {
    /// Validates a job spec's fields; `at` says how its fields are named in errors.
    ///
    /// # Errors
    /// [`RequestError::Invalid`] naming the field: neither or both of preset and chain, an
    /// unknown preset, a chain the vocabulary rejects, an unknown format, a bitrate that is not
    /// an MP3 CBR rate or given with another format, a local or malformed output.
    pub fn from_fields(fields: SpecFields, at: Fields) -> Result<Self, RequestError> {
        let (chain, preset_format, preset_name) = match (fields.preset, fields.chain) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    at.whole,
                    "give either \"preset\" or \"chain\", not both",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    at.whole,
                    "give \"preset\" (e.g. \"8d\", \"transcode\") or \"chain\"",
                ))
            }
            (Some(name), None) => {
                let found = preset(&name)
                    .map_err(|e| invalid(&at.field("preset"), bounded(&e.to_string())))?;
                (found.chain, found.format, Some(found.name.to_owned()))
            }
            (None, Some(chain)) => {
                let chain = parse_chain(&chain.to_string())
                    .map_err(|e| invalid(&at.field("chain"), bounded(&e.to_string())))?;
                (chain, None, None)
            }
        };
        let named = |name: &str| {
            OutputFormat::from_name(name).ok_or_else(|| {
                invalid(
                    &at.field("format"),
                    format!(
                        "unknown output format {:?} (allowed {})",
                        short(name),
                        OutputFormat::NAMES
                    ),
                )
            })
        };
        let format = match (fields.format.as_deref(), fields.bitrate) {
            (name, Some(kbps)) => {
                let rate =
                    Mp3Rate::cbr(kbps).map_err(|reason| invalid(&at.field("bitrate"), reason))?;
                // As on the command line, a bitrate alone implies MP3.
                match name.map(named).transpose()? {
                    None | Some(OutputFormat::Mp3 { .. }) => Some(OutputFormat::Mp3 { rate }),
                    Some(other) => {
                        return Err(invalid(
                            &at.field("bitrate"),
                            format!("applies to mp3 only, but format is {}", other.name()),
                        ))
                    }
                }
            }
            (Some(name), None) => Some(named(name)?),
            (None, None) => preset_format,
        };
        let output = match fields.output {
            None => None,
            Some(text) => Some(s3_output(&text, &at.field("output"))?),
        };
        let waveform = fields
            .waveform
            .map(|value| waveform_settings(value, &at.field("waveform")))
            .transpose()?;
        Ok(JobSpec {
            preset: preset_name,
            chain,
            format,
            output,
            waveform,
        })
    }
}

/// The `waveform` object of a job spec (`{}` = the defaults), validated; errors name the field
/// (`waveform.bits: 12 is not 8 or 16`).
fn waveform_settings(value: Value, field: &str) -> Result<WaveformSettings, RequestError> {
    let settings = WaveformSettings::deserialize(value)
        .map_err(|e| invalid(field, bounded(&e.to_string())))?;
    settings.validate().map_err(|reason| {
        // `validate` says `name: why`; the field becomes `waveform.name`.
        match reason.split_once(": ") {
            Some((name, why)) => invalid(&format!("{field}.{name}"), why),
            None => invalid(field, reason),
        }
    })?;
    Ok(settings)
}

/// An output location written by the user: S3 only (a job from a queue or a task never writes
/// to the worker's own disk on a message's word).
fn s3_output(text: &str, field: &str) -> Result<ObjectRef, RequestError> {
    match ObjectRef::parse(text) {
        Ok(s3 @ ObjectRef::S3 { .. }) => Ok(s3),
        Ok(ObjectRef::File(_)) => Err(invalid(
            field,
            format!(
                "{:?} is a local path; this job writes to S3 only (s3://bucket/key or \
                 s3://bucket/prefix/)",
                short(text)
            ),
        )),
        Err(e) => Err(invalid(field, bounded(&e.to_string()))),
    }
}

/// The legacy parameter object as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LegacyFields {
    #[serde(default = "yes")]
    create_one_shot: bool,
    #[serde(default = "default_threshold")]
    silence_threshold: f64,
    #[serde(default = "default_min_silence")]
    min_silence_duration: f64,
    #[serde(default)]
    auto_detect_threshold: bool,
    #[serde(default)]
    preserve_original: bool,
    #[serde(default)]
    output_formats: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_threshold() -> f64 {
    DEFAULT_THRESHOLD_DB
}
fn default_min_silence() -> f64 {
    DEFAULT_MIN_SILENCE_MS
}

impl OneShotParams {
    /// Validates the legacy parameter object (inside `PROCESSING_PARAMS`).
    ///
    /// # Errors
    /// [`RequestError::Invalid`] naming the field: an unknown field, a threshold outside
    /// −90 ..= −10 dB, a minimum silence outside 50 ..= 10,000 ms, an unknown format.
    pub fn from_value(value: Value) -> Result<Self, RequestError> {
        let at = Fields::PROCESSING_PARAMS;
        let legacy: LegacyFields = serde_json::from_value(value)
            .map_err(|e| invalid(at.whole, bounded(&e.to_string())))?;
        let in_range = |name: &'static str, value: f64, (min, max): (f64, f64)| {
            crate::dsp::ParamError::check(name, value, min, max).map_err(|e| {
                invalid(
                    &at.field(name),
                    format!(
                        "{} is out of range (allowed {} ..= {})",
                        crate::dsp::short_number(e.value),
                        e.min,
                        e.max
                    ),
                )
            })
        };
        in_range("silenceThreshold", legacy.silence_threshold, (-90.0, -10.0))?;
        in_range(
            "minSilenceDuration",
            legacy.min_silence_duration,
            (50.0, 10_000.0),
        )?;
        let mut formats = Vec::new();
        for (i, name) in legacy.output_formats.iter().enumerate() {
            let format = OutputFormat::from_name(name).ok_or_else(|| {
                invalid(
                    &at.field(&format!("outputFormats[{i}]")),
                    format!(
                        "unknown output format {:?} (allowed {})",
                        short(name),
                        OutputFormat::NAMES
                    ),
                )
            })?;
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        let split = legacy.create_one_shot.then(|| {
            one_shot_split(
                if legacy.auto_detect_threshold {
                    Threshold::Auto(AutoKeyword::Auto)
                } else {
                    Threshold::Db(legacy.silence_threshold)
                },
                legacy.min_silence_duration,
            )
        });
        if let Some(split) = &split {
            // The ranges above are inside the stage's own; checked again so the two can't drift.
            StageSpec::Silence(split.clone())
                .validate(0)
                .map_err(|e| invalid(at.whole, e.to_string()))?;
        }
        Ok(OneShotParams {
            split,
            preserve_original: legacy.preserve_original,
            formats,
        })
    }
}

impl Work {
    /// `PROCESSING_PARAMS` as text; blank means the legacy defaults.
    ///
    /// # Errors
    /// As [`Work::from_params`], or when the text is not JSON.
    pub fn from_params_text(text: &str) -> Result<Work, RequestError> {
        if text.trim().is_empty() {
            return Ok(Work::default());
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            invalid(
                Fields::PROCESSING_PARAMS.whole,
                format!("not valid JSON: {}", bounded(&e.to_string())),
            )
        })?;
        Work::from_params(value)
    }

    /// `PROCESSING_PARAMS` as JSON: a job spec when it has `preset` or `chain`, the legacy
    /// parameter object otherwise.
    ///
    /// # Errors
    /// A [`RequestError::Invalid`] naming the field inside `PROCESSING_PARAMS`.
    pub fn from_params(value: Value) -> Result<Work, RequestError> {
        let at = Fields::PROCESSING_PARAMS;
        let is_spec = value
            .as_object()
            .is_some_and(|o| o.contains_key("preset") || o.contains_key("chain"));
        if is_spec {
            let fields = SpecFields::from_value(value, at)?;
            JobSpec::from_fields(fields, at).map(Work::Spec)
        } else {
            OneShotParams::from_value(value).map(Work::OneShot)
        }
    }
}

/// The input object `s3://bucket/key`; `field` names where the two came from.
///
/// # Errors
/// [`RequestError::Input`] when the bucket or key is not valid.
pub fn input_object(bucket: &str, key: &str, field: &str) -> Result<ObjectRef, RequestError> {
    ObjectRef::parse(&format!("s3://{bucket}/{key}")).map_err(|e| RequestError::Input {
        field: field.to_owned(),
        reason: bounded(&e.to_string()),
    })
}

/// The prefix outputs go under: `prefix` (made to end in `/`), or the input's default
/// ([`default_output_prefix`]), in `bucket`, or the input's bucket.
///
/// # Errors
/// [`RequestError::Invalid`] on `OUTPUT_BUCKET/OUTPUT_PREFIX` when they make no valid location.
pub fn output_folder(
    input_bucket: &str,
    key: &str,
    bucket: Option<&str>,
    prefix: Option<&str>,
) -> Result<ObjectRef, RequestError> {
    let bucket = bucket.unwrap_or(input_bucket);
    let mut prefix = prefix.map_or_else(|| default_output_prefix(key), str::to_owned);
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    ObjectRef::parse(&format!("s3://{bucket}/{prefix}"))
        .map_err(|e| invalid("OUTPUT_BUCKET/OUTPUT_PREFIX", bounded(&e.to_string())))
}

/// The last segment of `key` and that name without its extension (the whole name when it has
/// no stem, as `.wav`). The worker's per-input output folders use it too.
pub fn file_and_stem(key: &str) -> (&str, &str) {
    let file = key.rsplit('/').next().unwrap_or(key);
    let stem = match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file,
    };
    (file, stem)
}

/// The default output prefix for an input key: `public/unprocessed/{user}/{file}` →
/// `public/processed/{user}/{stem}/`, `input/{path}/{file}` → `processed/{path}/{stem}/`,
/// anything else `processed/{dir}/{stem}/`.
pub fn default_output_prefix(key: &str) -> String {
    let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let (_, stem) = file_and_stem(key);
    // Whole path segments only: `inputs/x` is not under `input`.
    let under = |root: &str| {
        dir.strip_prefix(root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let mapped = if let Some(rest) = under("public/unprocessed") {
        format!("public/processed{rest}")
    } else if let Some(rest) = under("input") {
        format!("processed{rest}")
    } else if dir.is_empty() {
        "processed".to_string()
    } else {
        format!("processed/{dir}")
    };
    format!("{mapped}/{stem}/")
}

/// The extension of the format a job without one writes for an input named `file`, chosen as
/// the runner's `format_for` chooses the family (MP3 → MP3, WAV → WAV, anything else → FLAC),
/// so the output's name says what it holds; the name's extension then fixes the format.
fn family_extension(file: &str) -> &'static str {
    let ext = file
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp3") => "mp3",
        Some("wav") => "wav",
        _ => "flac",
    }
}

/// What a request comes to: the input, one job per output, an optional copy of the original.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    /// The input object.
    pub input: ObjectRef,
    /// One job per output (a legacy request asks for one per format).
    pub jobs: Vec<PlannedJob>,
    /// Where to copy the original (server-side), when `preserveOriginal` is set.
    pub preserve_original: Option<ObjectRef>,
}

/// One job of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedJob {
    /// Output object, or prefix (ending in `/`) for pieces.
    pub output: ObjectRef,
    /// The chain.
    pub chain: Vec<StageSpec>,
    /// The output format (`None` = the input's family).
    pub format: Option<OutputFormat>,
    /// The preset's name, if any (`oneshot`/`transcode` for legacy requests).
    pub preset: Option<String>,
    /// Waveform data to write beside the outputs.
    pub waveform: Option<WaveformSettings>,
}

impl JobRequest {
    /// The jobs this request asks for and where each writes.
    pub fn plan(&self) -> JobPlan {
        let key = match &self.input {
            ObjectRef::S3 { key, .. } => key.as_str(),
            ObjectRef::File(_) => "",
        };
        let (file, stem) = file_and_stem(key);
        let folder = &self.output_folder;
        let named = |format: Option<OutputFormat>| {
            let ext = format.map_or_else(|| family_extension(file), |f| f.extension());
            format!("{stem}.{ext}")
        };
        match &self.work {
            Work::Spec(spec) => {
                let splits = spec.chain.iter().any(StageSpec::splits);
                let output = match &spec.output {
                    Some(output) => output.clone(),
                    None if splits => folder.clone(),
                    None => folder.join(&named(spec.format)),
                };
                JobPlan {
                    input: self.input.clone(),
                    jobs: vec![PlannedJob {
                        output,
                        chain: spec.chain.clone(),
                        format: spec.format,
                        preset: spec.preset.clone(),
                        waveform: spec.waveform,
                    }],
                    preserve_original: None,
                }
            }
            Work::OneShot(params) => {
                let formats: Vec<Option<OutputFormat>> = if params.formats.is_empty() {
                    vec![None] // the input's format family, as the one-shot service did
                } else {
                    params.formats.iter().copied().map(Some).collect()
                };
                // Several formats: each in its own sub-folder named by its extension.
                let several = formats.len() > 1;
                let place = |format: Option<OutputFormat>, name: &str| match (several, format) {
                    (true, Some(f)) => folder.join(&format!("{}/{name}", f.extension())),
                    _ => folder.join(name),
                };
                let jobs = formats
                    .into_iter()
                    .map(|format| match &params.split {
                        Some(split) => PlannedJob {
                            // The pieces go in the folder itself.
                            output: place(format, ""),
                            chain: vec![StageSpec::Silence(split.clone())],
                            format,
                            preset: Some("oneshot".to_owned()),
                            waveform: None,
                        },
                        None => PlannedJob {
                            output: place(format, &named(format)),
                            chain: Vec::new(),
                            format,
                            preset: Some("transcode".to_owned()),
                            waveform: None,
                        },
                    })
                    .collect();
                JobPlan {
                    input: self.input.clone(),
                    jobs,
                    preserve_original: params
                        .preserve_original
                        .then(|| folder.join(&format!("original/{file}"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, params: &str) -> JobRequest {
        JobRequest {
            input: input_object("media", key, "S3_KEY").unwrap(),
            work: Work::from_params_text(params).unwrap(),
            output_folder: output_folder("media", key, None, None).unwrap(),
        }
    }

    #[test]
    fn default_prefix_mapping() {
        assert_eq!(
            default_output_prefix("public/unprocessed/u1/rec.m4a"),
            "public/processed/u1/rec/"
        );
        assert_eq!(default_output_prefix("input/a/b.wav"), "processed/a/b/");
        assert_eq!(default_output_prefix("x.mp3"), "processed/x/");
        assert_eq!(default_output_prefix("other/x.mp3"), "processed/other/x/");
        // Whole segments only.
        assert_eq!(
            default_output_prefix("inputs/x/a.mp3"),
            "processed/inputs/x/a/"
        );
        assert_eq!(
            default_output_prefix("public/unprocessedX/a.mp3"),
            "processed/public/unprocessedX/a/"
        );
    }

    #[test]
    fn empty_params_are_the_legacy_defaults() {
        assert_eq!(Work::from_params_text(" ").unwrap(), Work::default());
        assert_eq!(Work::from_params_text("{}").unwrap(), Work::default());
        let plan = request("in/a.wav", "").plan();
        assert_eq!(plan.jobs.len(), 1);
        assert_eq!(
            plan.jobs[0].output.to_string(),
            "s3://media/processed/in/a/"
        );
        assert_eq!(plan.jobs[0].preset.as_deref(), Some("oneshot"));
        assert_eq!(
            plan.jobs[0].chain,
            preset("oneshot").unwrap().chain,
            "the legacy defaults are the oneshot preset"
        );
    }

    #[test]
    fn one_vocabulary_for_formats_and_bitrates_whatever_the_shape() {
        let spec = |json: &str, at: Fields| {
            let value: Value = serde_json::from_str(json).unwrap();
            SpecFields::from_value(value, at).and_then(|f| JobSpec::from_fields(f, at))
        };
        for (at, prefix) in [
            (Fields::PROCESSING_PARAMS, "PROCESSING_PARAMS."),
            (Fields::JOB_MESSAGE, ""),
        ] {
            let err = spec(r#"{"preset":"8d","bitrate":100}"#, at).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{prefix}bitrate: 100 kbps is not an MP3 CBR rate")),
                "{err}"
            );
            let err = spec(r#"{"chain":[],"format":"FLAC","bitrate":128}"#, at).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{prefix}bitrate: applies to mp3 only, but format is flac")
            );
            let err = spec(r#"{"preset":"9d"}"#, at).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{prefix}preset: unknown preset \"9d\"")),
                "{err}"
            );
            let ok = spec(r#"{"preset":"transcode","bitrate":128}"#, at).unwrap();
            assert_eq!(
                ok.format,
                Some(OutputFormat::Mp3 {
                    rate: Mp3Rate::Cbr { kbps: 128 }
                })
            );
        }
    }
}

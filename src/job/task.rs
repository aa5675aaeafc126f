//! Task mode: one job described by environment variables, as an ECS task receives it
//! (`S3_BUCKET`, `S3_KEY`, `PROCESSING_PARAMS`, optional `OUTPUT_BUCKET` / `OUTPUT_PREFIX`).
//!
//! `PROCESSING_PARAMS` is either the legacy one-shot service's parameter object
//! (`createOneShot`, `silenceThreshold`, `minSilenceDuration`, `autoDetectThreshold`,
//! `preserveOriginal`, `outputFormats`) or a full job spec (`{"preset": "8d"}`,
//! `{"chain": [...], "format": "mp3"}`). Everything is parsed and validated here, before any
//! byte of the input is read.

use super::{parse_chain, preset, SpecError, StageSpec};
use crate::dsp::{KeepSilence, SilenceAction, SilenceMode, SilenceParams, Threshold};
use crate::encode::{Mp3Rate, OutputFormat, WavSampleFormat, MP3_CBR_KBPS};
use crate::io::ObjectRef;
use serde::Deserialize;

/// Everything a task needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    /// The input object.
    pub input: ObjectRef,
    /// One job per requested output format: (output location, chain, format, preset name).
    pub jobs: Vec<TaskJob>,
    /// Where to copy the original (server-side), when `preserveOriginal` is set.
    pub preserve_original: Option<ObjectRef>,
}

/// One job of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskJob {
    /// Output object, or prefix (ending in `/`) for pieces.
    pub output: ObjectRef,
    /// The chain.
    pub chain: Vec<StageSpec>,
    /// The output format (`None` = the input's family).
    pub format: Option<OutputFormat>,
    /// The preset's name, if any.
    pub preset: Option<String>,
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

/// The legacy parameter object of the one-shot service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LegacyParams {
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
    -30.0
}
fn default_min_silence() -> f64 {
    750.0
}

/// A full job spec in `PROCESSING_PARAMS`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullSpec {
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    chain: Option<serde_json::Value>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    bitrate: Option<u32>,
    #[serde(default)]
    output: Option<String>,
}

/// Why a task's environment is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A required variable is missing or empty.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// `PROCESSING_PARAMS` (or another variable) is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The variable or field at fault, e.g. `PROCESSING_PARAMS.silenceThreshold`.
        field: String,
        /// Why.
        reason: String,
    },
    /// The chain in a full spec was rejected.
    #[error("PROCESSING_PARAMS.chain: {0}")]
    Spec(#[from] SpecError),
}

fn invalid(field: &str, reason: impl Into<String>) -> TaskError {
    TaskError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn range(field: &str, value: f64, min: f64, max: f64) -> Result<(), TaskError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            &format!("PROCESSING_PARAMS.{field}"),
            format!("{value} is out of range (allowed {min} ..= {max})"),
        ))
    }
}

fn format_named(field: &str, name: &str, bitrate: Option<u32>) -> Result<OutputFormat, TaskError> {
    if bitrate.is_some() && !name.eq_ignore_ascii_case("mp3") {
        return Err(invalid(
            "PROCESSING_PARAMS.bitrate",
            format!("applies to mp3 only, but {field} is {name}"),
        ));
    }
    match name.to_ascii_lowercase().as_str() {
        // Without a bitrate: 192 kbps where the input's rate allows it (a default must work
        // on every input); a bitrate that was asked for is kept or fails.
        "mp3" => Ok(OutputFormat::Mp3 {
            rate: bitrate.map_or_else(Mp3Rate::default, |kbps| Mp3Rate::Cbr { kbps }),
        }),
        "wav" => Ok(OutputFormat::Wav {
            sample_format: WavSampleFormat::Pcm16,
        }),
        "flac" => Ok(OutputFormat::Flac {
            bits_per_sample: 16,
        }),
        other => Err(invalid(
            field,
            format!("unknown output format {other:?} (allowed wav, flac, mp3)"),
        )),
    }
}

/// The default output prefix for an input key: `public/unprocessed/{user}/{file}` →
/// `public/processed/{user}/{stem}/`, `input/{path}/{file}` → `processed/{path}/{stem}/`,
/// anything else `processed/{dir}/{stem}/`.
pub fn default_output_prefix(key: &str) -> String {
    let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let stem = if stem.is_empty() { file } else { stem };
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

/// Builds the task plan from the variables `get` returns (the process environment in
/// production, a map in tests).
///
/// # Errors
/// A [`TaskError`] naming the variable or field and the allowed values.
pub fn plan_from_env(get: impl Fn(&str) -> Option<String>) -> Result<TaskPlan, TaskError> {
    let non_empty = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
    let bucket = non_empty("S3_BUCKET").ok_or(TaskError::Missing("S3_BUCKET"))?;
    let key = non_empty("S3_KEY").ok_or(TaskError::Missing("S3_KEY"))?;
    let input = ObjectRef::parse(&format!("s3://{bucket}/{key}"))
        .map_err(|e| invalid("S3_BUCKET/S3_KEY", e.to_string()))?;
    let out_bucket = non_empty("OUTPUT_BUCKET").unwrap_or_else(|| bucket.clone());
    let mut out_prefix = non_empty("OUTPUT_PREFIX").unwrap_or_else(|| default_output_prefix(&key));
    if !out_prefix.ends_with('/') {
        out_prefix.push('/');
    }
    let base = ObjectRef::parse(&format!("s3://{out_bucket}/{out_prefix}"))
        .map_err(|e| invalid("OUTPUT_BUCKET/OUTPUT_PREFIX", e.to_string()))?;
    let file = key.rsplit('/').next().unwrap_or(&key).to_string();
    let stem = file
        .rsplit_once('.')
        .map_or(file.as_str(), |(s, _)| s)
        .to_string();

    let params = get("PROCESSING_PARAMS").unwrap_or_default();
    let value: serde_json::Value = if params.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&params)
            .map_err(|e| invalid("PROCESSING_PARAMS", format!("not valid JSON: {e}")))?
    };
    let is_full = value
        .as_object()
        .is_some_and(|o| o.contains_key("preset") || o.contains_key("chain"));
    if is_full {
        let spec: FullSpec = serde_json::from_value(value)
            .map_err(|e| invalid("PROCESSING_PARAMS", e.to_string()))?;
        let (chain, format, preset_name) = match (&spec.preset, &spec.chain) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "PROCESSING_PARAMS",
                    "give either preset or chain, not both",
                ))
            }
            (Some(name), None) => {
                let p = preset(name)?;
                (p.chain, p.format, Some(p.name.to_string()))
            }
            (None, Some(chain)) => (parse_chain(&chain.to_string())?, None, None),
            (None, None) => (Vec::new(), None, None),
        };
        if let Some(kbps) = spec.bitrate {
            // Checked here, before any byte of the input is read.
            if !MP3_CBR_KBPS.contains(&kbps) {
                return Err(invalid(
                    "PROCESSING_PARAMS.bitrate",
                    format!(
                        "{kbps} kbps is not an MP3 CBR rate (allowed {})",
                        MP3_CBR_KBPS.map(|k| k.to_string()).join(", ")
                    ),
                ));
            }
        }
        let format = match (&spec.format, spec.bitrate) {
            (Some(name), _) => Some(format_named(
                "PROCESSING_PARAMS.format",
                name,
                spec.bitrate,
            )?),
            // A bitrate alone implies MP3, as on the command line.
            (None, Some(_)) => Some(format_named(
                "PROCESSING_PARAMS.bitrate",
                "mp3",
                spec.bitrate,
            )?),
            (None, None) => format,
        };
        let splits = chain.iter().any(StageSpec::splits);
        let output = match &spec.output {
            Some(out) => match ObjectRef::parse(out)
                .map_err(|e| invalid("PROCESSING_PARAMS.output", e.to_string()))?
            {
                s3 @ ObjectRef::S3 { .. } => s3,
                ObjectRef::File(_) => {
                    return Err(invalid(
                        "PROCESSING_PARAMS.output",
                        format!(
                            "{out:?} is a local path; a task writes only to s3://bucket/key or \
                             s3://bucket/prefix/"
                        ),
                    ))
                }
            },
            None if splits => base.clone(),
            None => {
                let ext = format.map_or_else(|| family_extension(&file), |f| f.extension());
                base.join(&format!("{stem}.{ext}"))
            }
        };
        return Ok(TaskPlan {
            input,
            jobs: vec![TaskJob {
                output,
                chain,
                format,
                preset: preset_name,
            }],
            preserve_original: None,
        });
    }

    let legacy: LegacyParams =
        serde_json::from_value(value).map_err(|e| invalid("PROCESSING_PARAMS", e.to_string()))?;
    range("silenceThreshold", legacy.silence_threshold, -90.0, -10.0)?;
    range(
        "minSilenceDuration",
        legacy.min_silence_duration,
        50.0,
        10_000.0,
    )?;
    let mut formats = Vec::new();
    for (i, name) in legacy.output_formats.iter().enumerate() {
        let format = format_named(&format!("PROCESSING_PARAMS.outputFormats[{i}]"), name, None)?;
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    let formats: Vec<Option<OutputFormat>> = if formats.is_empty() {
        vec![None] // the input's format family, as the one-shot service did
    } else {
        formats.into_iter().map(Some).collect()
    };
    let several = formats.len() > 1;
    let mut jobs = Vec::new();
    for format in formats {
        let sub = |name: &str| match (several, format) {
            (true, Some(f)) => base.join(&format!("{}/{name}", f.extension())),
            _ => base.join(name),
        };
        if legacy.create_one_shot {
            let chain = vec![StageSpec::Silence(SilenceParams {
                mode: SilenceMode::Pydub,
                threshold_db: if legacy.auto_detect_threshold {
                    Threshold::Auto(crate::dsp::AutoKeyword::Auto)
                } else {
                    Threshold::Db(legacy.silence_threshold)
                },
                min_silence_ms: legacy.min_silence_duration,
                keep_silence_ms: KeepSilence::Ms(50.0),
                action: SilenceAction::Split,
                ..SilenceParams::default()
            })];
            let output = match (several, format) {
                (true, Some(f)) => base.join(&format!("{}/", f.extension())),
                _ => base.clone(),
            };
            jobs.push(TaskJob {
                output,
                chain,
                format,
                preset: Some("oneshot".to_string()),
            });
        } else {
            let ext = format.map_or_else(|| family_extension(&file), |f| f.extension());
            jobs.push(TaskJob {
                output: sub(&format!("{stem}.{ext}")),
                chain: Vec::new(),
                format,
                preset: Some("transcode".to_string()),
            });
        }
    }
    for job in &jobs {
        for (i, stage) in job.chain.iter().enumerate() {
            stage.validate(i)?;
        }
    }
    let preserve_original = legacy
        .preserve_original
        .then(|| base.join(&format!("original/{file}")));
    Ok(TaskPlan {
        input,
        jobs,
        preserve_original,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_outputs_and_bad_bitrates_are_refused_before_any_read() {
        let env = |params: &'static str| {
            move |name: &str| match name {
                "S3_BUCKET" => Some("media-in".to_owned()),
                "S3_KEY" => Some("input/a.wav".to_owned()),
                "PROCESSING_PARAMS" => Some(params.to_owned()),
                _ => None,
            }
        };
        let err = super::plan_from_env(env(r#"{"preset":"8d","output":"/etc/x.mp3"}"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PROCESSING_PARAMS.output:") && err.contains("local path"),
            "{err}"
        );
        let err = super::plan_from_env(env(r#"{"preset":"8d","bitrate":0}"#))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PROCESSING_PARAMS.bitrate: 0 kbps"),
            "{err}"
        );
        let err = super::plan_from_env(env(r#"{"chain":[],"format":"wav","bitrate":128}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("applies to mp3 only"), "{err}");
    }

    use super::*;
    use std::collections::HashMap;

    fn plan(vars: &[(&str, &str)]) -> Result<TaskPlan, TaskError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan_from_env(|k| map.get(k).cloned())
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
    fn legacy_params_map_to_a_oneshot_job_per_format() {
        let p = plan(&[
            ("S3_BUCKET", "media"),
            ("S3_KEY", "public/unprocessed/u1/talk.mp3"),
            (
                "PROCESSING_PARAMS",
                r#"{"createOneShot":true,"silenceThreshold":-35,"minSilenceDuration":1000,
                    "autoDetectThreshold":false,"preserveOriginal":true,"outputFormats":["mp3","wav"]}"#,
            ),
        ])
        .unwrap();
        assert_eq!(p.jobs.len(), 2);
        assert_eq!(
            p.jobs[0].output.to_string(),
            "s3://media/public/processed/u1/talk/mp3/"
        );
        let StageSpec::Silence(s) = &p.jobs[0].chain[0] else {
            panic!("expected a silence stage");
        };
        assert_eq!(s.threshold_db, Threshold::Db(-35.0));
        assert_eq!(s.min_silence_ms, 1000.0);
        assert_eq!(
            p.preserve_original.unwrap().to_string(),
            "s3://media/public/processed/u1/talk/original/talk.mp3"
        );
    }

    #[test]
    fn invalid_values_name_the_field_and_range() {
        let err = plan(&[
            ("S3_BUCKET", "media"),
            ("S3_KEY", "a.wav"),
            ("PROCESSING_PARAMS", r#"{"silenceThreshold":-200}"#),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("PROCESSING_PARAMS.silenceThreshold"), "{err}");
        assert!(err.contains("-90"), "{err}");
        let err = plan(&[
            ("S3_BUCKET", "media"),
            ("S3_KEY", "a.wav"),
            ("PROCESSING_PARAMS", r#"{"outputFormats":["ogg"]}"#),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("outputFormats[0]"), "{err}");
        let err = plan(&[
            ("S3_BUCKET", "media"),
            ("S3_KEY", "a.wav"),
            ("PROCESSING_PARAMS", r#"{"createOneshot":true}"#),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("createOneshot"), "{err}");
        let err = plan(&[("S3_KEY", "a.wav")]).unwrap_err().to_string();
        assert!(err.contains("S3_BUCKET"), "{err}");
    }

    #[test]
    fn full_spec_with_a_preset() {
        let p = plan(&[
            ("S3_BUCKET", "media"),
            ("S3_KEY", "input/u2/song.flac"),
            ("OUTPUT_BUCKET", "out-bucket"),
            ("PROCESSING_PARAMS", r#"{"preset":"8d"}"#),
        ])
        .unwrap();
        assert_eq!(p.jobs.len(), 1);
        assert_eq!(
            p.jobs[0].output.to_string(),
            "s3://out-bucket/processed/u2/song/song.mp3"
        );
        assert_eq!(p.jobs[0].preset.as_deref(), Some("8d"));
        let err = plan(&[
            ("S3_BUCKET", "media"),
            ("S3_KEY", "a.wav"),
            (
                "PROCESSING_PARAMS",
                r#"{"chain":[{"type":"gain","gain_db":99}]}"#,
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("chain[0].gain_db"), "{err}");
    }

    #[test]
    fn outputs_without_a_format_are_named_after_the_input_family_not_out() {
        // Before: `{"preset":"transcode"}` (no format) named the output `<stem>.out`, and the
        // legacy plan without outputFormats and without createOneShot did the same: an object
        // whose name says nothing of what it holds. The family is the runner's (`format_for`):
        // MP3 → MP3, WAV → WAV, anything else → FLAC; the name's extension then fixes it.
        for (key, params, expected) in [
            (
                "in/a.wav",
                r#"{"preset":"transcode"}"#,
                "s3://media/processed/in/a/a.wav",
            ),
            (
                "in/a.MP3",
                r#"{"preset":"transcode"}"#,
                "s3://media/processed/in/a/a.mp3",
            ),
            (
                "in/a.m4a",
                r#"{"chain":[{"type":"gain"}]}"#,
                "s3://media/processed/in/a/a.flac",
            ),
            (
                "in/a",
                r#"{"preset":"transcode"}"#,
                "s3://media/processed/in/a/a.flac",
            ),
            (
                "in/b.ogg",
                r#"{"createOneShot":false}"#,
                "s3://media/processed/in/b/b.flac",
            ),
            (
                "in/b.wav",
                r#"{"createOneShot":false}"#,
                "s3://media/processed/in/b/b.wav",
            ),
        ] {
            let p = plan(&[
                ("S3_BUCKET", "media"),
                ("S3_KEY", key),
                ("PROCESSING_PARAMS", params),
            ])
            .unwrap();
            assert_eq!(p.jobs[0].output.to_string(), expected, "{key} {params}");
        }
    }
}

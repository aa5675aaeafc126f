//! Task mode: one job described by environment variables, as an ECS task receives it
//! (`S3_BUCKET`, `S3_KEY`, `PROCESSING_PARAMS`, optional `OUTPUT_BUCKET` / `OUTPUT_PREFIX`).
//!
//! `PROCESSING_PARAMS` is either the legacy one-shot service's parameter object
//! (`createOneShot`, `silenceThreshold`, `minSilenceDuration`, `autoDetectThreshold`,
//! `preserveOriginal`, `outputFormats`) or a job spec (`{"preset": "8d"}`,
//! `{"chain": [...], "format": "mp3"}`). The variables become a [`JobRequest`], validated
//! before any byte of the input is read; a legacy queue message carries the same variables and
//! is read the same way (`worker::message`).

use super::request::{input_object, output_folder, JobPlan, JobRequest, RequestError, Work};

/// Reads the task's variables from `get` (the process environment in production, a map in
/// tests) into a validated request.
///
/// # Errors
/// A [`RequestError`] naming the variable or field and the allowed values.
pub fn request_from_env(get: impl Fn(&str) -> Option<String>) -> Result<JobRequest, RequestError> {
    let non_empty = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
    let bucket = non_empty("S3_BUCKET").ok_or(RequestError::MissingVariable("S3_BUCKET"))?;
    let key = non_empty("S3_KEY").ok_or(RequestError::MissingVariable("S3_KEY"))?;
    let input = input_object(&bucket, &key, "S3_BUCKET/S3_KEY")?;
    let output_folder = output_folder(
        &bucket,
        &key,
        non_empty("OUTPUT_BUCKET").as_deref(),
        non_empty("OUTPUT_PREFIX").as_deref(),
    )?;
    let work = Work::from_params_text(&get("PROCESSING_PARAMS").unwrap_or_default())?;
    Ok(JobRequest {
        input,
        work,
        output_folder,
    })
}

/// The plan of the task the variables describe: [`request_from_env`], planned.
///
/// # Errors
/// As [`request_from_env`].
pub fn plan_from_env(get: impl Fn(&str) -> Option<String>) -> Result<JobPlan, RequestError> {
    Ok(request_from_env(get)?.plan())
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
    use crate::dsp::Threshold;
    use crate::job::StageSpec;
    use std::collections::HashMap;

    fn plan(vars: &[(&str, &str)]) -> Result<JobPlan, RequestError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan_from_env(|k| map.get(k).cloned())
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

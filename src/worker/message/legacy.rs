//! Legacy task parameters as a queue message: the variables an ECS task of the one-shot service
//! received (`S3_BUCKET`, `S3_KEY`, `PROCESSING_PARAMS`, `OUTPUT_BUCKET`, `OUTPUT_PREFIX`), read
//! exactly as the `task` command reads them from its environment.

use super::fields::{invalid, object, opt_str, req_str, s3_input, short};
use super::{MessageError, Routing, WorkItem};
use crate::job::request::output_folder;
use crate::job::Work;
use serde_json::Value;

/// The variables of a legacy task message; anything else at its top level is rejected.
/// `sampleId` is the one-shot service's recording id: the key of the job's status record.
pub(super) const LEGACY_KEYS: [&str; 6] = [
    "S3_BUCKET",
    "S3_KEY",
    "PROCESSING_PARAMS",
    "OUTPUT_BUCKET",
    "OUTPUT_PREFIX",
    "sampleId",
];

/// A legacy message, planned as the task would be. `PROCESSING_PARAMS` may be the object itself
/// or a string holding it, as in the task's environment.
pub(super) fn legacy(value: &Value, routing: &Routing) -> Result<WorkItem, MessageError> {
    let obj = object(value, "")?;
    if let Some(unknown) = obj.keys().find(|k| !LEGACY_KEYS.contains(&k.as_str())) {
        return Err(invalid(
            &short(unknown),
            format!(
                "unknown field (legacy task parameters are {})",
                LEGACY_KEYS.join(", ")
            ),
        ));
    }
    let bucket = req_str(value, "", "S3_BUCKET")?;
    let key = req_str(value, "", "S3_KEY")?;
    let input = s3_input((bucket, "S3_BUCKET"), (key, "S3_KEY"))?;
    let output_folder = output_folder(
        bucket,
        key,
        opt_str(value, "", "OUTPUT_BUCKET")?,
        opt_str(value, "", "OUTPUT_PREFIX")?,
    )
    .map_err(MessageError::request)?;
    let work = match obj.get("PROCESSING_PARAMS") {
        None | Some(Value::Null) => Ok(Work::default()),
        Some(Value::String(text)) => Work::from_params_text(text),
        Some(params @ Value::Object(_)) => Work::from_params(params.clone()),
        Some(_) => {
            return Err(invalid(
                "PROCESSING_PARAMS",
                "expected a JSON object, or a string holding one",
            ))
        }
    }
    .map_err(MessageError::request)?;
    let status_key = match obj.get("sampleId") {
        None | Some(Value::Null) => None,
        Some(value) => Some(super::job_message::record_key(value.clone(), "sampleId")?),
    };
    let mut item = routing.item(input, work, output_folder, (None, None));
    item.status_key = status_key;
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::super::test_bodies::*;
    use crate::dsp::{SilenceAction, Threshold};
    use crate::job::{plan_from_env, StageSpec};

    const LEGACY_PARAMS: &str = r#"{"createOneShot":true,"silenceThreshold":-35,
        "minSilenceDuration":1000,"autoDetectThreshold":false,"preserveOriginal":true,
        "outputFormats":["mp3","wav"]}"#;

    #[test]
    fn legacy_params_as_object_or_string_give_the_same_plan() {
        let params: Value = serde_json::from_str(LEGACY_PARAMS).unwrap();
        let as_object = serde_json::json!({
            "S3_BUCKET": "media",
            "S3_KEY": "public/unprocessed/u1/talk.mp3",
            "PROCESSING_PARAMS": params,
            "OUTPUT_BUCKET": "media-out",
        });
        let mut as_string = as_object.clone();
        as_string["PROCESSING_PARAMS"] = LEGACY_PARAMS.into();

        let a = parse(&as_object.to_string()).unwrap();
        let b = parse(&as_string.to_string()).unwrap();
        assert_eq!(a.kind, MessageKind::Legacy);
        assert_eq!(a, b);
        let plan = &one_item(&a).plan;
        assert_eq!(plan.input, s3("media", "public/unprocessed/u1/talk.mp3"));
        let outputs: Vec<String> = plan.jobs.iter().map(|j| j.output.to_string()).collect();
        assert_eq!(
            outputs,
            [
                "s3://media-out/public/processed/u1/talk/mp3/",
                "s3://media-out/public/processed/u1/talk/wav/"
            ]
        );
        let StageSpec::Silence(silence) = &plan.jobs[0].chain[0] else {
            panic!("expected a silence stage: {:?}", plan.jobs[0].chain);
        };
        assert_eq!(silence.threshold_db, Threshold::Db(-35.0));
        assert_eq!(silence.min_silence_ms, 1000.0);
        assert_eq!(silence.action, SilenceAction::Split);
        assert_eq!(
            plan.preserve_original,
            Some(s3(
                "media-out",
                "public/processed/u1/talk/original/talk.mp3"
            ))
        );
        // Same plan as task mode given the same variables.
        let direct = plan_from_env(|name| match name {
            "S3_BUCKET" => Some("media".to_owned()),
            "S3_KEY" => Some("public/unprocessed/u1/talk.mp3".to_owned()),
            "PROCESSING_PARAMS" => Some(LEGACY_PARAMS.to_owned()),
            "OUTPUT_BUCKET" => Some("media-out".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(plan, &direct);
    }

    #[test]
    fn legacy_errors() {
        let err = parse(
            r#"{"S3_BUCKET":"media","S3_KEY":"a.wav","PROCESSING_PARAMS":{"silenceThreshold":5}}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert_eq!(
            err.to_string(),
            "PROCESSING_PARAMS.silenceThreshold: 5 is out of range (allowed -90 ..= -10)"
        );
        let err = parse(r#"{"S3_BUCKET":"media","S3_KEY":"a.wav","QUEUE":"x"}"#).unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert!(err.to_string().starts_with("QUEUE: unknown field"), "{err}");
        let err = parse(r#"{"S3_BUCKET":"media","PROCESSING_PARAMS":"{}"}"#).unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert_eq!(err.to_string(), "S3_KEY: missing");
        let err =
            parse(r#"{"S3_BUCKET":"media","S3_KEY":"a.wav","PROCESSING_PARAMS":[1]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PROCESSING_PARAMS: expected a JSON object, or a string holding one"
        );
        let err = parse(r#"{"S3_BUCKET":"media","S3_KEY":"a.wav","PROCESSING_PARAMS":"{oops"}"#)
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert!(
            err.to_string()
                .starts_with("PROCESSING_PARAMS: not valid JSON"),
            "{err}"
        );
    }
}

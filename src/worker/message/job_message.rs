//! This project's job message: `{"input": "s3://…", "preset" | "chain": …, "format", "bitrate",
//! "output", "waveform", "id"}` (`id` keys the job's status record). Its fields other than `input` are a job spec, read as `PROCESSING_PARAMS` is in
//! task mode ([`JobSpec::from_fields`]) but named as the message wrote them.

use super::fields::{invalid, short};
use super::{MessageError, Routing, WorkItem};
use crate::io::ObjectRef;
use crate::job::request::{Fields, SpecFields};
use crate::job::{JobSpec, Work};
use serde_json::Value;

/// A job message, planned. Unknown fields are rejected, like everywhere else in a job spec.
pub(super) fn job_message(value: Value, routing: &Routing) -> Result<WorkItem, MessageError> {
    let Value::Object(mut fields) = value else {
        return Err(invalid("message", "expected a JSON object"));
    };
    let input = match fields.remove("input") {
        Some(Value::String(input)) => input,
        Some(_) => return Err(invalid("input", "expected a string")),
        None => return Err(invalid("input", "missing")),
    };
    let (bucket, key) = match ObjectRef::parse(&input) {
        Ok(ObjectRef::S3 { bucket, key }) => (bucket, key),
        Ok(ObjectRef::File(_)) => {
            return Err(invalid(
                "input",
                format!(
                    "{:?} is a local path; the worker reads from S3 only (s3://bucket/key)",
                    short(&input)
                ),
            ))
        }
        Err(e) => return Err(invalid("input", super::fields::bounded(&e.to_string()))),
    };
    if key.is_empty() || key.ends_with('/') {
        return Err(invalid(
            "input",
            format!(
                "{:?} names a prefix, not an object (s3://bucket/key)",
                short(&input)
            ),
        ));
    }
    let status_key = match fields.remove("id") {
        None | Some(Value::Null) => None,
        Some(value) => Some(record_key(value, "id")?),
    };
    let at = Fields::JOB_MESSAGE;
    let spec = SpecFields::from_value(Value::Object(fields), at)
        .and_then(|fields| JobSpec::from_fields(fields, at))
        .map_err(MessageError::request)?;
    let output_folder = routing
        .output_folder(&bucket, &key)
        .map_err(MessageError::request)?;
    let input = ObjectRef::S3 { bucket, key };
    let mut item = routing.item(input, Work::Spec(spec), output_folder, (None, None));
    item.status_key = status_key;
    Ok(item)
}

/// The most characters a status record key may have (DynamoDB allows 2048 bytes for a
/// partition key; a key is one line of printable text).
pub(super) const MAX_RECORD_KEY_CHARS: usize = 1024;

/// A message's record key (`id`, `sampleId`): a non-empty string or an integer, one line, at
/// most [`MAX_RECORD_KEY_CHARS`] characters.
pub(super) fn record_key(value: Value, field: &str) -> Result<String, MessageError> {
    let text = match value {
        Value::String(text) => text,
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(invalid(field, "expected a string or an integer")),
    };
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_RECORD_KEY_CHARS || text.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!(
                "{:?} is not a record key (one line, at most {MAX_RECORD_KEY_CHARS} characters)",
                short(&text)
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::super::test_bodies::*;
    use crate::encode::{Mp3Rate, OutputFormat};
    use crate::job::{preset, StageSpec};

    #[test]
    fn plain_job_with_preset_and_output() {
        let body = r#"{"input":"s3://media-in/in/a.mp3","output":"s3://media-out/processed/a/","preset":"8d"}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.kind, MessageKind::Job);
        let item = one_item(&parsed);
        assert_eq!(item.plan.input, s3("media-in", "in/a.mp3"));
        assert_eq!(item.etag, None);
        assert_eq!(item.plan.preserve_original, None);
        let job = &item.plan.jobs[..];
        assert_eq!(job.len(), 1);
        assert_eq!(job[0].output, s3("media-out", "processed/a/"));
        assert_eq!(job[0].chain, preset("8d").unwrap().chain);
        assert_eq!(job[0].preset.as_deref(), Some("8d"));
    }

    #[test]
    fn plain_job_with_chain_format_and_bitrate() {
        let body = r#"{"input":"s3://media-in/in/a.wav","chain":[{"type":"gain","gain_db":-3}],
                       "format":"mp3","bitrate":320}"#;
        let item = parse(body).unwrap().items.remove(0);
        let job = &item.plan.jobs[0];
        assert_eq!(job.chain, vec![StageSpec::Gain { gain_db: -3.0 }]);
        assert_eq!(
            job.format,
            Some(OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 320 }
            })
        );
        assert_eq!(job.preset, None);
        assert_eq!(job.output, s3("media-in", "processed/in/a/a.mp3"));

        // A bitrate alone implies MP3, as on the command line.
        let body = r#"{"input":"s3://media-in/in/a.wav","preset":"transcode","bitrate":128}"#;
        let job = parse(body).unwrap().items.remove(0).plan.jobs.remove(0);
        assert_eq!(
            job.format,
            Some(OutputFormat::Mp3 {
                rate: Mp3Rate::Cbr { kbps: 128 }
            })
        );
        assert_eq!(job.output, s3("media-in", "processed/in/a/a.mp3"));

        let err =
            parse(r#"{"input":"s3://media-in/a.wav","preset":"8d","bitrate":100}"#).unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert!(
            err.to_string().starts_with("bitrate: 100 kbps is not"),
            "{err}"
        );
        let err =
            parse(r#"{"input":"s3://media-in/a.wav","chain":[],"format":"flac","bitrate":128}"#)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bitrate: applies to mp3 only, but format is flac"
        );
    }

    #[test]
    fn plain_job_default_output_follows_task_mode() {
        let item = parse(r#"{"input":"s3://b-1/in/a.mp3","preset":"8d"}"#)
            .unwrap()
            .items
            .remove(0);
        assert_eq!(item.plan.jobs[0].output, s3("b-1", "processed/in/a/a.mp3"));

        let item = parse(r#"{"input":"s3://b-1/public/unprocessed/u1/rec.m4a","preset":"8d"}"#)
            .unwrap()
            .items
            .remove(0);
        assert_eq!(
            item.plan.jobs[0].output,
            s3("b-1", "public/processed/u1/rec/rec.mp3")
        );

        // A splitting preset writes its pieces under the prefix itself.
        let item =
            parse(r#"{"input":"s3://b-1/public/unprocessed/u1/rec.m4a","preset":"oneshot"}"#)
                .unwrap()
                .items
                .remove(0);
        assert_eq!(
            item.plan.jobs[0].output,
            s3("b-1", "public/processed/u1/rec/")
        );

        // The worker's output bucket and prefix take the place of OUTPUT_BUCKET / OUTPUT_PREFIX.
        let routing = Routing {
            output_bucket: Some("media-out".to_owned()),
            ..Routing::default()
        };
        let item = parse_message(r#"{"input":"s3://b-1/in/a.mp3","preset":"8d"}"#, &routing)
            .unwrap()
            .items
            .remove(0);
        assert_eq!(
            item.plan.jobs[0].output,
            s3("media-out", "processed/in/a/a.mp3")
        );
    }

    #[test]
    fn plain_job_errors() {
        let cases = [
            (
                r#"{"input":"s3://b-1/a.mp3","preset":"8d","chain":[]}"#,
                "invalid_spec",
                "job: give either \"preset\" or \"chain\", not both",
            ),
            (
                r#"{"input":"s3://b-1/a.mp3"}"#,
                "invalid_spec",
                "job: give \"preset\" (e.g. \"8d\", \"transcode\") or \"chain\"",
            ),
            (
                r#"{"input":"/tmp/a.mp3","preset":"8d"}"#,
                "invalid_message",
                "input: \"/tmp/a.mp3\" is a local path; the worker reads from S3 only \
                 (s3://bucket/key)",
            ),
            (
                r#"{"input":"s3://b-1/in/","preset":"8d"}"#,
                "invalid_message",
                "input: \"s3://b-1/in/\" names a prefix, not an object (s3://bucket/key)",
            ),
            (
                r#"{"input":"s3://b-1/a.mp3","preset":"9d"}"#,
                "invalid_spec",
                "preset: unknown preset \"9d\" (known presets: 8d, oneshot, transcode)",
            ),
            (
                r#"{"input":"s3://b-1/a.mp3","chain":[],"format":"ogg"}"#,
                "invalid_spec",
                "format: unknown output format \"ogg\" (allowed wav, flac, mp3)",
            ),
            (
                r#"{"input":"s3://b-1/a.mp3","preset":"8d","output":"out/a.mp3"}"#,
                "invalid_spec",
                "output: \"out/a.mp3\" is a local path; this job writes to S3 only \
                 (s3://bucket/key or s3://bucket/prefix/)",
            ),
        ];
        for (body, kind, message) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!(
                (err.kind(), err.to_string().as_str()),
                (kind, message),
                "{body}"
            );
        }

        let err = parse(r#"{"input":"s3://b-1/a.mp3","preset":"8d","priority":1}"#).unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert!(
            err.to_string().starts_with("job: unknown field `priority`"),
            "{err}"
        );
        let err = parse(r#"{"input":"s3://b-1/a.mp3","chain":[{"type":"gain","gain_db":99}]}"#)
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert_eq!(
            err.to_string(),
            "chain: chain[0].gain_db = 99 is out of range (allowed -120 ..= 48)"
        );
    }

    #[test]
    fn an_id_keys_the_status_record() {
        let item = |body: &str| one_item(&parse(body).unwrap()).status_key.clone();
        assert_eq!(
            item(r#"{"input":"s3://b-1/a.mp3","preset":"8d","id":"rec-1"}"#),
            Some("rec-1".to_owned())
        );
        assert_eq!(
            item(r#"{"input":"s3://b-1/a.mp3","preset":"8d","id":42}"#),
            Some("42".to_owned())
        );
        assert_eq!(item(r#"{"input":"s3://b-1/a.mp3","preset":"8d"}"#), None);
        let legacy = r#"{"S3_BUCKET":"media","S3_KEY":"a.wav","sampleId":"s-9"}"#;
        assert_eq!(item(legacy), Some("s-9".to_owned()));
        for (body, message) in [
            (
                r#"{"input":"s3://b-1/a.mp3","preset":"8d","id":""}"#,
                "id: must not be empty",
            ),
            (
                r#"{"input":"s3://b-1/a.mp3","preset":"8d","id":[1]}"#,
                "id: expected a string or an integer",
            ),
            (
                r#"{"S3_BUCKET":"media","S3_KEY":"a.wav","sampleId":"a\nb"}"#,
                "is not a record key (one line, at most 1024 characters)",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.kind(), "invalid_message", "{body}");
            let text = err.to_string();
            assert!(text.ends_with(message), "{body}: {text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }
}

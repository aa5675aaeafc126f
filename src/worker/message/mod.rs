//! One SQS message body → the work it asks for.
//!
//! The worker's queue carries six shapes of body (ops-reference §3.5), told apart by structure,
//! not by a type field they do not share:
//!
//! | shape | recognised by | [`MessageKind`] | read in |
//! |---|---|---|---|
//! | S3 event notification | a `Records` key | [`S3Event`](MessageKind::S3Event) | `events` |
//! | S3 test event | an `Event` key (`"s3:TestEvent"`) | [`TestEvent`](MessageKind::TestEvent) | `events` |
//! | EventBridge event | a `detail-type` key | [`EventBridge`](MessageKind::EventBridge) | `events` |
//! | SNS notification | `Type` and `Message` keys | [`Sns`](MessageKind::Sns) | `events` |
//! | this project's job JSON | an `input` key | [`Job`](MessageKind::Job) | `job_message` |
//! | legacy task parameters | `S3_BUCKET`, `S3_KEY`, `PROCESSING_PARAMS`, … keys | [`Legacy`](MessageKind::Legacy) | `legacy` |
//!
//! Every shape becomes a [`JobRequest`] (the type the `task` command's environment also
//! becomes), planned once by [`JobRequest::plan`], so validation, presets and output routing are
//! the same in every mode by construction. Events carry only an object: the worker's [`Routing`]
//! supplies the rest, its parameters parsed once at startup. Nothing here touches S3 or the
//! network: parsing is a pure function of the body and the routing. A new shape goes in a file
//! of its own here, recognised in `classify`.
//!
//! # Contract for the caller
//! - `Ok` with no items (an S3 test event, or an S3 event whose records are all of another type,
//!   e.g. `ObjectRemoved:*`) means "nothing to do": acknowledge and delete the message.
//! - `Err` is permanent for this body: parsing is deterministic, so a redelivery fails the same
//!   way. [`MessageError::kind`] is the metric label.
//! - Every error message names the field path at fault (`Records[1].s3.object.key: missing`).
//!   Values echoed from the body are truncated, so a hostile 1 MiB body cannot produce a 1 MiB
//!   log line.

mod events;
mod fields;
mod job_message;
mod legacy;

use crate::io::ObjectRef;
use crate::job::request::{file_and_stem, output_folder};
use crate::job::{JobPlan, JobRequest, RequestError, Work};
use fields::{bounded, describe};
use serde_json::Value;

/// Which message shape a body had (also the `source` metric label, see [`MessageKind::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// This project's job JSON: `{"input": "s3://…", "preset" | "chain": …, …}`.
    Job,
    /// The variables a legacy ECS task received, as a JSON object.
    Legacy,
    /// An S3 event notification delivered straight to SQS (`{"Records": […]}`).
    S3Event,
    /// An EventBridge "Object Created" event from `aws.s3`.
    EventBridge,
    /// An SNS notification wrapping an S3 event or an EventBridge event.
    Sns,
    /// The S3 test event sent when a notification is configured (raw or inside SNS): no work.
    TestEvent,
}

impl MessageKind {
    /// The low-cardinality label: `job`, `legacy`, `s3`, `eventbridge`, `sns`, `test_event`.
    pub fn label(self) -> &'static str {
        match self {
            MessageKind::Job => "job",
            MessageKind::Legacy => "legacy",
            MessageKind::S3Event => "s3",
            MessageKind::EventBridge => "eventbridge",
            MessageKind::Sns => "sns",
            MessageKind::TestEvent => "test_event",
        }
    }
}

/// One input object and the jobs to run on it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    /// The validated plan: input, one job per output, optional copy of the original.
    pub plan: JobPlan,
    /// The object's ETag as the event reported it (S3 and EventBridge events only), to pin the
    /// read to the version that triggered the event (`If-Match`).
    pub etag: Option<String>,
    /// The object's version id (events from versioned buckets only).
    pub version_id: Option<String>,
    /// The key of the job's status record, when the message names one (a job message's `id`,
    /// a legacy message's `sampleId`); otherwise the record is keyed by the input
    /// (`s3://bucket/key`).
    pub status_key: Option<String>,
}

/// A parsed message body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedMessage {
    /// The body's shape; for SNS, [`MessageKind::Sns`] unless it wrapped a test event.
    pub kind: MessageKind,
    /// The work, one item per input object; empty for a test event or when every record of an S3
    /// event was skipped.
    pub items: Vec<WorkItem>,
}

/// Worker-wide settings for what messages do not carry.
///
/// Events carry only a bucket and key: `work` says what to do with their objects (the
/// worker's `PROCESSING_PARAMS`, parsed once at startup by [`Routing::new`]). `output_bucket` and
/// `output_prefix` place the outputs of events and of job messages without an `output`. Legacy
/// messages carry their own variables and use none of these.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Output bucket; `None` = the input's bucket.
    pub output_bucket: Option<String>,
    /// Output root: each input gets its own folder under it, `{root}/{key without extension}/`
    /// (unlike task mode, which serves one input and uses `OUTPUT_PREFIX` verbatim: a worker
    /// serves many, and one shared folder would put their outputs on the same keys). `None` =
    /// the per-input default ([`default_output_prefix`](crate::job::default_output_prefix)).
    pub output_prefix: Option<String>,
    /// What event-driven jobs do (a legacy parameter object or a job spec such as
    /// `{"preset":"8d"}`); the default is the legacy one-shot silence split.
    pub work: Work,
}

impl Routing {
    /// The routing of a worker started with these settings; `params` is its `PROCESSING_PARAMS`.
    ///
    /// # Errors
    /// What every event would otherwise fail with, said once at startup: parameters that are
    /// not valid, or an output bucket no object can be written to.
    pub fn new(
        output_bucket: Option<String>,
        output_prefix: Option<String>,
        params: Option<&str>,
    ) -> Result<Self, RequestError> {
        let routing = Routing {
            output_bucket,
            output_prefix,
            work: Work::from_params_text(params.unwrap_or_default())?,
        };
        routing.output_folder("startup-check", "probe/input.wav")?;
        Ok(routing)
    }

    /// The prefix the outputs of `s3://bucket/key` go under: the input's own folder under the
    /// output root, or the task-mode default, in the output bucket or the input's.
    fn output_folder(&self, bucket: &str, key: &str) -> Result<ObjectRef, RequestError> {
        output_folder(
            bucket,
            key,
            self.output_bucket.as_deref(),
            self.input_folder(key).as_deref(),
        )
    }

    /// The input's own folder under the output root (see [`Routing::output_prefix`]).
    fn input_folder(&self, key: &str) -> Option<String> {
        let root = self.output_prefix.as_deref()?.trim_end_matches('/');
        let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
        let (_, stem) = file_and_stem(key);
        let path = if dir.is_empty() {
            stem.to_owned()
        } else {
            format!("{dir}/{stem}")
        };
        Some(if root.is_empty() {
            format!("{path}/")
        } else {
            format!("{root}/{path}/")
        })
    }

    /// The work item for a validated input and request-level details.
    fn item(
        &self,
        input: ObjectRef,
        work: Work,
        output_folder: ObjectRef,
        (etag, version_id): (Option<&str>, Option<&str>),
    ) -> WorkItem {
        let request = JobRequest {
            input,
            work,
            output_folder,
        };
        WorkItem {
            plan: request.plan(),
            etag: etag.map(str::to_owned),
            version_id: version_id.map(str::to_owned),
            status_key: None,
        }
    }
}

/// Why a message body cannot be turned into work. Every message names the field path at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not JSON at all (or nests deeper than serde_json's recursion limit).
    #[error("message body is not JSON: {}", bounded(&.0.to_string()))]
    NotJson(serde_json::Error),
    /// The body is JSON but none of the accepted shapes.
    #[error("unrecognised message: {found}; expected {EXPECTED}")]
    Unrecognised {
        /// What the body looked like (its type, or its first few keys).
        found: String,
    },
    /// A field of the message or event is missing, of the wrong type, or holds an unsupported
    /// value.
    #[error("{path}: {reason}")]
    Invalid {
        /// The field path, e.g. `Records[1].s3.object.key` or `Message.detail-type`.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An S3 event record of a schema version other than 2.x.
    #[error("{path}: unsupported S3 event version {version} (expected 2.x)")]
    UnsupportedVersion {
        /// The field path, e.g. `Records[0].eventVersion`.
        path: String,
        /// The version found (truncated).
        version: String,
    },
    /// What the message asks for is unusable: preset, chain, format, bitrate, output,
    /// processing parameters.
    ///
    /// `at` is where in the message the job came from (`Records[0] (s3://bucket/key)`, empty for
    /// a job or legacy message); the request's own error names the field as the message wrote
    /// it (`bitrate`, `PROCESSING_PARAMS.silenceThreshold`).
    #[error("{}", prefixed(.at, .error))]
    Request {
        /// Where in the message the job came from; may be empty.
        at: String,
        /// What is wrong with the request.
        error: RequestError,
    },
}

impl MessageError {
    /// Low-cardinality error kind, used as a metric label: `invalid_spec` when what to do is
    /// wrong (preset, chain, format, output, processing parameters), `invalid_message` when the
    /// message itself is malformed or not something the worker accepts.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageError::Request { error, .. } => error.kind(),
            MessageError::NotJson(_)
            | MessageError::Unrecognised { .. }
            | MessageError::Invalid { .. }
            | MessageError::UnsupportedVersion { .. } => "invalid_message",
        }
    }

    /// A request error from the message's top level.
    fn request(error: RequestError) -> Self {
        MessageError::Request {
            at: String::new(),
            error,
        }
    }
}

/// `at: error`, or just the error when `at` is empty; bounded.
fn prefixed(at: &str, error: &RequestError) -> String {
    if at.is_empty() {
        bounded(&error.to_string())
    } else {
        bounded(&format!("{at}: {error}"))
    }
}

/// What [`MessageError::Unrecognised`] says the worker accepts.
const EXPECTED: &str = "a job {\"input\": \"s3://…\", \"preset\" or \"chain\": …}, legacy task \
     parameters {\"S3_BUCKET\": …, \"S3_KEY\": …}, an S3 event notification {\"Records\": […]}, \
     an S3 test event, an EventBridge \"Object Created\" event, or an SNS notification wrapping \
     one of the last three";

/// Parses one SQS message body into the work it asks for.
///
/// `routing` supplies what event-driven messages do not carry: processing parameters and the
/// output location (see [`Routing`]).
///
/// # Errors
/// A [`MessageError`] naming the field path at fault; see the module docs for the contract.
pub fn parse_message(body: &str, routing: &Routing) -> Result<ParsedMessage, MessageError> {
    let value: Value = serde_json::from_str(body).map_err(MessageError::NotJson)?;
    let Some(kind) = classify(&value) else {
        return Err(MessageError::Unrecognised {
            found: describe(&value),
        });
    };
    let items = match kind {
        MessageKind::Job => vec![job_message::job_message(value, routing)?],
        MessageKind::Legacy => vec![legacy::legacy(&value, routing)?],
        MessageKind::S3Event => events::s3_event(&value, "", routing)?,
        MessageKind::EventBridge => vec![events::eventbridge(&value, "", routing)?],
        MessageKind::TestEvent => {
            events::test_event(&value, "")?;
            Vec::new()
        }
        MessageKind::Sns => return events::sns(&value, routing),
    };
    Ok(ParsedMessage { kind, items })
}

/// The shape of `value`, by structure; `None` if it is none of them.
fn classify(value: &Value) -> Option<MessageKind> {
    let obj = value.as_object()?;
    let has = |key: &str| obj.contains_key(key);
    Some(if has("Records") {
        MessageKind::S3Event
    } else if has("Event") {
        MessageKind::TestEvent
    } else if has("detail-type") {
        MessageKind::EventBridge
    } else if has("Type") && has("Message") {
        MessageKind::Sns
    } else if has("input") {
        MessageKind::Job
    } else if legacy::LEGACY_KEYS.iter().any(|k| has(k)) {
        MessageKind::Legacy
    } else {
        return None;
    })
}

#[cfg(test)]
pub(super) mod test_bodies {
    //! Message bodies as AWS documents them, and helpers, for the tests of every shape.
    pub use super::*;

    /// One record as in the S3 user guide's "Event message structure" page (version 2.2 example,
    /// every field ops-reference §3.5 lists, plus the ones S3 adds around them).
    pub fn record(event_name: &str, key: &str, etag: &str) -> Value {
        serde_json::json!({
            "eventVersion": "2.2",
            "eventSource": "aws:s3",
            "awsRegion": "us-west-2",
            "eventTime": "1970-01-01T00:00:00.000Z",
            "eventName": event_name,
            "userIdentity": { "principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE" },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "testConfigRule",
                "bucket": {
                    "name": "media-in",
                    "ownerIdentity": { "principalId": "A3NL1KOZZKExample" },
                    "arn": "arn:aws:s3:::media-in"
                },
                "object": {
                    "key": key,
                    "size": 1024,
                    "eTag": etag,
                    "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                    "sequencer": "0055AED6DCD90281E5"
                }
            }
        })
    }

    pub fn records(records: Vec<Value>) -> String {
        serde_json::json!({ "Records": records }).to_string()
    }

    /// The S3 user guide's test event.
    pub const TEST_EVENT: &str = r#"{
        "Service":"Amazon S3",
        "Event":"s3:TestEvent",
        "Time":"2014-10-13T15:57:02.089Z",
        "Bucket":"amzn-s3-demo-bucket",
        "RequestId":"5582815E1AEA5ADF",
        "HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
    }"#;

    /// The S3 user guide's EventBridge "Object Created" example, with `key` substituted.
    pub fn eventbridge_body(detail_type: &str, key: &str) -> String {
        serde_json::json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": "111122223333",
            "time": "2021-11-12T00:00:00Z",
            "region": "ca-central-1",
            "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
            "detail": {
                "version": "0",
                "bucket": { "name": "amzn-s3-demo-bucket1" },
                "object": {
                    "key": key,
                    "size": 5,
                    "etag": "b1946ac92492d2347c6235b4d2611184",
                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                    "sequencer": "617f08299329d189"
                },
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "source-ip-address": "1.2.3.4",
                "reason": "PutObject"
            }
        })
        .to_string()
    }

    /// An SNS notification as delivered to SQS without raw message delivery.
    pub fn sns_body(message: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:media-events",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2012-05-02T00:54:06.655Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEw6JRN...",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:media-events:c9135db0"
        })
        .to_string()
    }

    pub fn parse(body: &str) -> Result<ParsedMessage, MessageError> {
        parse_message(body, &Routing::default())
    }

    pub fn one_item(parsed: &ParsedMessage) -> &WorkItem {
        assert_eq!(parsed.items.len(), 1, "{parsed:?}");
        &parsed.items[0]
    }

    pub fn s3(bucket: &str, key: &str) -> ObjectRef {
        ObjectRef::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }

    pub fn routing_8d() -> Routing {
        Routing::new(None, None, Some(r#"{"preset":"8d"}"#)).expect("the 8d preset")
    }
}

#[cfg(test)]
mod tests {
    use super::test_bodies::*;

    #[test]
    fn labels() {
        let labels: Vec<&str> = [
            MessageKind::Job,
            MessageKind::Legacy,
            MessageKind::S3Event,
            MessageKind::EventBridge,
            MessageKind::Sns,
            MessageKind::TestEvent,
        ]
        .into_iter()
        .map(MessageKind::label)
        .collect();
        assert_eq!(
            labels,
            ["job", "legacy", "s3", "eventbridge", "sns", "test_event"]
        );
    }

    #[test]
    fn malformed_bodies_are_invalid_messages() {
        let err = parse("<xml/>").unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert!(
            err.to_string().starts_with("message body is not JSON: "),
            "{err}"
        );
        let err = parse("").unwrap_err();
        assert!(matches!(err, MessageError::NotJson(_)), "{err}");

        let err = parse(r#"{"bucket":"b","key":"k"}"#).unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert!(
            err.to_string().starts_with(
                "unrecognised message: a JSON object with keys \"bucket\", \"key\"; expected a job"
            ),
            "{err}"
        );
        for body in ["[]", "\"s3://b/k\"", "42", "null", "{}"] {
            let err = parse(body).unwrap_err();
            assert!(
                matches!(err, MessageError::Unrecognised { .. }),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn hostile_bodies_fail_cleanly_with_bounded_messages() {
        // Nesting past serde_json's recursion limit.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse(&deep), Err(MessageError::NotJson(_))));
        let deep = format!("{}1{}", "{\"input\":".repeat(10_000), "}".repeat(10_000));
        assert!(parse(&deep).is_err());

        // A 2 MiB key and a 2 MiB unknown field name: errors, and short ones.
        let huge = "x".repeat(2 << 20);
        let bodies = [
            format!(r#"{{"input":"s3://b-1/{huge}","preset":"8d"}}"#),
            format!(r#"{{"input":"s3://b-1/a.mp3","preset":"8d","{huge}":1}}"#),
            format!(r#"{{"{huge}":1}}"#),
            records(vec![record("ObjectCreated:Put", &huge, "e")]),
            {
                let mut bad = record("ObjectCreated:Put", "k", "e");
                bad["eventVersion"] = huge.as_str().into();
                records(vec![bad])
            },
            format!(r#"{{"S3_BUCKET":"media","S3_KEY":"a","PROCESSING_PARAMS":{{"{huge}":1}}}}"#),
        ];
        for body in &bodies {
            let err = parse(body).unwrap_err();
            assert!(
                err.to_string().len() < 2_000,
                "{} bytes",
                err.to_string().len()
            );
        }
        // Multi-byte characters are cut on a character boundary.
        let err = parse(&format!(r#"{{"{}":1}}"#, "é".repeat(1000))).unwrap_err();
        assert!(err.to_string().contains('…'), "{err}");
    }

    #[test]
    fn control_characters_in_echoed_input_stay_on_one_line() {
        // Found by the message fuzz target: a key holding an escaped newline was echoed by serde
        // into a two-line error, so a message could forge a log line. Every echo is escaped.
        let bodies = [
            r#"{"input":"s3://in-bucket/a.flac","preset":"transcode","for\nmat\u001b[31m":"flac"}"#,
            r#"{"input":"s3://in-bucket/a.flac","preset":"transc\node"}"#,
            r#"{"S3_BUCKET":"in-bucket","S3_KEY":"a","PROCESSING_PARAMS":{"x\ny":1}}"#,
            r#"{"input":"s3://in-bucket/a\n.flac","output":"s3://in-bucket/o\r.wav","preset":"9d"}"#,
        ];
        for body in bodies {
            let err = parse(body).unwrap_err().to_string();
            assert!(!err.contains(['\n', '\r', '\u{1b}']), "{body}: {err:?}");
        }
        let err = parse(bodies[0]).unwrap_err().to_string();
        assert!(err.contains("for\\nmat\\u{1b}"), "{err}");
    }
}

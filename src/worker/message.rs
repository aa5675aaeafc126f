//! One SQS message body → the work it asks for.
//!
//! The worker's queue carries six shapes of body (ops-reference §3.5), told apart by structure,
//! not by a type field they do not share:
//!
//! | shape | recognised by | [`MessageKind`] |
//! |---|---|---|
//! | S3 event notification | a `Records` key | [`S3Event`](MessageKind::S3Event) |
//! | S3 test event | an `Event` key (`"s3:TestEvent"`) | [`TestEvent`](MessageKind::TestEvent) |
//! | EventBridge event | a `detail-type` key | [`EventBridge`](MessageKind::EventBridge) |
//! | SNS notification | `Type` and `Message` keys | [`Sns`](MessageKind::Sns) |
//! | this project's job JSON | an `input` key | [`Job`](MessageKind::Job) |
//! | legacy task parameters | `S3_BUCKET`, `S3_KEY`, `PROCESSING_PARAMS`, … keys | [`Legacy`](MessageKind::Legacy) |
//!
//! Every job, whatever its shape, is planned by the task-mode planner [`plan_from_env`] from the
//! variables an ECS task would have received, so validation, presets and output routing are the
//! same in both modes by construction. Nothing here touches S3 or the network: parsing is a pure
//! function of the body and the worker's [`Routing`].
//!
//! # Contract for the caller
//! - `Ok` with no items (an S3 test event, or an S3 event whose records are all of another type,
//!   e.g. `ObjectRemoved:*`) means "nothing to do": acknowledge and delete the message.
//! - `Err` is permanent for this body: parsing is deterministic, so a redelivery fails the same
//!   way. [`MessageError::kind`] is the metric label.
//! - Every error message names the field path at fault (`Records[1].s3.object.key: missing`).
//!   Values echoed from the body are truncated, so a hostile 1 MiB body cannot produce a 1 MiB
//!   log line.

use crate::io::ObjectRef;
use crate::job::{plan_from_env, SpecError, TaskError, TaskPlan};
use serde::Deserialize;
use serde_json::{Map, Value};

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
    pub plan: TaskPlan,
    /// The object's ETag as the event reported it (S3 and EventBridge events only), to pin the
    /// read to the version that triggered the event (`If-Match`).
    pub etag: Option<String>,
    /// The object's version id (events from versioned buckets only).
    pub version_id: Option<String>,
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

/// Worker-wide defaults for event-driven messages (which carry only a bucket and key).
///
/// These are the task-mode variables the worker supplies itself: `params` is passed as
/// `PROCESSING_PARAMS` for S3 and EventBridge events, `output_bucket` / `output_prefix` as
/// `OUTPUT_BUCKET` / `OUTPUT_PREFIX` for events and for job JSON without an `output`. Legacy
/// messages carry their own variables and do not use these.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Output bucket; `None` = the input's bucket.
    pub output_bucket: Option<String>,
    /// Output root: each input gets its own folder under it, `{root}/{key without extension}/`
    /// (unlike task mode, which serves one input and uses `OUTPUT_PREFIX` verbatim: a worker
    /// serves many, and one shared folder would put their outputs on the same keys). `None` =
    /// the per-input default ([`default_output_prefix`](crate::job::default_output_prefix)).
    pub output_prefix: Option<String>,
    /// `PROCESSING_PARAMS` for event-driven jobs (a legacy parameter object or a job spec such as
    /// `{"preset":"8d"}`); `None` = the legacy defaults (a one-shot silence split).
    pub params: Option<String>,
}

/// Why a message body cannot be turned into work. Every message names the field path at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not JSON at all (or nests deeper than serde_json's recursion limit).
    #[error("message body is not JSON: {}", bounded(.0.to_string()))]
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
    /// A field of a job JSON (preset, chain, format, bitrate, output) is unusable.
    #[error("{path}: {reason}")]
    Spec {
        /// The field, e.g. `bitrate`, or `job` for the object as a whole.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The task-mode planner rejected the variables built from the message.
    ///
    /// `at` is where in the message the job came from (`Records[0] (s3://bucket/key)`, empty for
    /// a job or legacy message); the planner's own error names the variable or field
    /// (`PROCESSING_PARAMS.silenceThreshold`, or for job JSON the job's field, `chain`).
    #[error("{}", prefixed(.at, .error))]
    Task {
        /// Where in the message the job came from; may be empty.
        at: String,
        /// The planner's error.
        error: TaskError,
    },
}

impl MessageError {
    /// Low-cardinality error kind, used as a metric label: `invalid_spec` when what to do is
    /// wrong (preset, chain, format, output, processing parameters), `invalid_message` when the
    /// message itself is malformed or not something the worker accepts.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageError::Spec { .. } => "invalid_spec",
            MessageError::Task { error, .. } => match error {
                TaskError::Missing(_) => "invalid_message",
                TaskError::Invalid { field, .. } if field.starts_with("S3_") => "invalid_message",
                _ => "invalid_spec",
            },
            MessageError::NotJson(_)
            | MessageError::Unrecognised { .. }
            | MessageError::Invalid { .. }
            | MessageError::UnsupportedVersion { .. } => "invalid_message",
        }
    }
}

/// What [`MessageError::Unrecognised`] says the worker accepts.
const EXPECTED: &str = "a job {\"input\": \"s3://…\", \"preset\" or \"chain\": …}, legacy task \
     parameters {\"S3_BUCKET\": …, \"S3_KEY\": …}, an S3 event notification {\"Records\": […]}, \
     an S3 test event, an EventBridge \"Object Created\" event, or an SNS notification wrapping \
     one of the last three";

/// The variables of a legacy task message; anything else at its top level is rejected.
const LEGACY_KEYS: [&str; 5] = [
    "S3_BUCKET",
    "S3_KEY",
    "PROCESSING_PARAMS",
    "OUTPUT_BUCKET",
    "OUTPUT_PREFIX",
];

/// The CBR rates LAME accepts (checked again per sample rate by the encoder); checking the list
/// here rejects a bad `bitrate` before any byte of the input is read.
use crate::encode::MP3_CBR_KBPS as LAME_CBR_KBPS;

/// Longest value echoed from the body into an error, in characters.
const MAX_ECHO: usize = 64;
/// Longest foreign error text (serde, the planner) kept in an error, in characters.
const MAX_REASON: usize = 512;

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
        MessageKind::Job => vec![plain_job(&value, routing)?],
        MessageKind::Legacy => vec![legacy(&value)?],
        MessageKind::S3Event => s3_event(&value, "", routing)?,
        MessageKind::EventBridge => vec![eventbridge(&value, "", routing)?],
        MessageKind::TestEvent => {
            test_event(&value, "")?;
            Vec::new()
        }
        MessageKind::Sns => return sns(&value, routing),
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
    } else if LEGACY_KEYS.iter().any(|k| has(k)) {
        MessageKind::Legacy
    } else {
        return None;
    })
}

/// An SNS notification: the inner message (one level only) must be an S3 event, an S3 test event
/// or an EventBridge event, which is what S3 and EventBridge publish to a topic.
fn sns(value: &Value, routing: &Routing) -> Result<ParsedMessage, MessageError> {
    let kind = req_str(value, "", "Type")?;
    if kind != "Notification" {
        return Err(invalid(
            "Type",
            format!(
                "unsupported SNS message type {:?} (expected \"Notification\")",
                short(kind)
            ),
        ));
    }
    let message = req_str(value, "", "Message")?;
    let inner: Value = serde_json::from_str(message)
        .map_err(|e| invalid("Message", format!("not JSON: {}", bounded(e.to_string()))))?;
    let base = "Message";
    match classify(&inner) {
        Some(MessageKind::S3Event) => Ok(ParsedMessage {
            kind: MessageKind::Sns,
            items: s3_event(&inner, base, routing)?,
        }),
        Some(MessageKind::EventBridge) => Ok(ParsedMessage {
            kind: MessageKind::Sns,
            items: vec![eventbridge(&inner, base, routing)?],
        }),
        Some(MessageKind::TestEvent) => {
            test_event(&inner, base)?;
            Ok(ParsedMessage {
                kind: MessageKind::TestEvent,
                items: Vec::new(),
            })
        }
        _ => Err(invalid(
            base,
            format!(
                "{}; expected an S3 event notification, an S3 test event or an EventBridge event \
                 inside an SNS notification",
                describe(&inner)
            ),
        )),
    }
}

/// `{"Service": "Amazon S3", "Event": "s3:TestEvent", …}`: checked, carries no work.
fn test_event(value: &Value, base: &str) -> Result<(), MessageError> {
    let event = req_str(value, base, "Event")?;
    if event == "s3:TestEvent" {
        Ok(())
    } else {
        Err(invalid(
            &join(base, "Event"),
            format!(
                "unsupported S3 event {:?} (expected \"s3:TestEvent\")",
                short(event)
            ),
        ))
    }
}

/// `{"Records": […]}`: one work item per `ObjectCreated:*` record.
fn s3_event(value: &Value, base: &str, routing: &Routing) -> Result<Vec<WorkItem>, MessageError> {
    let path = join(base, "Records");
    let records = value
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(&path, "expected an array of event records"))?;
    if records.is_empty() {
        return Err(invalid(&path, "empty (expected at least one event record)"));
    }
    let mut items = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        if let Some(item) = s3_record(record, &format!("{path}[{i}]"), routing)? {
            items.push(item);
        }
    }
    Ok(items)
}

/// One S3 event record; `None` for a record of another event type.
fn s3_record(
    record: &Value,
    path: &str,
    routing: &Routing,
) -> Result<Option<WorkItem>, MessageError> {
    // Source and version first: they say what schema the rest of the record follows.
    let source = req_str(record, path, "eventSource")?;
    if source != "aws:s3" {
        return Err(invalid(
            &join(path, "eventSource"),
            format!(
                "{:?} is not an S3 event (expected \"aws:s3\")",
                short(source)
            ),
        ));
    }
    let version = req_str(record, path, "eventVersion")?;
    // 2.1–2.3 were per event family, since 2.4 the version rises with every schema change:
    // accept any 2.x rather than a list of exact strings.
    if major_version(version) != Some(2) {
        return Err(MessageError::UnsupportedVersion {
            path: join(path, "eventVersion"),
            version: short(version),
        });
    }
    // A notification configuration may cover several event types; the others are not work for
    // us and not an error either (the caller deletes the message when nothing is left).
    if !req_str(record, path, "eventName")?.starts_with("ObjectCreated:") {
        return Ok(None);
    }
    let s3_path = join(path, "s3");
    let s3 = req(record, path, "s3")?;
    let bucket_path = join(&s3_path, "bucket");
    let bucket = req_str(req(s3, &s3_path, "bucket")?, &bucket_path, "name")?;
    let object_path = join(&s3_path, "object");
    let object = req(s3, &s3_path, "object")?;
    let key_path = join(&object_path, "key");
    let key = form_decode(req_str(object, &object_path, "key")?)
        .map_err(|reason| invalid(&key_path, reason))?;
    let etag = opt_str(object, &object_path, "eTag")?;
    let version_id = opt_str(object, &object_path, "versionId")?;
    let plan = event_plan(
        path,
        (bucket, &join(&bucket_path, "name")),
        (&key, &key_path),
        routing,
    )?;
    Ok(Some(WorkItem {
        plan,
        etag: etag.map(str::to_owned),
        version_id: version_id.map(str::to_owned),
    }))
}

/// An EventBridge "Object Created" event from `aws.s3`.
///
/// Other detail types are errors, unlike other S3 event records: an EventBridge rule selects its
/// detail types itself, so receiving another one means the rule is wrong, which should be seen.
fn eventbridge(value: &Value, base: &str, routing: &Routing) -> Result<WorkItem, MessageError> {
    let source = req_str(value, base, "source")?;
    if source != "aws.s3" {
        return Err(invalid(
            &join(base, "source"),
            format!(
                "EventBridge events from {:?} are not supported (expected \"aws.s3\")",
                short(source)
            ),
        ));
    }
    if let Some(version) = opt_str(value, base, "version")? {
        if version != "0" {
            return Err(invalid(
                &join(base, "version"),
                format!(
                    "unsupported EventBridge envelope version {:?} (expected \"0\")",
                    short(version)
                ),
            ));
        }
    }
    let detail_type = req_str(value, base, "detail-type")?;
    if detail_type != "Object Created" {
        return Err(invalid(
            &join(base, "detail-type"),
            format!(
                "unsupported EventBridge event {:?} (expected \"Object Created\")",
                short(detail_type)
            ),
        ));
    }
    let detail_path = join(base, "detail");
    let detail = req(value, base, "detail")?;
    let bucket_path = join(&detail_path, "bucket");
    let bucket = req_str(req(detail, &detail_path, "bucket")?, &bucket_path, "name")?;
    let object_path = join(&detail_path, "object");
    let object = req(detail, &detail_path, "object")?;
    // Not URL-decoded: whether EventBridge encodes keys is undocumented, and the documented
    // example is a plain key (ops-reference §3.5). Verify with a key holding a space and a '+'.
    let key = req_str(object, &object_path, "key")?;
    let etag = opt_str(object, &object_path, "etag")?;
    let version_id = opt_str(object, &object_path, "version-id")?;
    let plan = event_plan(
        &detail_path,
        (bucket, &join(&bucket_path, "name")),
        (key, &join(&object_path, "key")),
        routing,
    )?;
    Ok(WorkItem {
        plan,
        etag: etag.map(str::to_owned),
        version_id: version_id.map(str::to_owned),
    })
}

/// The input's own folder under the routing's output root (see [`Routing::output_prefix`]).
fn input_folder(routing: &Routing, key: &str) -> Option<String> {
    let root = routing.output_prefix.as_deref()?.trim_end_matches('/');
    let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
    let stem = match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file,
    };
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

/// The plan for an event's object: the worker's routing supplies everything but the object.
/// `bucket` and `key` are (value, field path) pairs.
fn event_plan(
    at: &str,
    bucket: (&str, &str),
    key: (&str, &str),
    routing: &Routing,
) -> Result<TaskPlan, MessageError> {
    check_s3_input(bucket, key)?;
    let vars = Vars {
        bucket: bucket.0.to_owned(),
        key: key.0.to_owned(),
        params: routing.params.clone(),
        output_bucket: routing.output_bucket.clone(),
        output_prefix: input_folder(routing, key.0),
    };
    let at = format!("{at} (s3://{}/{})", bucket.0, short(key.0));
    vars.plan()
        .map_err(|error| MessageError::Task { at, error })
}

/// This project's job JSON. Unknown fields are rejected, like everywhere else in a job spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainJob {
    input: String,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    chain: Option<Value>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    bitrate: Option<u32>,
}

/// A job JSON, planned by building the `PROCESSING_PARAMS` full spec task mode would get.
fn plain_job(value: &Value, routing: &Routing) -> Result<WorkItem, MessageError> {
    let job = PlainJob::deserialize(value).map_err(|e| spec("job", bounded(e.to_string())))?;
    let input =
        ObjectRef::parse(&job.input).map_err(|e| invalid("input", bounded(e.to_string())))?;
    let ObjectRef::S3 { bucket, key } = input else {
        return Err(invalid(
            "input",
            format!(
                "{:?} is a local path; the worker reads from S3 only (s3://bucket/key)",
                short(&job.input)
            ),
        ));
    };
    if key.is_empty() || key.ends_with('/') {
        return Err(invalid(
            "input",
            format!(
                "{:?} names a prefix, not an object (s3://bucket/key)",
                short(&job.input)
            ),
        ));
    }

    let mut params = Map::new();
    match (job.preset, job.chain) {
        (Some(_), Some(_)) => {
            return Err(spec("job", "give either \"preset\" or \"chain\", not both"));
        }
        (None, None) => {
            return Err(spec(
                "job",
                "give \"preset\" (e.g. \"8d\", \"transcode\") or \"chain\"",
            ));
        }
        (Some(preset), None) => {
            params.insert("preset".into(), Value::String(preset));
        }
        (None, Some(chain)) => {
            params.insert("chain".into(), chain);
        }
    }
    let mut format = job.format;
    if let Some(kbps) = job.bitrate {
        if !LAME_CBR_KBPS.contains(&kbps) {
            return Err(spec(
                "bitrate",
                format!(
                    "{kbps} kbps is not an MP3 CBR rate (allowed {})",
                    LAME_CBR_KBPS.map(|k| k.to_string()).join(", ")
                ),
            ));
        }
        // As on the command line, a bitrate alone implies MP3 (the planner would otherwise
        // ignore it silently).
        match format.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => format = Some("mp3".to_owned()),
            Some(f @ ("wav" | "flac")) => {
                return Err(spec(
                    "bitrate",
                    format!("applies to mp3 only, but format is {f}"),
                ));
            }
            Some(_) => {} // mp3, or an unknown name the planner reports
        }
        params.insert("bitrate".into(), Value::from(kbps));
    }
    if let Some(format) = format {
        params.insert("format".into(), Value::String(format));
    }
    if let Some(output) = job.output {
        match ObjectRef::parse(&output) {
            Ok(ObjectRef::S3 { .. }) => {}
            Ok(ObjectRef::File(_)) => {
                return Err(spec(
                    "output",
                    format!(
                        "{:?} is a local path; the worker writes to S3 only \
                         (s3://bucket/key or s3://bucket/prefix/)",
                        short(&output)
                    ),
                ));
            }
            Err(e) => return Err(spec("output", bounded(e.to_string()))),
        }
        params.insert("output".into(), Value::String(output));
    }

    let output_prefix = input_folder(routing, &key);
    let vars = Vars {
        bucket,
        key,
        params: Some(Value::Object(params).to_string()),
        output_bucket: routing.output_bucket.clone(),
        output_prefix,
    };
    let plan = vars.plan().map_err(|error| MessageError::Task {
        at: String::new(),
        error: as_job_fields(error),
    })?;
    Ok(WorkItem {
        plan,
        etag: None,
        version_id: None,
    })
}

/// Renames the planner's `PROCESSING_PARAMS.*` fields to the job JSON's own field names, since
/// the job's author never wrote a `PROCESSING_PARAMS`.
fn as_job_fields(error: TaskError) -> TaskError {
    let field_error = |field: &str, reason: String| TaskError::Invalid {
        field: field.to_owned(),
        reason,
    };
    match error {
        TaskError::Invalid { field, reason } => match field.strip_prefix("PROCESSING_PARAMS") {
            Some("") => field_error("job", reason),
            Some(rest) => field_error(rest.trim_start_matches('.'), reason),
            None => TaskError::Invalid { field, reason },
        },
        TaskError::Spec(e @ SpecError::UnknownPreset { .. }) => {
            field_error("preset", e.to_string())
        }
        TaskError::Spec(e) => field_error("chain", e.to_string()),
        other => other,
    }
}

/// Legacy task parameters: the message's own variables, planned exactly as the task would be.
fn legacy(value: &Value) -> Result<WorkItem, MessageError> {
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
    check_s3_input((bucket, "S3_BUCKET"), (key, "S3_KEY"))?;
    let params = match obj.get("PROCESSING_PARAMS") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => {
            return Err(invalid(
                "PROCESSING_PARAMS",
                "expected a JSON object, or a string holding one",
            ))
        }
    };
    let vars = Vars {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        params,
        output_bucket: opt_str(value, "", "OUTPUT_BUCKET")?.map(str::to_owned),
        output_prefix: opt_str(value, "", "OUTPUT_PREFIX")?.map(str::to_owned),
    };
    let plan = vars.plan().map_err(|error| MessageError::Task {
        at: String::new(),
        error,
    })?;
    Ok(WorkItem {
        plan,
        etag: None,
        version_id: None,
    })
}

/// The task-mode variables of one job.
struct Vars {
    bucket: String,
    key: String,
    params: Option<String>,
    output_bucket: Option<String>,
    output_prefix: Option<String>,
}

impl Vars {
    fn plan(&self) -> Result<TaskPlan, TaskError> {
        plan_from_env(|name| match name {
            "S3_BUCKET" => Some(self.bucket.clone()),
            "S3_KEY" => Some(self.key.clone()),
            "PROCESSING_PARAMS" => self.params.clone(),
            "OUTPUT_BUCKET" => self.output_bucket.clone(),
            "OUTPUT_PREFIX" => self.output_prefix.clone(),
            _ => None,
        })
    }
}

/// Checks an input bucket and key before planning, so that the error names the message's field
/// (`Records[0].s3.bucket.name`) rather than the planner's `S3_BUCKET/S3_KEY`.
fn check_s3_input(
    (bucket, bucket_path): (&str, &str),
    (key, key_path): (&str, &str),
) -> Result<(), MessageError> {
    ObjectRef::parse(&format!("s3://{bucket}/")).map_err(|_| {
        invalid(
            bucket_path,
            format!(
                "{:?} is not a valid bucket name (3-63 lower-case letters, digits, '.', '-')",
                short(bucket)
            ),
        )
    })?;
    // The planner treats a blank key as missing.
    if key.trim().is_empty() {
        return Err(invalid(key_path, "empty"));
    }
    if key.len() > 1024 {
        return Err(invalid(key_path, "longer than 1024 bytes"));
    }
    Ok(())
}

/// Decodes an S3 event key, which S3 encodes as `application/x-www-form-urlencoded`: `+` is a
/// space (a literal `+` arrives as `%2B`), then percent-escapes are bytes of UTF-8.
fn form_decode(raw: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes().enumerate();
    while let Some((at, byte)) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|(_, b)| hex_value(b));
                let lo = bytes.next().and_then(|(_, b)| hex_value(b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    let escape: String = raw.get(at..).unwrap_or("").chars().take(3).collect();
                    return Err(format!(
                        "invalid percent-escape {escape:?} at byte {at} \
                         (expected % and two hex digits)"
                    ));
                };
                out.push((hi << 4) | lo);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|e| {
        format!(
            "percent-escapes decode to invalid UTF-8 (at decoded byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The value of one hex digit (`u8::from_str_radix` would also accept a leading `+`).
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The major number of a dotted version made only of digits (`"2.1"` → 2).
fn major_version(version: &str) -> Option<u32> {
    let mut parts = version.split('.').map(|part| {
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    });
    let major = parts.next().flatten()?;
    parts.all(|p| p.is_some()).then_some(major)
}

// --- JSON access with field paths -----------------------------------------------------------

/// `path.name`, or `name` at the top level.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `value` as an object, or an error at `path`.
fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, MessageError> {
    value.as_object().ok_or_else(|| {
        invalid(
            if path.is_empty() { "message" } else { path },
            "expected a JSON object",
        )
    })
}

/// The field `name` of the object `value` at `path`; absent or `null` is an error.
fn req<'a>(value: &'a Value, path: &str, name: &str) -> Result<&'a Value, MessageError> {
    match object(value, path)?.get(name) {
        None | Some(Value::Null) => Err(invalid(&join(path, name), "missing")),
        Some(v) => Ok(v),
    }
}

/// The string field `name` of the object `value` at `path`.
fn req_str<'a>(value: &'a Value, path: &str, name: &str) -> Result<&'a str, MessageError> {
    req(value, path, name)?
        .as_str()
        .ok_or_else(|| invalid(&join(path, name), "expected a string"))
}

/// An optional string field: absent, `null` and `""` are `None`.
fn opt_str<'a>(value: &'a Value, path: &str, name: &str) -> Result<Option<&'a str>, MessageError> {
    match object(value, path)?.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(_) => Err(invalid(&join(path, name), "expected a string")),
    }
}

// --- error construction -----------------------------------------------------------------------

fn invalid(path: &str, reason: impl Into<String>) -> MessageError {
    MessageError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn spec(path: &str, reason: impl Into<String>) -> MessageError {
    MessageError::Spec {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// `at: error`, or just the error when `at` is empty; bounded.
fn prefixed(at: &str, error: &TaskError) -> String {
    if at.is_empty() {
        bounded(error.to_string())
    } else {
        bounded(format!("{at}: {error}"))
    }
}

/// A short description of a value for "unrecognised" errors: its type, or its first keys.
fn describe(value: &Value) -> String {
    const KEYS: usize = 6;
    match value {
        Value::Object(map) if map.is_empty() => "an empty JSON object".to_owned(),
        Value::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .take(KEYS)
                .map(|k| format!("{:?}", short(k)))
                .collect();
            let more = if map.len() > KEYS { ", …" } else { "" };
            format!("a JSON object with keys {}{more}", keys.join(", "))
        }
        Value::Array(_) => "a JSON array".to_owned(),
        Value::String(_) => "a JSON string".to_owned(),
        Value::Number(_) => "a JSON number".to_owned(),
        Value::Bool(_) => "a JSON boolean".to_owned(),
        Value::Null => "null".to_owned(),
    }
}

/// A value from the body, cut to [`MAX_ECHO`] characters, on one line.
fn short(text: &str) -> String {
    crate::job::cap_echo_at(text, MAX_ECHO)
}

/// Foreign error text, cut to [`MAX_REASON`] characters, on one line (serde echoes unknown field
/// names, which a hostile body can make arbitrarily long or fill with newlines).
fn bounded(text: String) -> String {
    crate::job::cap_echo_at(&text, MAX_REASON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::{SilenceAction, Threshold};
    use crate::encode::{Mp3Rate, OutputFormat};
    use crate::job::{preset, StageSpec};

    /// One record as in the S3 user guide's "Event message structure" page (version 2.2 example,
    /// every field ops-reference §3.5 lists, plus the ones S3 adds around them).
    fn record(event_name: &str, key: &str, etag: &str) -> Value {
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

    fn records(records: Vec<Value>) -> String {
        serde_json::json!({ "Records": records }).to_string()
    }

    /// The S3 user guide's test event.
    const TEST_EVENT: &str = r#"{
        "Service":"Amazon S3",
        "Event":"s3:TestEvent",
        "Time":"2014-10-13T15:57:02.089Z",
        "Bucket":"amzn-s3-demo-bucket",
        "RequestId":"5582815E1AEA5ADF",
        "HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
    }"#;

    /// The S3 user guide's EventBridge "Object Created" example, with `key` substituted.
    fn eventbridge_body(detail_type: &str, key: &str) -> String {
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
    fn sns_body(message: &str) -> String {
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

    fn parse(body: &str) -> Result<ParsedMessage, MessageError> {
        parse_message(body, &Routing::default())
    }

    fn one_item(parsed: &ParsedMessage) -> &WorkItem {
        assert_eq!(parsed.items.len(), 1, "{parsed:?}");
        &parsed.items[0]
    }

    fn s3(bucket: &str, key: &str) -> ObjectRef {
        ObjectRef::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }

    fn routing_8d() -> Routing {
        Routing {
            params: Some(r#"{"preset":"8d"}"#.to_owned()),
            ..Routing::default()
        }
    }

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
    fn s3_keys_are_form_decoded() {
        let body = records(vec![record(
            "ObjectCreated:Put",
            "public/unprocessed/u1/red+flower%2B1+%C3%A9t%C3%A9.mp3",
            "d41d8cd98f00b204e9800998ecf8427e",
        )]);
        let parsed = parse(&body).unwrap();
        assert_eq!(parsed.kind, MessageKind::S3Event);
        let item = one_item(&parsed);
        assert_eq!(
            item.plan.input,
            s3("media-in", "public/unprocessed/u1/red flower+1 été.mp3")
        );
        assert_eq!(
            item.etag.as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            item.version_id.as_deref(),
            Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
        );
        // No routing params: the legacy defaults, a one-shot split under the default prefix.
        assert_eq!(item.plan.jobs.len(), 1);
        assert_eq!(
            item.plan.jobs[0].output,
            s3("media-in", "public/processed/u1/red flower+1 été/")
        );
        assert_eq!(item.plan.jobs[0].preset.as_deref(), Some("oneshot"));
    }

    #[test]
    fn form_decoding_edge_cases() {
        assert_eq!(form_decode("a+b%20c%2b%2B").unwrap(), "a b c++");
        assert_eq!(form_decode("%E2%82%AC").unwrap(), "€");
        assert_eq!(form_decode("plain/key.wav").unwrap(), "plain/key.wav");
        for bad in ["50%", "50%2", "%zz", "%+1", "a%G0"] {
            let err = form_decode(bad).unwrap_err();
            assert!(err.contains("invalid percent-escape"), "{bad}: {err}");
        }
        assert!(form_decode("%C3").unwrap_err().contains("invalid UTF-8"));
        assert!(form_decode("%FF%FE").unwrap_err().contains("invalid UTF-8"));

        let body = records(vec![record("ObjectCreated:Put", "in/a%zz.mp3", "e")]);
        let err = parse(&body).unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert_eq!(
            err.to_string(),
            "Records[0].s3.object.key: invalid percent-escape \"%zz\" at byte 4 \
             (expected % and two hex digits)"
        );
    }

    #[test]
    fn several_records_are_several_items_and_other_events_are_skipped() {
        let body = records(vec![
            record("ObjectCreated:Put", "in/a.mp3", "etag-a"),
            record("ObjectRemoved:Delete", "in/gone.mp3", "etag-gone"),
            record(
                "ObjectCreated:CompleteMultipartUpload",
                "in/b.wav",
                "etag-b",
            ),
        ]);
        let parsed = parse_message(&body, &routing_8d()).unwrap();
        assert_eq!(parsed.kind, MessageKind::S3Event);
        let summary: Vec<(String, Option<&str>)> = parsed
            .items
            .iter()
            .map(|i| (i.plan.input.to_string(), i.etag.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("s3://media-in/in/a.mp3".to_owned(), Some("etag-a")),
                ("s3://media-in/in/b.wav".to_owned(), Some("etag-b")),
            ]
        );

        // Only removals: nothing to do, not an error.
        let body = records(vec![record("ObjectRemoved:Delete", "in/gone.mp3", "e")]);
        let parsed = parse(&body).unwrap();
        assert_eq!(parsed.kind, MessageKind::S3Event);
        assert!(parsed.items.is_empty());
    }

    #[test]
    fn routing_params_apply_to_s3_events() {
        let body = records(vec![record("ObjectCreated:Put", "in/a.flac", "e")]);
        let item = parse_message(&body, &routing_8d()).unwrap().items.remove(0);
        let job = &item.plan.jobs[..];
        assert_eq!(job.len(), 1);
        let expected = preset("8d").unwrap();
        assert_eq!(job[0].chain, expected.chain);
        assert_eq!(job[0].preset.as_deref(), Some("8d"));
        assert_eq!(
            job[0].format,
            Some(OutputFormat::Mp3 {
                rate: Mp3Rate::CbrPreferred { kbps: 192 }
            })
        );
        assert_eq!(job[0].output, s3("media-in", "processed/in/a/a.mp3"));

        // Output bucket and prefix overrides, as OUTPUT_BUCKET / OUTPUT_PREFIX in task mode.
        let routing = Routing {
            output_bucket: Some("media-out".to_owned()),
            output_prefix: Some("eightd".to_owned()),
            ..routing_8d()
        };
        let item = parse_message(&body, &routing).unwrap().items.remove(0);
        // The prefix is a root: every input gets its own folder under it.
        assert_eq!(
            item.plan.jobs[0].output,
            s3("media-out", "eightd/in/a/a.mp3")
        );

        // Bad worker params are reported against the record, as a spec problem.
        let routing = Routing {
            params: Some(r#"{"silenceThreshold":5}"#.to_owned()),
            ..Routing::default()
        };
        let err = parse_message(&body, &routing).unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert_eq!(
            err.to_string(),
            "Records[0] (s3://media-in/in/a.flac): PROCESSING_PARAMS.silenceThreshold: 5 is out \
             of range (allowed -90 ..= -10)"
        );
    }

    #[test]
    fn s3_record_errors_name_the_field() {
        let mut bad = record("ObjectCreated:Put", "in/a.mp3", "e");
        bad["eventVersion"] = "3.0".into();
        let body = records(vec![record("ObjectCreated:Put", "in/ok.mp3", "e"), bad]);
        let err = parse(&body).unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert_eq!(
            err.to_string(),
            "Records[1].eventVersion: unsupported S3 event version 3.0 (expected 2.x)"
        );

        for version in ["2.1", "2.6", "2"] {
            let mut ok = record("ObjectCreated:Post", "in/a.mp3", "e");
            ok["eventVersion"] = version.into();
            assert_eq!(
                parse(&records(vec![ok])).unwrap().items.len(),
                1,
                "{version}"
            );
        }
        for version in ["1.0", "20.1", "2.x", "+2.1", ""] {
            let mut bad = record("ObjectCreated:Put", "in/a.mp3", "e");
            bad["eventVersion"] = version.into();
            let err = parse(&records(vec![bad])).unwrap_err();
            assert!(
                matches!(err, MessageError::UnsupportedVersion { .. }),
                "{version}: {err}"
            );
        }

        let mut bad = record("ObjectCreated:Put", "in/a.mp3", "e");
        bad["s3"]["object"].as_object_mut().unwrap().remove("key");
        let body = records(vec![record("ObjectCreated:Put", "in/ok.mp3", "e"), bad]);
        assert_eq!(
            parse(&body).unwrap_err().to_string(),
            "Records[1].s3.object.key: missing"
        );

        let mut bad = record("ObjectCreated:Put", "in/a.mp3", "e");
        bad["eventSource"] = "aws:sqs".into();
        assert_eq!(
            parse(&records(vec![bad])).unwrap_err().to_string(),
            "Records[0].eventSource: \"aws:sqs\" is not an S3 event (expected \"aws:s3\")"
        );

        let mut bad = record("ObjectCreated:Put", "in/a.mp3", "e");
        bad["s3"]["bucket"]["name"] = "Bad_Bucket".into();
        let err = parse(&records(vec![bad])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Records[0].s3.bucket.name: \"Bad_Bucket\" is not a valid bucket"),
            "{err}"
        );

        assert_eq!(
            parse(r#"{"Records":[]}"#).unwrap_err().to_string(),
            "Records: empty (expected at least one event record)"
        );
        assert_eq!(
            parse(r#"{"Records":{}}"#).unwrap_err().to_string(),
            "Records: expected an array of event records"
        );
        assert_eq!(
            parse(r#"{"Records":[7]}"#).unwrap_err().to_string(),
            "Records[0]: expected a JSON object"
        );
    }

    #[test]
    fn test_event_raw_and_inside_sns() {
        let parsed = parse(TEST_EVENT).unwrap();
        assert_eq!(parsed.kind, MessageKind::TestEvent);
        assert!(parsed.items.is_empty());

        // As SNS delivers it: the inner JSON escaped into a string.
        let body = r#"{
          "Type" : "Notification",
          "MessageId" : "5b6a4e0d-7c3b-5a0a-9f1e-2d1c8a3e6f47",
          "TopicArn" : "arn:aws:sns:us-west-2:123456789012:media-events",
          "Subject" : "Amazon S3 Notification",
          "Message" : "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Time\":\"2014-10-13T15:57:02.089Z\",\"Bucket\":\"amzn-s3-demo-bucket\",\"RequestId\":\"5582815E1AEA5ADF\",\"HostId\":\"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE\"}",
          "Timestamp" : "2014-10-13T15:57:02.310Z",
          "SignatureVersion" : "1",
          "Signature" : "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
          "SigningCertURL" : "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
          "UnsubscribeURL" : "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:media-events:c9135db0-26c4-47ec-8998-413945fb5a96"
        }"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.kind, MessageKind::TestEvent);
        assert!(parsed.items.is_empty());

        let err = parse(r#"{"Service":"Amazon S3","Event":"s3:Other"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Event: unsupported S3 event \"s3:Other\" (expected \"s3:TestEvent\")"
        );
    }

    #[test]
    fn sns_wrapping_s3_and_eventbridge() {
        let inner = records(vec![
            record("ObjectCreated:Put", "in/red+flower.mp3", "etag-1"),
            record("ObjectCreated:Copy", "in/b.mp3", "etag-2"),
        ]);
        let parsed = parse_message(&sns_body(&inner), &routing_8d()).unwrap();
        assert_eq!(parsed.kind, MessageKind::Sns);
        assert_eq!(parsed.items.len(), 2);
        assert_eq!(
            parsed.items[0].plan.input,
            s3("media-in", "in/red flower.mp3")
        );
        assert_eq!(parsed.items[1].etag.as_deref(), Some("etag-2"));

        let parsed = parse(&sns_body(&eventbridge_body("Object Created", "in/x.wav"))).unwrap();
        assert_eq!(parsed.kind, MessageKind::Sns);
        assert_eq!(
            one_item(&parsed).plan.input,
            s3("amzn-s3-demo-bucket1", "in/x.wav")
        );

        // Errors inside are prefixed with the envelope's field.
        let mut bad = record("ObjectCreated:Put", "in/a.mp3", "e");
        bad["eventVersion"] = "3.0".into();
        let err = parse(&sns_body(&records(vec![bad]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Message.Records[0].eventVersion: unsupported S3 event version 3.0 (expected 2.x)"
        );
        // One level only, and only what S3 or EventBridge publish.
        let err = parse(&sns_body(&sns_body(TEST_EVENT))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Message: a JSON object with keys"),
            "{err}"
        );
        let err = parse(&sns_body(r#"{"input":"s3://b/in/a.mp3","preset":"8d"}"#)).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an S3 event notification"),
            "{err}"
        );
        let err = parse(&sns_body("not json")).unwrap_err();
        assert!(err.to_string().starts_with("Message: not JSON: "), "{err}");
        let err = parse(r#"{"Type":"SubscriptionConfirmation","Message":"confirm"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Type: unsupported SNS message type \"SubscriptionConfirmation\" \
             (expected \"Notification\")"
        );
    }

    #[test]
    fn eventbridge_keys_are_kept_literally() {
        let body = eventbridge_body("Object Created", "in/red+flower%2B.mp3");
        let parsed = parse_message(&body, &routing_8d()).unwrap();
        assert_eq!(parsed.kind, MessageKind::EventBridge);
        let item = one_item(&parsed);
        assert_eq!(
            item.plan.input,
            s3("amzn-s3-demo-bucket1", "in/red+flower%2B.mp3")
        );
        assert_eq!(
            item.etag.as_deref(),
            Some("b1946ac92492d2347c6235b4d2611184")
        );
        assert_eq!(
            item.version_id.as_deref(),
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
        );
        assert_eq!(
            item.plan.jobs[0].output,
            s3(
                "amzn-s3-demo-bucket1",
                "processed/in/red+flower%2B/red+flower%2B.mp3"
            )
        );

        let err = parse(&eventbridge_body("Object Deleted", "in/a.mp3")).unwrap_err();
        assert_eq!(err.kind(), "invalid_message");
        assert_eq!(
            err.to_string(),
            "detail-type: unsupported EventBridge event \"Object Deleted\" \
             (expected \"Object Created\")"
        );
        let mut other: Value =
            serde_json::from_str(&eventbridge_body("Object Created", "k")).unwrap();
        other["source"] = "aws.ec2".into();
        assert_eq!(
            parse(&other.to_string()).unwrap_err().to_string(),
            "source: EventBridge events from \"aws.ec2\" are not supported (expected \"aws.s3\")"
        );
        let mut no_key: Value =
            serde_json::from_str(&eventbridge_body("Object Created", "k")).unwrap();
        no_key["detail"]["object"]["key"] = Value::Null;
        assert_eq!(
            parse(&no_key.to_string()).unwrap_err().to_string(),
            "detail.object.key: missing"
        );
    }

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
                "output: \"out/a.mp3\" is a local path; the worker writes to S3 only \
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

//! Event messages: S3 event notifications, S3 test events, EventBridge "Object Created" events
//! and SNS notifications wrapping them. They name an object only; the worker's [`Routing`] says
//! what to do with it and where the outputs go.

use super::fields::{bounded, describe, invalid, join, opt_str, req, req_str, s3_input, short};
use super::{classify, MessageError, MessageKind, ParsedMessage, Routing, WorkItem};
use serde_json::Value;

/// An SNS notification: the inner message (one level only) must be an S3 event, an S3 test event
/// or an EventBridge event, which is what S3 and EventBridge publish to a topic.
pub(super) fn sns(value: &Value, routing: &Routing) -> Result<ParsedMessage, MessageError> {
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
        .map_err(|e| invalid("Message", format!("not JSON: {}", bounded(&e.to_string()))))?;
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
pub(super) fn test_event(value: &Value, base: &str) -> Result<(), MessageError> {
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
pub(super) fn s3_event(
    value: &Value,
    base: &str,
    routing: &Routing,
) -> Result<Vec<WorkItem>, MessageError> {
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
    event_item(
        path,
        (bucket, &join(&bucket_path, "name")),
        (&key, &key_path),
        routing,
        (etag, version_id),
    )
    .map(Some)
}

/// An EventBridge "Object Created" event from `aws.s3`.
///
/// Other detail types are errors, unlike other S3 event records: an EventBridge rule selects its
/// detail types itself, so receiving another one means the rule is wrong, which should be seen.
pub(super) fn eventbridge(
    value: &Value,
    base: &str,
    routing: &Routing,
) -> Result<WorkItem, MessageError> {
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
    event_item(
        &detail_path,
        (bucket, &join(&bucket_path, "name")),
        (key, &join(&object_path, "key")),
        routing,
        (etag, version_id),
    )
}

/// The work item for an event's object. `bucket` and `key` are (value, field path) pairs; `at`
/// is the event's path in the message.
fn event_item(
    at: &str,
    bucket: (&str, &str),
    key: (&str, &str),
    routing: &Routing,
    version: (Option<&str>, Option<&str>),
) -> Result<WorkItem, MessageError> {
    let input = s3_input(bucket, key)?;
    let output_folder =
        routing
            .output_folder(bucket.0, key.0)
            .map_err(|error| MessageError::Request {
                at: format!("{at} (s3://{}/{})", bucket.0, short(key.0)),
                error,
            })?;
    Ok(routing.item(input, routing.work.clone(), output_folder, version))
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

#[cfg(test)]
mod tests {
    use super::super::test_bodies::*;
    use super::form_decode;
    use crate::encode::{Mp3Rate, OutputFormat};
    use crate::job::preset;

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

        // Bad worker params would fail every event the same way: refused once, at startup.
        let err = Routing::new(None, None, Some(r#"{"silenceThreshold":5}"#)).unwrap_err();
        assert_eq!(err.kind(), "invalid_spec");
        assert_eq!(
            err.to_string(),
            "PROCESSING_PARAMS.silenceThreshold: 5 is out of range (allowed -90 ..= -10)"
        );
        let err = Routing::new(Some("Not_A_Bucket".to_owned()), None, None).unwrap_err();
        assert!(
            err.to_string().starts_with("OUTPUT_BUCKET/OUTPUT_PREFIX: "),
            "{err}"
        );
        assert_eq!(
            Routing::new(None, None, Some(" ")).unwrap().work,
            crate::job::Work::default()
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
}

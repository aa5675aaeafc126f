//! Job status records (`--status-table`) against the local server the test command starts
//! (moto serves DynamoDB beside S3 and SQS). The aws CLI is the independent reader: it creates
//! the tables, writes the producer's QUEUED items and reads every record back.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

mod common;

use common::aws::{aws, aws_ok, bucket, endpoint, keys, unique, upload};
use common::worker::{generate, queues, send, wait_until, Worker, LONG_WAIT};
use longwave::io::{JobStatus, S3Context, S3Settings, StatusTable, StatusWrite};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// A fresh table keyed by the string attribute `key`.
fn table(test: &str, key: &str) -> String {
    endpoint();
    let name = unique(&format!("status-{test}"));
    aws_ok(&[
        "dynamodb",
        "create-table",
        "--table-name",
        &name,
        "--attribute-definitions",
        &format!("AttributeName={key},AttributeType=S"),
        "--key-schema",
        &format!("AttributeName={key},KeyType=HASH"),
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    name
}

/// The item `key_value` as plain JSON (DynamoDB's typed values unwrapped), `None` if absent.
fn record(table: &str, key: &str, key_value: &str) -> Option<Value> {
    let out = aws_ok(&[
        "dynamodb",
        "get-item",
        "--table-name",
        table,
        "--consistent-read",
        "--key",
        &json!({ key: {"S": key_value} }).to_string(),
    ]);
    let v: Value = serde_json::from_str(&out).ok()?;
    v.get("Item").map(plain)
}

/// DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, `{"M": …}`, `{"L": …}`) as plain JSON.
fn plain(typed: &Value) -> Value {
    if let Some(map) = typed.as_object() {
        if map.len() == 1 {
            let (kind, value) = map.iter().next().unwrap();
            match kind.as_str() {
                "S" => return value.clone(),
                "N" => return json!(value.as_str().unwrap().parse::<f64>().unwrap()),
                "BOOL" => return value.clone(),
                "NULL" => return Value::Null,
                "L" => return Value::Array(value.as_array().unwrap().iter().map(plain).collect()),
                "M" => return plain(value),
                _ => {}
            }
        }
        return Value::Object(map.iter().map(|(k, v)| (k.clone(), plain(v))).collect());
    }
    typed.clone()
}

fn put_queued(table: &str, key: &str, key_value: &str) {
    aws_ok(&[
        "dynamodb",
        "put-item",
        "--table-name",
        table,
        "--item",
        &json!({ key: {"S": key_value}, "status": {"S": "QUEUED"}, "owner": {"S": "app"} })
            .to_string(),
    ]);
}

#[test]
fn the_worker_moves_records_from_queued_to_complete_or_failed() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("status-worker");
    let q = queues("status-worker", Some(3));
    let t = table("worker", "sampleId");
    upload(&generate(dir.path(), "a.mp3", 4), &b, "in/a.mp3");
    std::fs::write(dir.path().join("bad.mp3"), b"not audio at all".repeat(100)).unwrap();
    upload(&dir.path().join("bad.mp3"), &b, "in/bad.mp3");
    // The producer marks the recording QUEUED when it sends the job, as the one-shot service
    // does; the worker keeps the producer's own attributes.
    put_queued(&t, "sampleId", "rec-7");
    send(
        &q.url,
        &json!({"input": format!("s3://{b}/in/a.mp3"), "output": format!("s3://{b}/out/a/"),
                "preset": "oneshot", "id": "rec-7"})
        .to_string(),
    );
    send(
        &q.url,
        &json!({"S3_BUCKET": b, "S3_KEY": "in/bad.mp3", "sampleId": 8,
                "PROCESSING_PARAMS": {"createOneShot": false}})
        .to_string(),
    );
    // One request, two outputs (two jobs): one record, COMPLETE when both are.
    send(
        &q.url,
        &json!({"S3_BUCKET": b, "S3_KEY": "in/a.mp3", "sampleId": "two-formats",
                "OUTPUT_PREFIX": "multi/", "PROCESSING_PARAMS":
                {"createOneShot": false, "outputFormats": ["wav", "flac"]}})
        .to_string(),
    );
    // A job without an id: keyed by its input.
    send(
        &q.url,
        &json!({"input": format!("s3://{b}/in/a.mp3"), "output": format!("s3://{b}/plain/a.flac"),
                "preset": "transcode"})
        .to_string(),
    );
    let worker = Worker::start(
        &q.url,
        &[
            "--max-jobs",
            "1",
            "--status-table",
            &t,
            "--status-key-attribute",
            "sampleId",
        ],
        &[],
        dir.path(),
    );
    // Four successes, and the bad input three times: without --dlq-url a permanent failure
    // goes back to the queue at once until its redrive policy (3 receives) moves it.
    worker.wait_for("four jobs and three failures", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[]) >= 7.0
    });

    let done = record(&t, "sampleId", "rec-7").unwrap();
    assert_eq!(done["status"], "COMPLETE", "{done}");
    assert_eq!(
        done["owner"], "app",
        "the producer's attribute stays: {done}"
    );
    assert_eq!(done["attempts"], 1.0);
    assert_eq!(done["input"], format!("s3://{b}/in/a.mp3"));
    assert_eq!(done["manifest"], format!("s3://{b}/out/a/manifest.json"));
    let pieces = keys(&b, "out/a/")
        .iter()
        .filter(|k| k.contains("piece_"))
        .count();
    assert!(pieces >= 2, "{pieces}");
    assert_eq!(done["outputCount"], pieces as f64);
    assert_eq!(done["outputs"].as_array().unwrap().len(), pieces);
    assert!(done["outputs"][0]["startMs"].is_number(), "{done}");
    assert_eq!(done["levels"]["silence.threshold_db"], -30.0);
    assert!((done["durationS"].as_f64().unwrap() - 4.0).abs() < 0.1);
    for field in [
        "workerId",
        "startedAt",
        "completedAt",
        "inputVersion",
        "wallTimeS",
    ] {
        assert!(done.get(field).is_some(), "{field} missing: {done}");
    }

    let failed = record(&t, "sampleId", "8").unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["retryable"], false);
    assert_eq!(failed["attempts"], 3.0, "one per delivery: {failed}");
    assert_eq!(failed["delivery"], 3.0);
    assert!(
        failed["error"].as_str().unwrap().contains("bad.mp3"),
        "{failed}"
    );
    assert!(failed.get("errorType").is_some());

    let multi = record(&t, "sampleId", "two-formats").unwrap();
    assert_eq!(multi["status"], "COMPLETE", "{multi}");
    assert_eq!(multi["attempts"], 1.0, "one record, one attempt: {multi}");
    assert_eq!(multi["outputCount"], 2.0);
    let formats: Vec<&str> = multi["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["wav", "flac"]);
    assert_eq!(multi["manifest"].as_array().unwrap().len(), 2, "{multi}");

    let by_input = record(&t, "sampleId", &format!("s3://{b}/in/a.mp3")).unwrap();
    assert_eq!(by_input["status"], "COMPLETE", "{by_input}");

    // A duplicate delivery of the finished job: acknowledged, the record stays COMPLETE and
    // is not counted as another attempt.
    send(
        &q.url,
        &json!({"input": format!("s3://{b}/in/a.mp3"), "output": format!("s3://{b}/out/a/"),
                "preset": "oneshot", "id": "rec-7"})
        .to_string(),
    );
    worker.wait_for("the duplicate", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "duplicate")]) >= 1.0
    });
    let again = record(&t, "sampleId", "rec-7").unwrap();
    assert_eq!(again["status"], "COMPLETE");
    assert_eq!(again["attempts"], 1.0);
    // Three requests completed, and the duplicate wrote COMPLETE again (repairing a lost
    // write).
    assert_eq!(
        worker.metric(
            "longwave_status_writes_total",
            &[("status", "complete"), ("outcome", "applied")]
        ),
        4.0
    );
    // The failing job was delivered until its redrive (3 receives): FAILED each time.
    assert_eq!(
        worker.metric(
            "longwave_status_writes_total",
            &[("status", "failed"), ("outcome", "applied")]
        ),
        3.0
    );
}

#[test]
fn a_status_table_that_cannot_be_written_retries_the_job_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("status-retry");
    let q = queues("status-retry", Some(5));
    upload(&generate(dir.path(), "a.wav", 3), &b, "in/a.wav");
    // The table does not exist yet: PROCESSING cannot be written, so the job must not run.
    let name = unique("status-later");
    send(
        &q.url,
        &json!({"input": format!("s3://{b}/in/a.wav"), "output": format!("s3://{b}/out/a.flac"),
                "preset": "transcode", "id": "later"})
        .to_string(),
    );
    let worker = Worker::start(
        &q.url,
        &["--max-jobs", "1", "--status-table", &name],
        &[],
        dir.path(),
    );
    worker.wait_for("the first attempt", LONG_WAIT, |w| {
        w.metric(
            "longwave_jobs_finished_total",
            &[("outcome", "retry"), ("error_type", "status_write")],
        ) >= 1.0
    });
    assert!(
        keys(&b, "out/").is_empty(),
        "the job ran without its record"
    );
    aws_ok(&[
        "dynamodb",
        "create-table",
        "--table-name",
        &name,
        "--attribute-definitions",
        "AttributeName=id,AttributeType=S",
        "--key-schema",
        "AttributeName=id,KeyType=HASH",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    // The message comes back after its backoff (10 s ± 25 %) and completes.
    worker.wait_for("the retried job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 1.0
    });
    let done = record(&name, "id", "later").unwrap();
    assert_eq!(done["status"], "COMPLETE", "{done}");
    assert_eq!(done["delivery"], 2.0, "the second delivery ran it: {done}");
    assert_eq!(
        keys(&b, "out/"),
        vec![
            "out/a.flac".to_string(),
            "out/a.flac.manifest.json".to_string()
        ]
    );
    wait_until("the queue to drain", Duration::from_secs(30), || {
        common::worker::depth(&q.url) == (0, 0)
    });
}

#[test]
fn conditional_writes_never_move_a_complete_record_back_and_count_attempts() {
    let t = table("conditions", "id");
    let s3 = S3Context::from_env(S3Settings::default()).unwrap();
    let status = StatusTable::connect(&s3, &t, "id").unwrap();
    let write = |version: &str, state: JobStatus| {
        status
            .write("k", version, state, &[("note", json!(state.as_str()))])
            .unwrap()
    };
    assert_eq!(write("v1", JobStatus::Processing), StatusWrite::Applied);
    assert_eq!(write("v1", JobStatus::Failed), StatusWrite::Applied);
    assert_eq!(write("v1", JobStatus::Processing), StatusWrite::Applied);
    assert_eq!(record(&t, "id", "k").unwrap()["attempts"], 2.0);
    assert_eq!(write("v1", JobStatus::Complete), StatusWrite::Applied);
    // A late or duplicate delivery of the same version: kept COMPLETE.
    assert_eq!(
        write("v1", JobStatus::Processing),
        StatusWrite::KeptComplete
    );
    assert_eq!(write("v1", JobStatus::Failed), StatusWrite::KeptComplete);
    let kept = record(&t, "id", "k").unwrap();
    assert_eq!(kept["status"], "COMPLETE");
    assert_eq!(kept["note"], "COMPLETE");
    assert_eq!(kept["attempts"], 2.0);
    // A new version of the recording is a new job.
    assert_eq!(write("v2", JobStatus::Processing), StatusWrite::Applied);
    let next = record(&t, "id", "k").unwrap();
    assert_eq!(next["status"], "PROCESSING");
    assert_eq!(next["inputVersion"], "v2");
    assert_eq!(next["attempts"], 3.0);
    // A missing table is an error naming it, not a panic.
    let missing = StatusTable::connect(&s3, "no-such-table", "id").unwrap();
    let err = missing
        .write("k", "v1", JobStatus::Processing, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-table"), "{err}");
}

#[test]
fn task_and_process_keep_records_too() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("status-task");
    let t = table("task", "id");
    let input = generate(dir.path(), "talk.mp3", 3);
    upload(&input, &b, "input/u1/talk.mp3");
    let task = |params: &str| {
        Command::new(env!("CARGO_BIN_EXE_longwave"))
            .arg("task")
            .env("S3_BUCKET", &b)
            .env("S3_KEY", "input/u1/talk.mp3")
            .env("PROCESSING_PARAMS", params)
            .env("STATUS_TABLE", &t)
            .env("SAMPLE_ID", "sample-42")
            .output()
            .unwrap()
    };
    let out = task(r#"{"preset":"transcode"}"#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = record(&t, "id", "sample-42").unwrap();
    assert_eq!(done["status"], "COMPLETE", "{done}");
    assert_eq!(
        done["manifest"],
        format!("s3://{b}/processed/u1/talk/talk.mp3.manifest.json")
    );
    // The same task again: the record is complete for this version; nothing runs.
    let out = task(r#"{"preset":"transcode"}"#);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already complete"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(record(&t, "id", "sample-42").unwrap()["attempts"], 1.0);

    // process on a local file, keyed by the path as given; a failure is recorded as FAILED.
    let output = dir.path().join("out.wav");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_longwave"))
            .arg("process")
            .args(args)
            .args(["--status-table", &t, "--quiet"])
            .output()
            .unwrap()
    };
    let out = run(&[input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = record(&t, "id", input.to_str().unwrap()).unwrap();
    assert_eq!(local["status"], "COMPLETE", "{local}");
    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "meeting notes, not audio\n".repeat(50)).unwrap();
    let out = run(&[
        text.to_str().unwrap(),
        "-o",
        dir.path().join("n.wav").to_str().unwrap(),
        "--status-key",
        "notes",
    ]);
    assert!(!out.status.success());
    let failed = record(&t, "id", "notes").unwrap();
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["retryable"], false);
    // A table that does not exist fails the run before any work, naming the table.
    let out = Command::new(env!("CARGO_BIN_EXE_longwave"))
        .args(["process", input.to_str().unwrap(), "-o"])
        .arg(dir.path().join("never.wav"))
        .args(["--status-table", "no-such-table"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no-such-table"), "{stderr}");
    assert!(!dir.path().join("never.wav").exists());
    let _ = aws(&["dynamodb", "delete-table", "--table-name", &t]);
}

#[test]
fn a_complete_write_that_fails_after_the_outputs_keeps_them_and_the_redelivery_writes_it() {
    use common::fault_proxy::{Action, Fault, FaultProxy};
    let proxy = FaultProxy::start(&endpoint());
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("status-complete");
    let q = queues("status-complete", Some(5));
    let t = table("complete", "id");
    upload(&generate(dir.path(), "a.wav", 3), &b, "in/a.wav");
    // The manifest's PUT waits 2 s: a window, after PROCESSING was written, in which every
    // later status write fails (the SDK retries each 500 twice more).
    proxy.add(Fault {
        method: Some("PUT"),
        contains: vec![".manifest.json".to_owned()],
        action: Action::Delay(Duration::from_secs(2)),
        times: 1,
    });
    let url = proxy.url();
    let worker = Worker::start(
        &q.url,
        &["--max-jobs", "1", "--status-table", &t],
        &[("AWS_ENDPOINT_URL", url.as_str())],
        dir.path(),
    );
    send(
        &q.url,
        &json!({"input": format!("s3://{b}/in/a.wav"), "output": format!("s3://{b}/out/a.flac"),
                "preset": "transcode", "id": "c-1"})
        .to_string(),
    );
    worker.wait_for("PROCESSING", LONG_WAIT, |w| {
        w.metric(
            "longwave_status_writes_total",
            &[("status", "processing"), ("outcome", "applied")],
        ) >= 1.0
    });
    let refuse = proxy.add(Fault {
        method: Some("POST"),
        contains: vec!["UpdateItem".to_owned()],
        action: Action::InternalError,
        times: u64::MAX,
    });
    worker.wait_for("the failed COMPLETE write", LONG_WAIT, |w| {
        w.metric(
            "longwave_jobs_finished_total",
            &[("outcome", "retry"), ("error_type", "status_write")],
        ) >= 1.0
    });
    // The outputs stay committed: the job's work is not lost.
    let written = vec![
        "out/a.flac".to_string(),
        "out/a.flac.manifest.json".to_string(),
    ];
    assert_eq!(keys(&b, "out/"), written);
    let etag = |key: &str| aws_ok(&["s3api", "head-object", "--bucket", &b, "--key", key]);
    let before: Value = serde_json::from_str(&etag("out/a.flac")).unwrap();
    assert_eq!(record(&t, "id", "c-1").unwrap()["status"], "PROCESSING");
    proxy.remove(refuse);
    // The redelivery (after 10 s ± 25 %) finds the outputs complete, writes COMPLETE and runs
    // nothing again.
    worker.wait_for("the redelivery", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "duplicate")]) >= 1.0
    });
    let done = record(&t, "id", "c-1").unwrap();
    assert_eq!(done["status"], "COMPLETE", "{done}");
    assert_eq!(done["attempts"], 1.0, "the job ran once: {done}");
    assert_eq!(done["outputCount"], 1.0);
    assert_eq!(keys(&b, "out/"), written);
    let after: Value = serde_json::from_str(&etag("out/a.flac")).unwrap();
    assert_eq!(before["ETag"], after["ETag"]);
    assert_eq!(
        before["LastModified"], after["LastModified"],
        "not written twice"
    );
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        0.0,
        "the first attempt ended as a retry, the second as a duplicate"
    );
    wait_until("the queue to drain", Duration::from_secs(30), || {
        common::worker::depth(&q.url) == (0, 0)
    });
}

//! `longwave worker` end to end against the local SQS/S3 server the test command starts
//! (scripts/test.sh → scripts/local-aws.sh). The worker runs as a real process; the aws CLI is
//! the independent client that uploads inputs, sends messages, and inspects queues and buckets.

#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure, which is what we want

mod common;

use common::aws::{aws_ok, bucket, endpoint, keys, pending_uploads, unique, upload};
use common::worker::{
    depth, free_port, generate, queues, sample_sum, send, wait_until, Worker, LONG_WAIT,
};
use longwave::telemetry::CATALOGUE;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn get_json(bucket: &str, key: &str, dir: &Path) -> serde_json::Value {
    let path = dir.join(unique("get"));
    aws_ok(&[
        "s3",
        "cp",
        &format!("s3://{bucket}/{key}"),
        path.to_str().unwrap(),
        "--only-show-errors",
    ]);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// An object's ETag as S3 events write it (without quotes), and its version id if any.
fn head(bucket: &str, key: &str) -> (String, Option<String>) {
    let out = aws_ok(&["s3api", "head-object", "--bucket", bucket, "--key", key]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["ETag"].as_str().unwrap().trim_matches('"').to_owned(),
        v["VersionId"].as_str().map(str::to_owned),
    )
}

#[test]
fn twenty_jobs_three_corrupt_one_invalid_end_in_sixteen_outputs_and_four_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("twenty");
    let q = queues("twenty", None);
    let good_mp3 = generate(dir.path(), "good.mp3", 4);
    let good_wav = generate(dir.path(), "good.wav", 4);
    // Corrupt inputs: random bytes named .mp3, text named .flac, a WAV cut in half.
    let noise = dir.path().join("noise.mp3");
    std::fs::write(
        &noise,
        (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let text = dir.path().join("notes.flac");
    std::fs::write(&text, "these are meeting notes, not audio\n".repeat(100)).unwrap();
    let cut = dir.path().join("cut.wav");
    let wav_bytes = std::fs::read(&good_wav).unwrap();
    std::fs::write(&cut, &wav_bytes[..wav_bytes.len() / 2]).unwrap();
    upload(&good_mp3, &b, "in/good.mp3");
    upload(&good_wav, &b, "in/good.wav");
    upload(&noise, &b, "in/noise.mp3");
    upload(&text, &b, "in/notes.flac");
    upload(&cut, &b, "in/cut.wav");

    for i in 0..16 {
        let body = if i % 2 == 0 {
            serde_json::json!({"input": format!("s3://{b}/in/good.mp3"), "output": format!("s3://{b}/out/{i}/"), "preset": "8d"})
        } else {
            serde_json::json!({"input": format!("s3://{b}/in/good.wav"), "output": format!("s3://{b}/out/{i}/"), "chain": [{"type": "gain", "gain_db": -3.0}], "format": "flac"})
        };
        send(&q.url, &body.to_string());
    }
    for (i, key) in ["in/noise.mp3", "in/notes.flac", "in/cut.wav"]
        .iter()
        .enumerate()
    {
        let body = serde_json::json!({"input": format!("s3://{b}/{key}"), "output": format!("s3://{b}/bad/{i}/"), "preset": "8d"});
        send(&q.url, &body.to_string());
    }
    send(
        &q.url,
        &serde_json::json!({"input": format!("s3://{b}/in/good.mp3"), "output": format!("s3://{b}/out/x/"), "preset": "9d"}).to_string(),
    );

    let worker = Worker::start(
        &q.url,
        &["--dlq-url", &q.dlq, "--max-jobs", "4"],
        &[],
        dir.path(),
    );
    // Messages are settled (deleted, dead-lettered) just after their jobs are counted.
    worker.wait_for("20 finished jobs, 20 settled messages", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[]) >= 20.0
            && w.metric("longwave_dead_lettered_messages_total", &[]) >= 4.0
    });
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        16.0
    );
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "failed")]),
        4.0
    );
    assert_eq!(
        worker.metric(
            "longwave_jobs_finished_total",
            &[("outcome", "failed"), ("error_type", "invalid_spec")]
        ),
        1.0
    );
    assert_eq!(
        worker.metric(
            "longwave_dead_lettered_messages_total",
            &[("route", "explicit")]
        ),
        4.0
    );
    wait_until("the queue to drain", Duration::from_secs(30), || {
        depth(&q.url) == (0, 0)
    });
    assert_eq!(depth(&q.dlq).0, 4);

    let out = keys(&b, "out/");
    for i in 0..16 {
        let ext = if i % 2 == 0 { "mp3" } else { "flac" };
        assert!(
            out.contains(&format!("out/{i}/good.{ext}")),
            "output {i} missing: {out:?}"
        );
        assert!(
            out.contains(&format!("out/{i}/manifest.json")),
            "manifest {i} missing"
        );
    }
    assert_eq!(out.len(), 32, "{out:?}");
    // Each corrupt input left a failure manifest saying why, and no output.
    let bad = keys(&b, "bad/");
    assert_eq!(bad.len(), 3, "{bad:?}");
    for i in 0..3 {
        let m = get_json(&b, &format!("bad/{i}/manifest.json"), dir.path());
        assert_eq!(m["status"], "failed");
        assert_eq!(m["error"]["retryable"], false);
        assert!(
            m["error"]["message"].as_str().unwrap().contains("in/"),
            "{m}"
        );
    }
    // The DLQ copies carry the reason.
    let dlq = aws_ok(&[
        "sqs",
        "receive-message",
        "--queue-url",
        &q.dlq,
        "--max-number-of-messages",
        "10",
        "--message-attribute-names",
        "All",
        "--visibility-timeout",
        "30",
    ]);
    assert!(dlq.contains("longwave_error_type"), "{dlq}");
    assert!(dlq.contains("invalid_spec"), "{dlq}");
    assert_eq!(pending_uploads(&b), 0);

    // The worker is still serving: one more job completes.
    let mut worker = worker;
    assert!(worker.child.try_wait().unwrap().is_none(), "worker exited");
    send(&q.url, &serde_json::json!({"input": format!("s3://{b}/in/good.wav"), "output": format!("s3://{b}/late/"), "preset": "transcode"}).to_string());
    worker.wait_for("the 21st job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 17.0
    });
    assert!(keys(&b, "late/")
        .iter()
        .any(|k| k.ends_with("manifest.json")));
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn metrics_endpoint_serves_every_catalogue_entry_with_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("metrics");
    let q = queues("metrics", Some(3));
    upload(&generate(dir.path(), "m.mp3", 3), &b, "in/m.mp3");
    send(&q.url, &serde_json::json!({"input": format!("s3://{b}/in/m.mp3"), "output": format!("s3://{b}/out/"), "preset": "8d"}).to_string());
    let worker = Worker::start(&q.url, &["--max-jobs", "1"], &[], dir.path());
    worker.wait_for("the job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 1.0
    });
    // RSS is sampled every few seconds.
    worker.wait_for("an RSS sample", Duration::from_secs(20), |w| {
        w.metric("longwave_memory_rss_bytes", &[]) > 0.0
    });
    let text = worker.scrape();
    for def in CATALOGUE {
        let type_line = format!("# TYPE {} {}", def.name, def.kind.prometheus_type());
        assert!(
            text.contains(&type_line),
            "missing `{type_line}` in:\n{text}"
        );
        let sample_name = match def.kind {
            longwave::telemetry::MetricKind::Histogram => format!("{}_bucket", def.name),
            _ => def.name.to_string(),
        };
        let sample = text
            .lines()
            .find(|l| {
                l.starts_with(&format!("{sample_name}{{"))
                    || l.starts_with(&format!("{sample_name} "))
            })
            .unwrap_or_else(|| panic!("no sample of {}", def.name));
        for label in def.labels {
            assert!(
                sample.contains(&format!("{label}=\"")),
                "{} lacks label {label}: {sample}",
                def.name
            );
        }
    }
    // Histograms have explicit buckets (not summaries), up to hours for job durations.
    assert!(
        text.contains("longwave_job_duration_seconds_bucket{outcome=\"success\",le=\"14400\"}"),
        "{text}"
    );
    assert!(worker.metric("longwave_audio_processed_seconds_total", &[]) >= 3.0);
    assert!(
        worker.metric(
            "longwave_stage_processed_frames_total",
            &[("stage", "pan8d")]
        ) >= 3.0 * 44_100.0
    );
    assert!(worker.metric("longwave_source_read_bytes_total", &[]) > 10_000.0);
    assert!(worker.metric("longwave_sink_written_bytes_total", &[]) > 10_000.0);
    assert_eq!(worker.metric("longwave_job_slots", &[]), 1.0);
    assert!(worker.metric("longwave_memory_budget_bytes", &[]) > 64.0 * 1024.0 * 1024.0);
    assert!(
        worker.metric(
            "longwave_s3_request_duration_seconds_count",
            &[("op", "get_object"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        worker.metric(
            "longwave_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // No job id or key in any label.
    assert!(
        !text.contains("in/m.mp3") && !text.contains(&b),
        "high-cardinality label leaked"
    );
    // Rare-event counters exist at 0 before their first event, so rate() sees that event and
    // the panels read 0 rather than "No data" (checked by hand against Prometheus 2.42: before
    // this, the first invalid message left the "Invalid messages per minute" panel at nothing).
    for line in [
        "longwave_jobs_received_total{source=\"invalid\"} 0",
        "longwave_dead_lettered_messages_total{route=\"explicit\"} 0",
        "longwave_dead_lettered_messages_total{route=\"redrive\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`");
    }
    // Prometheus's own linter accepts the page (names, units, _total, HELP/TYPE); promtool comes
    // with Debian's prometheus package, which scripts/setup-test-env.sh installs.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is required: run scripts/setup-test-env.sh (Debian package prometheus)");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn the_queue_backlog_is_published_from_sqs_own_counts() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("depth");
    let q = queues("depth", Some(3));
    // Long enough that the first job is still running when the worker first reads the queue.
    upload(&generate(dir.path(), "long.wav", 120), &b, "in/long.wav");
    for i in 0..5 {
        let body = serde_json::json!({"input": format!("s3://{b}/in/long.wav"), "output": format!("s3://{b}/out/{i}/"), "preset": "8d"});
        send(&q.url, &body.to_string());
    }
    let worker = Worker::start(&q.url, &["--max-jobs", "1"], &[], dir.path());
    // The series appear with the first read (never a placeholder 0 before it).
    worker.wait_for("a queue depth sample", Duration::from_secs(20), |w| {
        w.scrape().contains("longwave_queue_messages{")
    });
    let page = worker.scrape();
    let visible = sample_sum(&page, "longwave_queue_messages", &[("state", "visible")]);
    let in_flight = sample_sum(&page, "longwave_queue_messages", &[("state", "in_flight")]);
    // Read at startup: all five waiting, or one taken by the single slot.
    assert!(
        (visible, in_flight) == (5.0, 0.0) || (visible, in_flight) == (4.0, 1.0),
        "visible {visible}, in flight {in_flight}"
    );
}

#[test]
fn a_job_longer_than_the_visibility_timeout_is_extended_and_processed_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("heartbeat");
    let q = queues("heartbeat", Some(5));
    // Six minutes of MP3 through the 8D chain takes several seconds: many 2-second windows.
    upload(&generate(dir.path(), "long.mp3", 360), &b, "in/long.mp3");
    send(&q.url, &serde_json::json!({"input": format!("s3://{b}/in/long.mp3"), "output": format!("s3://{b}/out/"), "preset": "8d"}).to_string());
    let worker = Worker::start(
        &q.url,
        &["--visibility-timeout", "2", "--max-jobs", "2"],
        &[],
        dir.path(),
    );
    worker.wait_for("the job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[]) >= 1.0
    });
    let text = worker.scrape();
    let duration = sample_sum(&text, "longwave_job_duration_seconds_sum", &[]);
    assert!(
        duration > 2.0,
        "the job took {duration} s: too short to need a heartbeat"
    );
    assert!(
        sample_sum(&text, "longwave_queue_visibility_extensions_total", &[]) >= 2.0,
        "{text}"
    );
    // Processed once: one success, nothing else (a second delivery would show as another
    // finished job), and the message is gone.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(worker.metric("longwave_jobs_finished_total", &[]), 1.0);
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        1.0
    );
    assert_eq!(depth(&q.url), (0, 0));
    assert_eq!(depth(&q.dlq), (0, 0));
    assert_eq!(
        keys(&b, "out/"),
        vec!["out/long.mp3".to_string(), "out/manifest.json".to_string()]
    );
}

/// The 8D chain to a WAV: slow enough to interrupt, and large enough to be a multipart upload.
fn long_wav_job(b: &str) -> String {
    serde_json::json!({
        "input": format!("s3://{b}/in/long.mp3"),
        "output": format!("s3://{b}/out/"),
        "chain": [{"type": "pan8d"}, {"type": "reverb"}, {"type": "limiter"}],
        "format": "wav",
    })
    .to_string()
}

/// A fault proxy in front of the local server that holds every multipart part upload for 2 s,
/// and its URL: a worker behind it is still uploading when a test signals it. (The job alone
/// once took long enough; since the DSP got 4× cheaper the 6-minute job finished inside the
/// 0.5 s shutdown grace, and the test raced the job instead of testing the shutdown.)
fn slow_part_uploads() -> (common::fault_proxy::FaultProxy, String) {
    use common::fault_proxy::{Action, Fault, FaultProxy};
    let proxy = FaultProxy::start(&endpoint());
    proxy.add(Fault {
        method: Some("PUT"),
        contains: vec!["uploadId=".to_owned(), "partNumber=".to_owned()],
        action: Action::Delay(Duration::from_secs(2)),
        times: u64::MAX,
    });
    let url = proxy.url();
    (proxy, url)
}

#[test]
fn sigterm_mid_job_aborts_the_upload_releases_the_message_and_another_worker_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("sigterm");
    let q = queues("sigterm", Some(5));
    upload(&generate(dir.path(), "long.mp3", 360), &b, "in/long.mp3");
    send(&q.url, &long_wav_job(&b));
    let (_proxy, slow_parts) = slow_part_uploads();
    // Visibility far longer than the test: only the release can bring the message back soon.
    let mut first = Worker::start(
        &q.url,
        &[
            "--visibility-timeout",
            "300",
            "--shutdown-grace",
            "0.5",
            "--max-jobs",
            "1",
        ],
        &[("AWS_ENDPOINT_URL", slow_parts.as_str())],
        dir.path(),
    );
    first.wait_for("a multipart upload in progress", LONG_WAIT, |_| {
        pending_uploads(&b) > 0
    });
    first.signal("TERM");
    let status = first.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status:?}; log:\n{}", first.log());
    assert!(
        first.log().contains("Job cancelled by shutdown"),
        "{}",
        first.log()
    );
    assert_eq!(keys(&b, "out/"), Vec::<String>::new(), "no partial object");
    assert_eq!(pending_uploads(&b), 0, "the upload was aborted");
    wait_until("the released message", Duration::from_secs(10), || {
        depth(&q.url).0 == 1
    });

    let second = Worker::start(&q.url, &["--max-jobs", "1"], &[], dir.path());
    second.wait_for("the job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 1.0
    });
    assert_eq!(
        keys(&b, "out/"),
        vec!["out/long.wav".to_string(), "out/manifest.json".to_string()]
    );
    let manifest = get_json(&b, "out/manifest.json", dir.path());
    assert!((manifest["input"]["duration_s"].as_f64().unwrap() - 360.0).abs() < 0.1);
    assert_eq!(depth(&q.url), (0, 0));
}

#[test]
fn a_worker_killed_mid_job_is_replaced_and_the_job_completes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("sigkill");
    let q = queues("sigkill", Some(5));
    upload(&generate(dir.path(), "long.mp3", 360), &b, "in/long.mp3");
    send(&q.url, &long_wav_job(&b));
    let (_proxy, slow_parts) = slow_part_uploads();
    let mut first = Worker::start(
        &q.url,
        &["--visibility-timeout", "3", "--max-jobs", "1"],
        &[("AWS_ENDPOINT_URL", slow_parts.as_str())],
        dir.path(),
    );
    first.wait_for("a multipart upload in progress", LONG_WAIT, |_| {
        pending_uploads(&b) > 0
    });
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert_eq!(keys(&b, "out/"), Vec::<String>::new());

    // The replacement gets the message once its visibility (3 s, no more heartbeats) runs out.
    let second = Worker::start(
        &q.url,
        &["--visibility-timeout", "3", "--max-jobs", "1"],
        &[],
        dir.path(),
    );
    second.wait_for("the job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[]) >= 1.0
    });
    std::thread::sleep(Duration::from_secs(4)); // a wrong second delivery would show by now
    assert_eq!(second.metric("longwave_jobs_finished_total", &[]), 1.0);
    assert_eq!(
        second.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        1.0
    );
    assert_eq!(
        keys(&b, "out/"),
        vec!["out/long.wav".to_string(), "out/manifest.json".to_string()]
    );
    assert_eq!(depth(&q.url), (0, 0));
    assert_eq!(depth(&q.dlq), (0, 0));
    // The killed worker's upload is left pending (nothing could abort it); the bucket's
    // AbortIncompleteMultipartUpload lifecycle rule removes it (deploy/README.md).
    assert!(pending_uploads(&b) <= 1);
}

#[test]
fn every_message_shape_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("shapes");
    let q = queues("shapes", Some(3));
    let input = generate(dir.path(), "s.mp3", 3);
    for key in [
        "in/s3 event+1.mp3",
        "in/eb+key.mp3",
        "in/via sns.mp3",
        "in/legacy.mp3",
        "in/plain.mp3",
    ] {
        upload(&input, &b, key);
    }
    // Every key holds the same bytes: one ETag, as the events report it.
    let etag = head(&b, "in/plain.mp3").0;
    let record = |key: &str| {
        serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-22T10:00:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:X"}, "requestParameters": {"sourceIPAddress": "10.0.0.1"},
            "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": b, "ownerIdentity": {"principalId": "P"}, "arn": format!("arn:aws:s3:::{b}")},
                   "object": {"key": key, "size": 1000, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}}
        })
    };
    // S3 event: the key is form-URL-encoded ("+" is a space, "%2B" a plus).
    send(
        &q.url,
        &serde_json::json!({"Records": [record("in/s3+event%2B1.mp3")]}).to_string(),
    );
    send(&q.url, &serde_json::json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-22T10:00:00.000Z", "Bucket": b, "RequestId": "R", "HostId": "H"}).to_string());
    send(&q.url, &serde_json::json!({
        "version": "0", "id": "1", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{b}")],
        "detail": {"version": "0", "bucket": {"name": b}, "object": {"key": "in/eb+key.mp3", "size": 1000, "etag": etag, "sequencer": "1"},
                   "request-id": "R", "requester": "123456789012", "reason": "PutObject"}
    }).to_string());
    let inner = serde_json::json!({"Records": [record("in/via+sns.mp3")]}).to_string();
    send(&q.url, &serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": inner, "Timestamp": "2026-11-22T10:00:00.000Z"}).to_string());
    send(&q.url, &serde_json::json!({"S3_BUCKET": b, "S3_KEY": "in/legacy.mp3", "PROCESSING_PARAMS": {"createOneShot": false, "outputFormats": ["wav"]}}).to_string());
    send(&q.url, &serde_json::json!({"input": format!("s3://{b}/in/plain.mp3"), "output": format!("s3://{b}/plain/out.flac"), "preset": "transcode", "waveform": {}}).to_string());

    let worker = Worker::start(
        &q.url,
        &["--max-jobs", "2"],
        &[("PROCESSING_PARAMS", r#"{"preset":"8d"}"#)],
        dir.path(),
    );
    worker.wait_for("five jobs and the test event", LONG_WAIT, |w| {
        w.metric("longwave_jobs_received_total", &[]) >= 6.0
            && w.metric("longwave_jobs_finished_total", &[]) >= 5.0
    });
    let text = worker.scrape();
    assert_eq!(
        sample_sum(
            &text,
            "longwave_jobs_finished_total",
            &[("outcome", "success")]
        ),
        5.0,
        "{}",
        worker.log()
    );
    for (source, n) in [
        ("s3", 1.0),
        ("test_event", 1.0),
        ("eventbridge", 1.0),
        ("sns", 1.0),
        ("legacy", 1.0),
        ("job", 1.0),
    ] {
        assert_eq!(
            sample_sum(&text, "longwave_jobs_received_total", &[("source", source)]),
            n,
            "{source}"
        );
    }
    let out = keys(&b, "");
    for expected in [
        "processed/in/s3 event+1/s3 event+1.mp3",
        "processed/in/eb+key/eb+key.mp3",
        "processed/in/via sns/via sns.mp3",
        "processed/in/legacy/legacy.wav",
        "plain/out.flac",
        "plain/out.flac.manifest.json",
        "plain/out.flac.waveform.dat",
    ] {
        assert!(
            out.iter().any(|k| k == expected),
            "{expected} missing from {out:?}; log:\n{}",
            worker.log()
        );
    }
    wait_until("the queue to drain", Duration::from_secs(20), || {
        depth(&q.url) == (0, 0)
    });
    assert_eq!(
        depth(&q.dlq),
        (0, 0),
        "the test event must not be dead-lettered"
    );

    // A redelivered event for an input whose outputs are complete is acknowledged as a
    // duplicate, without reprocessing.
    send(
        &q.url,
        &serde_json::json!({"Records": [record("in/s3+event%2B1.mp3")]}).to_string(),
    );
    worker.wait_for("the duplicate", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "duplicate")]) >= 1.0
    });
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        5.0
    );
}

#[test]
fn an_unreachable_s3_is_a_retryable_failure_and_the_message_waits_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("retry");
    let q = queues("retry", Some(3));
    upload(&generate(dir.path(), "r.mp3", 2), &b, "in/r.mp3");
    send(
        &q.url,
        &serde_json::json!({"input": format!("s3://{b}/in/r.mp3"), "output": format!("s3://{b}/out/"), "preset": "8d"}).to_string(),
    );
    // SQS is reachable, S3 is not (a closed port): a network failure, not the input's fault.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let worker = Worker::start(
        &q.url,
        &["--max-jobs", "1"],
        &[
            ("AWS_ENDPOINT_URL_S3", closed.as_str()),
            ("AWS_MAX_ATTEMPTS", "1"),
        ],
        dir.path(),
    );
    worker.wait_for("the failed attempt", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "retry")]) >= 1.0
    });
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "failed")]),
        0.0
    );
    // Released with a backoff (about 10 s on the first delivery): in flight, not visible, not
    // dead-lettered, no failure manifest.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(depth(&q.url), (0, 1));
    assert_eq!(depth(&q.dlq), (0, 0));
    assert_eq!(keys(&b, "out/"), Vec::<String>::new());
    assert!(
        worker.log().contains("\"outcome\":\"retry\""),
        "{}",
        worker.log()
    );
}

fn worker_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_longwave"))
        .arg("worker")
        .args(["--metrics-addr", "off", "--log-format", "text"])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SQS_QUEUE_URL")
        .output()
        .unwrap();
    // 1 for a refused setting, 2 for clap's usage errors.
    assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn absurd_settings_and_unusable_queues_are_refused_with_a_clear_reason() {
    let q = queues("refuse", Some(3));
    let err = worker_error(&["--queue-url", &q.url, "--max-jobs", "0"], &[]);
    assert!(err.contains("--max-jobs 0 is outside 1..=256"), "{err}");
    let err = worker_error(&["--queue-url", &q.url, "--visibility-timeout", "1"], &[]);
    assert!(err.contains("--visibility-timeout 1 s is outside"), "{err}");
    let err = worker_error(
        &["--queue-url", &q.url],
        &[("PROCESSING_PARAMS", r#"{"preset":"9d"}"#)],
    );
    assert!(
        err.contains("PROCESSING_PARAMS") && err.contains("9d"),
        "{err}"
    );
    let err = worker_error(&[], &[]);
    assert!(err.contains("--queue-url"), "{err}");
    let missing = format!("{}/123456789012/{}", endpoint(), unique("nope"));
    let err = worker_error(&["--queue-url", &missing], &[]);
    assert!(
        err.contains("GetQueueAttributes") && err.contains(&missing),
        "{err}"
    );
    // Without a redrive policy and without --dlq-url a poison message could never leave.
    let bare = queues("bare", None);
    let err = worker_error(&["--queue-url", &bare.url], &[]);
    assert!(err.contains("no redrive policy"), "{err}");
    // The legacy image's switch: `task` with PROCESSING_MODE=service is the worker.
    let out = Command::new(env!("CARGO_BIN_EXE_longwave"))
        .arg("task")
        .env("PROCESSING_MODE", "service")
        .env("SQS_QUEUE_URL", &bare.url)
        .env("LONGWAVE_METRICS_ADDR", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no redrive policy"),
        "{err}"
    );
}

#[test]
fn a_different_input_aimed_at_an_existing_output_is_dead_lettered_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("clash");
    let q = queues("clash", None);
    upload(&generate(dir.path(), "a.mp3", 2), &b, "in/a.mp3");
    upload(&generate(dir.path(), "b.mp3", 3), &b, "in/b.mp3");
    let job = |key: &str| {
        serde_json::json!({"input": format!("s3://{b}/{key}"), "output": format!("s3://{b}/same/x.mp3"), "preset": "8d"})
            .to_string()
    };
    send(&q.url, &job("in/a.mp3"));
    let worker = Worker::start(
        &q.url,
        &["--dlq-url", &q.dlq, "--max-jobs", "1"],
        &[],
        dir.path(),
    );
    worker.wait_for("the first job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 1.0
    });
    // Another input, same output key: its commit meets the first output, and no manifest for
    // its own input ever appears, so it must not count as a duplicate.
    send(&q.url, &job("in/b.mp3"));
    worker.wait_for("the second job", LONG_WAIT, |w| {
        w.metric("longwave_dead_lettered_messages_total", &[]) >= 1.0
    });
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "duplicate")]),
        0.0
    );
    assert_eq!(depth(&q.dlq).0, 1);
    let manifest = get_json(&b, "same/x.mp3.manifest.json", dir.path());
    assert_eq!(manifest["status"], "failed", "{manifest}");
    assert!(
        manifest["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{manifest}"
    );
}

#[test]
fn a_nan_input_does_not_take_the_worker_down() {
    // Before: LAME's `calc_energy` assertion aborted the whole worker (exit 134) with every job
    // in flight, and the message crashed the next worker too.
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("nan");
    let q = queues("nan", Some(3));
    let rate = 44_100usize;
    let mut samples = Vec::with_capacity(3 * rate * 2);
    for i in 0..3 * rate {
        let x = if (rate..rate + 882).contains(&i) {
            f32::NAN
        } else {
            0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()
        };
        samples.extend([x, x]);
    }
    let poisoned = dir.path().join("nan.wav");
    common::write_float_wav(&poisoned, rate as u32, 2, &samples);
    upload(&poisoned, &b, "in/nan.wav");
    let good = generate(dir.path(), "good.wav", 3);
    for name in ["g1", "g2", "g3"] {
        upload(&good, &b, &format!("in/{name}.wav"));
    }
    for name in ["g1", "nan", "g2", "g3"] {
        send(&q.url, &serde_json::json!({"input": format!("s3://{b}/in/{name}.wav"), "output": format!("s3://{b}/out/{name}/"), "preset": "8d"}).to_string());
    }
    let mut worker = Worker::start(&q.url, &["--max-jobs", "2"], &[], dir.path());
    worker.wait_for("four jobs", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 4.0
    });
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker exited: {}",
        worker.log()
    );
    assert_eq!(
        worker.metric(
            "longwave_decode_repaired_samples_total",
            &[("kind", "non_finite")]
        ),
        882.0 * 2.0
    );
    let manifest = get_json(&b, "out/nan/manifest.json", dir.path());
    assert_eq!(manifest["input"]["repaired_samples"]["non_finite"], 1764);
    // The last success is counted just before its message is deleted.
    wait_until("every message deleted", Duration::from_secs(30), || {
        depth(&q.url) == (0, 0)
    });
    assert_eq!(depth(&q.dlq), (0, 0));
}

#[test]
fn a_job_killed_between_its_outputs_and_its_manifest_is_finished_by_the_redelivery() {
    // Before: a worker killed after committing outputs (or some pieces of a split) but before
    // the manifest left a job that every redelivery failed for good on "already exists" and
    // dead-lettered, needing manual cleanup. The state such a kill leaves is made exactly: run
    // the job, then delete its manifest (and, for the split, its last piece).
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("redeliver");
    let q = queues("redeliver", None);
    upload(&generate(dir.path(), "one.wav", 3), &b, "in/one.wav");
    upload(&generate(dir.path(), "split.wav", 12), &b, "in/split.wav");
    let single = serde_json::json!({"input": format!("s3://{b}/in/one.wav"), "output": format!("s3://{b}/out/one.mp3"), "preset": "8d"}).to_string();
    let split = serde_json::json!({"input": format!("s3://{b}/in/split.wav"), "output": format!("s3://{b}/out/split/"), "preset": "oneshot"}).to_string();
    send(&q.url, &single);
    send(&q.url, &split);
    let worker = Worker::start(
        &q.url,
        &["--dlq-url", &q.dlq, "--max-jobs", "2"],
        &[],
        dir.path(),
    );
    worker.wait_for("both jobs", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 2.0
    });
    let first_single = get_json(&b, "out/one.mp3.manifest.json", dir.path());
    let first_split = get_json(&b, "out/split/manifest.json", dir.path());
    let pieces = first_split["outputs"].as_array().unwrap().len();
    assert!(pieces >= 2, "the split needs several pieces: {first_split}");
    let last_piece = format!("out/split/piece_{pieces:04}.wav");
    for key in [
        "out/one.mp3.manifest.json",
        "out/split/manifest.json",
        last_piece.as_str(),
    ] {
        aws_ok(&["s3", "rm", &format!("s3://{b}/{key}"), "--only-show-errors"]);
    }

    send(&q.url, &single);
    send(&q.url, &split);
    worker.wait_for("both redeliveries", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[]) >= 4.0
    });
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        4.0,
        "log:\n{}",
        worker.log()
    );
    let single_manifest = get_json(&b, "out/one.mp3.manifest.json", dir.path());
    assert!(single_manifest.get("status").is_none(), "{single_manifest}");
    let identity = single_manifest["job_identity"].as_str().unwrap();
    assert!(identity.len() == 32 && identity.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        single_manifest["job_identity"],
        first_single["job_identity"]
    );
    assert_eq!(single_manifest["outputs"], first_single["outputs"]);
    let split_manifest = get_json(&b, "out/split/manifest.json", dir.path());
    assert!(split_manifest.get("status").is_none(), "{split_manifest}");
    assert_eq!(split_manifest["outputs"], first_split["outputs"]);
    let mut expected: Vec<String> = (1..=pieces)
        .map(|n| format!("out/split/piece_{n:04}.wav"))
        .collect();
    expected.push("out/split/manifest.json".to_owned());
    expected.sort();
    assert_eq!(keys(&b, "out/split/"), expected);
    assert_eq!(depth(&q.dlq), (0, 0));
    assert_eq!(pending_uploads(&b), 0);

    // An output of another job (another version of the input) is still never replaced.
    upload(&generate(dir.path(), "other.wav", 2), &b, "in/one.wav");
    aws_ok(&[
        "s3",
        "rm",
        &format!("s3://{b}/out/one.mp3.manifest.json"),
        "--only-show-errors",
    ]);
    send(&q.url, &single);
    worker.wait_for("the other version", LONG_WAIT, |w| {
        w.metric("longwave_dead_lettered_messages_total", &[]) >= 1.0
    });
    let refused = get_json(&b, "out/one.mp3.manifest.json", dir.path());
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("written by another job"),
        "{refused}"
    );
}

#[test]
fn a_manifest_write_that_fails_transiently_is_retried_and_the_job_completes() {
    // Before: a manifest PUT answered 503 SlowDown (more times than the SDK retries) became a
    // permanent failure: `JobError::Manifest` lost the I/O error's retryability, so the message
    // was dead-lettered for a network blip. Faults come from a proxy in front of the real server.
    let proxy = common::fault_proxy::FaultProxy::start(&endpoint());
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("manifest503");
    let q = queues("manifest503", None);
    upload(&generate(dir.path(), "in.wav", 3), &b, "in/a.wav");
    let slow_down = proxy.add(common::fault_proxy::Fault {
        method: Some("PUT"),
        contains: vec![".manifest.json".to_owned()],
        action: common::fault_proxy::Action::SlowDown,
        times: u64::MAX,
    });
    let url = proxy.url();
    let worker = Worker::start(
        &q.url,
        &[
            "--dlq-url",
            &q.dlq,
            "--max-jobs",
            "1",
            "--s3-max-retries",
            "1",
        ],
        &[("AWS_ENDPOINT_URL", url.as_str())],
        dir.path(),
    );
    send(
        &q.url,
        &serde_json::json!({"input": format!("s3://{b}/in/a.wav"), "output": format!("s3://{b}/out/a.mp3"), "preset": "8d"}).to_string(),
    );
    worker.wait_for("a retryable failure", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "retry")]) >= 1.0
    });
    assert!(proxy.injected() >= 2, "the SDK retried the 503 once");
    // The failed attempt took its output back: nothing without a manifest is left.
    assert_eq!(keys(&b, "out/"), Vec::<String>::new());
    proxy.remove(slow_down);
    worker.wait_for("the retried job", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 1.0
    });
    let manifest = get_json(&b, "out/a.mp3.manifest.json", dir.path());
    assert!(manifest.get("status").is_none(), "{manifest}");
    assert_eq!(
        keys(&b, "out/"),
        vec!["out/a.mp3".to_owned(), "out/a.mp3.manifest.json".to_owned()]
    );
    assert_eq!(depth(&q.dlq), (0, 0));
    assert_eq!(
        worker.metric("longwave_dead_lettered_messages_total", &[]),
        0.0
    );
}

/// An S3 `ObjectCreated:Put` event record for `key` with the given ETag and version id.
fn s3_event(bucket: &str, key: &str, etag: &str, version_id: Option<&str>) -> String {
    let mut object = serde_json::json!({"key": key, "size": 1000, "eTag": etag, "sequencer": "0055AED6DCD90281E5"});
    if let Some(version) = version_id {
        object["versionId"] = version.into();
    }
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": object}
    }]})
    .to_string()
}

#[test]
fn an_event_reads_the_version_it_names_or_is_superseded_by_the_newer_one() {
    // Before: the event's versionId and eTag were parsed and dropped: an object overwritten
    // after its event was processed in its newer version for the old event (and again for the
    // new one), and a versioned object's named version was never what was read.
    let dir = tempfile::tempdir().unwrap();
    let q = queues("pinned", None);
    // Versioned bucket: the event's version is read even though a newer one is current.
    let versioned = bucket("versioned");
    aws_ok(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        &versioned,
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    upload(&generate(dir.path(), "v1.wav", 3), &versioned, "in/a.wav");
    let (etag_v1, version_v1) = head(&versioned, "in/a.wav");
    let version_v1 = version_v1.expect("a versioned bucket gives version ids");
    upload(&generate(dir.path(), "v2.wav", 2), &versioned, "in/a.wav");
    // Unversioned bucket: the object was replaced after the event.
    let plain = bucket("replaced");
    upload(&generate(dir.path(), "p1.wav", 3), &plain, "in/b.wav");
    let (etag_p1, _) = head(&plain, "in/b.wav");
    upload(&generate(dir.path(), "p2.wav", 2), &plain, "in/b.wav");
    let (etag_p2, _) = head(&plain, "in/b.wav");
    assert_ne!(etag_p1, etag_p2);

    send(
        &q.url,
        &s3_event(&versioned, "in/a.wav", &etag_v1, Some(&version_v1)),
    );
    send(&q.url, &s3_event(&plain, "in/b.wav", &etag_p1, None));
    let worker = Worker::start(
        &q.url,
        &["--dlq-url", &q.dlq, "--max-jobs", "2"],
        &[("PROCESSING_PARAMS", r#"{"preset":"8d"}"#)],
        dir.path(),
    );
    worker.wait_for("both events", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[]) >= 2.0
    });
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "success")]),
        1.0,
        "{}",
        worker.log()
    );
    assert_eq!(
        worker.metric("longwave_jobs_finished_total", &[("outcome", "superseded")]),
        1.0
    );
    let manifest = get_json(&versioned, "processed/in/a/a.mp3.manifest.json", dir.path());
    let seconds = manifest["input"]["duration_s"].as_f64().unwrap();
    assert!(
        (seconds - 3.0).abs() < 0.01,
        "read the 2 s version: {manifest}"
    );
    assert_eq!(keys(&plain, "processed/"), Vec::<String>::new());
    assert_eq!(depth(&q.dlq), (0, 0));

    // The newer version's own event is processed.
    send(&q.url, &s3_event(&plain, "in/b.wav", &etag_p2, None));
    worker.wait_for("the newer event", LONG_WAIT, |w| {
        w.metric("longwave_jobs_finished_total", &[("outcome", "success")]) >= 2.0
    });
    let manifest = get_json(&plain, "processed/in/b/b.mp3.manifest.json", dir.path());
    let seconds = manifest["input"]["duration_s"].as_f64().unwrap();
    assert!((seconds - 2.0).abs() < 0.01, "{manifest}");
}

/// What a chaos run did and found.
#[derive(Debug)]
struct ChaosReport {
    jobs: usize,
    faults_injected: u64,
    kills: usize,
    retries: f64,
    successes: usize,
    lost: usize,
    seconds: f64,
}

/// The chaos schedule shared by the CI test and the long run (`loadtest/chaos.sh`): `jobs` jobs
/// of `audio_seconds` each (half WAV transcodes with multipart uploads, half 8D MP3) on 2
/// workers × 2 slots through a fault proxy; mixed short faults from the start; the first kill
/// (SIGKILL, restart) once a worker is busy with an upload open; then one 15 s read outage
/// (longer than 2 in-place retries); then, for the long run, a kill every ~6 s with the
/// mixed faults switched on and off in turn, until `kills` kills; faults end after at least
/// 40 s. Checks that every job ends exactly once as a success: one output + one success
/// manifest each, nothing else under `out/`, no failed outcome, queue and DLQ empty, pending
/// uploads only from killed workers.
fn chaos(name: &str, jobs: usize, audio_seconds: u32, kills: usize) -> ChaosReport {
    use common::fault_proxy::{Action, Fault, FaultProxy};
    let proxy = FaultProxy::start(&endpoint());
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(name);
    let q = queues(name, Some(10));
    let input = generate(dir.path(), "in.wav", audio_seconds);
    let mut outputs = Vec::new();
    for i in 0..jobs {
        upload(&input, &b, &format!("in/{i}.wav"));
        let (output, preset) = if i % 2 == 0 {
            (format!("out/{i}.wav"), "transcode")
        } else {
            (format!("out/{i}.mp3"), "8d")
        };
        send(
            &q.url,
            &serde_json::json!({"input": format!("s3://{b}/in/{i}.wav"), "output": format!("s3://{b}/{output}"), "preset": preset}).to_string(),
        );
        outputs.push(output);
    }
    let fault = |method: Option<&'static str>, contains: &[&str], action, times| Fault {
        method,
        contains: contains.iter().map(|s| (*s).to_owned()).collect(),
        action,
        times,
    };
    let mixed = || {
        [
            fault(Some("GET"), &[&b, "/in/"], Action::SlowDown, 6),
            fault(Some("GET"), &[&b, "/in/"], Action::CutResponse, 4),
            fault(Some("PUT"), &["partNumber="], Action::InternalError, 4),
            fault(Some("POST"), &["uploadId="], Action::Reset, 2),
            fault(None, &["ReceiveMessage"], Action::InternalError, 3),
            fault(None, &["DeleteMessage"], Action::InternalError, 2),
            // Slow part uploads: a job's upload stays open for seconds, so kills land mid-upload.
            fault(
                Some("PUT"),
                &["partNumber="],
                Action::Delay(Duration::from_secs(2)),
                40,
            ),
            fault(None, &[], Action::Delay(Duration::from_millis(150)), 200),
        ]
    };
    let started = Instant::now();
    let mut rules: Vec<u64> = mixed().into_iter().map(|rule| proxy.add(rule)).collect();
    let url = proxy.url();
    let env = [("AWS_ENDPOINT_URL", url.as_str())];
    let flags = [
        "--dlq-url",
        &q.dlq,
        "--max-jobs",
        "2",
        "--visibility-timeout",
        "6",
        "--s3-max-retries",
        "2",
    ];
    let mut workers = vec![
        Worker::start(&q.url, &flags, &env, dir.path()),
        Worker::start(&q.url, &flags, &env, dir.path()),
    ];
    let mut retries = 0.0;
    let mut done_kills = 0;
    let finished = |outputs: &[String]| {
        let found = keys(&b, "out/");
        outputs
            .iter()
            .filter(|o| found.contains(&format!("{o}.manifest.json")))
            .count()
    };
    let kill = |workers: &mut Vec<Worker>, index: usize, retries: &mut f64| {
        let victim = &mut workers[index];
        *retries += victim.metric("longwave_jobs_finished_total", &[("outcome", "retry")]);
        victim.signal("KILL");
        victim.wait_exit(Duration::from_secs(10));
        workers[index] = Worker::start(&q.url, &flags, &env, dir.path());
    };
    // Kill 1: a busy worker with an upload open (part uploads are slowed to 2 s each).
    let deadline = Instant::now() + LONG_WAIT;
    while !(workers[0].metric("longwave_job_slots_busy", &[]) >= 1.0 && pending_uploads(&b) > 0) {
        assert!(
            Instant::now() < deadline,
            "no worker mid-upload: {:?}\n{}",
            keys(&b, "out/"),
            workers[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(&mut workers, 0, &mut retries);
    done_kills += 1;
    // The outage, right after the kill: every read of an input answered 503 for 15 s, far past
    // 2 in-place retries; the jobs it hits (the killed worker's among them, redelivered after
    // their 6 s visibility) fail as retryable and come back later.
    let outage = proxy.add_first(fault(
        Some("GET"),
        &[&b, "/in/"],
        Action::SlowDown,
        u64::MAX,
    ));
    std::thread::sleep(Duration::from_secs(15));
    proxy.remove(outage);
    // More kills, faults on and off in turn, while jobs remain.
    while done_kills < kills && finished(&outputs) < jobs {
        let phase = Instant::now();
        if rules.is_empty() {
            rules = mixed().into_iter().map(|rule| proxy.add(rule)).collect();
        } else {
            rules.drain(..).for_each(|id| proxy.remove(id));
        }
        let index = done_kills % 2;
        let busy = Instant::now() + Duration::from_secs(8);
        while workers[index].metric("longwave_job_slots_busy", &[]) < 1.0 && Instant::now() < busy {
            std::thread::sleep(Duration::from_millis(100));
        }
        kill(&mut workers, index, &mut retries);
        done_kills += 1;
        std::thread::sleep(Duration::from_secs(6).saturating_sub(phase.elapsed()));
    }
    std::thread::sleep(Duration::from_secs(40).saturating_sub(started.elapsed()));
    let faults_injected = proxy.injected();
    proxy.clear();

    let deadline = Instant::now() + Duration::from_secs(150 + 2 * jobs as u64);
    while finished(&outputs) < jobs {
        assert!(
            Instant::now() < deadline,
            "not every job finished: {:?}\nworker 0:\n{}\nworker 1:\n{}",
            keys(&b, "out/"),
            workers[0].log(),
            workers[1].log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until("the queue empty", Duration::from_secs(60), || {
        depth(&q.url) == (0, 0)
    });
    // Exactly once: one output and one success manifest per job, nothing else.
    let mut expected: Vec<String> = outputs
        .iter()
        .flat_map(|o| [o.clone(), format!("{o}.manifest.json")])
        .collect();
    expected.sort();
    assert_eq!(keys(&b, "out/"), expected);
    let mut successes = 0;
    for output in &outputs {
        let manifest = get_json(&b, &format!("{output}.manifest.json"), dir.path());
        assert!(manifest.get("status").is_none(), "{output}: {manifest}");
        let duration = manifest["input"]["duration_s"].as_f64().unwrap();
        assert!(
            (duration - f64::from(audio_seconds)).abs() < 0.01,
            "{output}: {manifest}"
        );
        successes += 1;
    }
    assert_eq!(depth(&q.dlq), (0, 0), "nothing dead-lettered");
    for worker in &workers {
        assert_eq!(
            worker.metric("longwave_jobs_finished_total", &[("outcome", "failed")]),
            0.0,
            "{}",
            worker.log()
        );
        retries += worker.metric("longwave_jobs_finished_total", &[("outcome", "retry")]);
    }
    // Only killed workers' uploads may be left (2 slots each; a lifecycle rule removes them).
    let pending = pending_uploads(&b);
    assert!(pending <= 2 * done_kills, "{pending} pending uploads");
    let report = ChaosReport {
        jobs,
        faults_injected,
        kills: done_kills,
        retries,
        successes,
        lost: jobs - successes,
        seconds: started.elapsed().as_secs_f64(),
    };
    eprintln!(
        "chaos: {} jobs, {} faults injected, {} kills, {} retryable failures retried, {} \
         successes, {} lost, {:.0} s",
        report.jobs,
        report.faults_injected,
        report.kills,
        report.retries,
        report.successes,
        report.lost,
        report.seconds
    );
    report
}

#[test]
fn chaos_two_workers_mixed_faults_a_long_outage_and_a_kill_end_every_job_exactly_once() {
    // The reliability issue's chaos test, bounded for CI: 2 workers × 2 slots, 8 jobs of two
    // minutes, mixed short faults at the wire for the first 40 s (S3 503s, 500s on UploadPart,
    // bodies cut mid-way, a reset CompleteMultipartUpload, SQS receive and delete errors, added
    // latency), one S3 read outage longer than the reader's in-place retries, one worker killed
    // with SIGKILL mid-upload and restarted. Before: a long outage sent its jobs to the DLQ as
    // permanent `io` failures (hole 2) and a kill between commit and manifest left a job that
    // failed forever with "already exists" (hole 3).
    let report = chaos("chaos", 8, 120, 1);
    assert_eq!(report.lost, 0);
    assert!(
        report.retries >= 1.0,
        "the outage made jobs retry: {report:?}"
    );
}

/// The long chaos run (`bash loadtest/chaos.sh`; not in CI): `CHAOS_JOBS` jobs (default 100) of
/// `CHAOS_SECONDS` (120) with `CHAOS_KILLS` kills (12), faults switched on and off.
#[test]
#[ignore = "long run: bash loadtest/chaos.sh"]
fn chaos_long() {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let report = chaos(
        "chaoslong",
        var("CHAOS_JOBS", 100),
        var("CHAOS_SECONDS", 120) as u32,
        var("CHAOS_KILLS", 12),
    );
    assert_eq!(report.lost, 0);
}

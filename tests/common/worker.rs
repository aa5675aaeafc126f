//! A real `longwave worker` process and the SQS/S3 helpers its end-to-end tests share
//! (tests/worker.rs, tests/prometheus.rs): queues made with the aws CLI, generated inputs, the
//! worker's `/metrics` scraped over loopback.

use super::aws::{aws_ok, unique};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A queue and its dead-letter queue; `redrive` = the queue moves messages to the DLQ after
/// that many receives.
pub struct Queues {
    /// The job queue's URL.
    pub url: String,
    /// The dead-letter queue's URL.
    pub dlq: String,
}

/// Creates a uniquely named queue for `test` and its DLQ (with a redrive policy when
/// `redrive` is given).
pub fn queues(test: &str, redrive: Option<u32>) -> Queues {
    let name = unique(test);
    let dlq_name = format!("{name}-dlq");
    let dlq: serde_json::Value =
        serde_json::from_str(&aws_ok(&["sqs", "create-queue", "--queue-name", &dlq_name])).unwrap();
    let dlq = dlq["QueueUrl"].as_str().unwrap().to_string();
    let mut args = vec!["sqs", "create-queue", "--queue-name", &name];
    let attributes;
    if let Some(count) = redrive {
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{dlq_name}");
        let policy =
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": count.to_string()});
        attributes = serde_json::json!({ "RedrivePolicy": policy.to_string() }).to_string();
        args.extend(["--attributes", &attributes]);
    }
    let url: serde_json::Value = serde_json::from_str(&aws_ok(&args)).unwrap();
    Queues {
        url: url["QueueUrl"].as_str().unwrap().to_string(),
        dlq,
    }
}

/// Sends one message body to `queue`.
pub fn send(queue: &str, body: &str) {
    aws_ok(&[
        "sqs",
        "send-message",
        "--queue-url",
        queue,
        "--message-body",
        body,
    ]);
}

/// (visible, in flight) message counts.
pub fn depth(queue: &str) -> (u64, u64) {
    let out = aws_ok(&[
        "sqs",
        "get-queue-attributes",
        "--queue-url",
        queue,
        "--attribute-names",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let get = |name: &str| v["Attributes"][name].as_str().unwrap().parse().unwrap();
    (
        get("ApproximateNumberOfMessages"),
        get("ApproximateNumberOfMessagesNotVisible"),
    )
}

/// A generated speech-like recording of `seconds` (`.wav`, `.mp3` or `.flac` by `name`).
pub fn generate(dir: &Path, name: &str, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_longwave"))
        .args(["generate", "--seconds", &seconds.to_string()])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// A loopback TCP port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A worker process, killed on drop; its JSON log goes to a file for diagnosis.
pub struct Worker {
    /// The worker process.
    pub child: Child,
    /// Its stderr (JSON log lines).
    pub log: PathBuf,
    /// The loopback port of its `/metrics`.
    pub metrics_port: u16,
}

impl Worker {
    /// Starts `longwave worker` on `queue` (1 s long polls, metrics on a free port) and waits
    /// until its `/metrics` answers.
    pub fn start(queue: &str, extra: &[&str], env: &[(&str, &str)], dir: &Path) -> Worker {
        let metrics_port = free_port();
        let log = dir.join(format!("{}.log", unique("worker")));
        let child = Command::new(env!("CARGO_BIN_EXE_longwave"))
            .args(["worker", "--queue-url", queue, "--wait-seconds", "1"])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let worker = Worker {
            child,
            log,
            metrics_port,
        };
        worker.wait_for("the metrics endpoint", Duration::from_secs(30), |w| {
            w.try_scrape().is_some()
        });
        worker
    }

    /// What the worker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `/metrics` page, or `None` while the endpoint does not answer.
    pub fn try_scrape(&self) -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then(|| body.to_string())
    }

    /// The `/metrics` page (panics with the log when it cannot be read).
    pub fn scrape(&self) -> String {
        self.try_scrape()
            .unwrap_or_else(|| panic!("cannot scrape /metrics; log:\n{}", self.log()))
    }

    /// The value of one sample line (`name{labels} value`), summed over lines whose labels
    /// contain every `labels` pair.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sample_sum(&self.scrape(), name, labels)
    }

    /// Polls `done` every 200 ms until it holds; panics with the log after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; worker log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends `signal` (e.g. `TERM`) to the worker.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the worker to exit; panics with the log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "worker did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of the samples of `name` in a Prometheus text page whose labels include every
/// `labels` pair.
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// Polls `done` every 250 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How long a test waits for a few short jobs on a loaded 2-core machine.
pub const LONG_WAIT: Duration = Duration::from_secs(240);

//! The dashboards and alert rules on a real Prometheus (Debian's `prometheus` 2.42, installed
//! by scripts/setup-test-env.sh with its `promtool`): two real workers run real jobs against
//! the local SQS/S3 server, Prometheus scrapes them every second and evaluates
//! `dashboards/prometheus/longwave-rules.yml`, and every Grafana panel's query must return
//! series carrying the labels its legend shows. tests/dashboards.rs checks the same queries
//! statically against the catalogue; this proves they answer.

#![allow(clippy::unwrap_used)] // test code: a panic is a test failure, which is what we want

mod common;

use common::aws::{bucket, upload};
use common::grafana::{grafana_queries, substitute_variables};
use common::rules::read_rules;
use common::worker::{free_port, generate, queues, send, wait_until, Worker, LONG_WAIT};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rules_file() -> PathBuf {
    repo().join("dashboards/prometheus/longwave-rules.yml")
}

/// Runs `promtool` with `args` in `dashboards/prometheus/`; (success, stdout + stderr).
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("dashboards/prometheus"))
        .output()
        .expect("promtool is required: run scripts/setup-test-env.sh (Debian package prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let (ok, text) = promtool(&["check", "rules", "longwave-rules.yml"]);
    assert!(ok, "promtool check rules:\n{text}");
    let (ok, text) = promtool(&["test", "rules", "longwave-rules.test.yml"]);
    assert!(ok, "promtool test rules:\n{text}");
    // Every alert has a unit test that shows it firing (a non-empty `exp_alerts`).
    let text =
        std::fs::read_to_string(repo().join("dashboards/prometheus/longwave-rules.test.yml"))
            .unwrap();
    let tests: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut firing = Vec::new();
    for test in tests["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                firing.push(case["alertname"].as_str().unwrap().to_owned());
            }
        }
    }
    for rule in read_rules(&rules_file()).iter().filter(|r| !r.record) {
        assert!(
            firing.contains(&rule.name),
            "alert {} has no promtool unit test that shows it firing",
            rule.name
        );
    }
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (loopback ports) every second as job `longwave`,
    /// evaluating the rule file every second; waits until it is ready.
    fn start(targets: &[u16], dir: &Path) -> Prometheus {
        let port = free_port();
        let targets: Vec<String> = targets
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: longwave\n    static_configs:\n      - targets: [{}]\n",
                rules_file().display(),
                targets.join(", ")
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect(
                "prometheus is required: run scripts/setup-test-env.sh (Debian package prometheus)",
            );
        let prometheus = Prometheus { child, port, log };
        wait_until("Prometheus to be ready", Duration::from_secs(60), || {
            prometheus
                .try_get("/-/ready")
                .is_some_and(|(status, _)| status == 200)
        });
        prometheus
    }

    /// (HTTP status, body) of a GET, or `None` while the server does not answer.
    fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// A JSON API answer's `data` (panics with the server's error and log otherwise).
    fn api(&self, path: &str) -> Value {
        let (status, body) = self.try_get(path).unwrap_or_else(|| {
            panic!(
                "Prometheus does not answer {path}; log:\n{}",
                self.log_text()
            )
        });
        let value: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: HTTP {status}, not JSON ({e}): {body}"));
        assert_eq!(value["status"], "success", "{path}: HTTP {status}: {body}");
        value["data"].clone()
    }

    /// The instant-vector result of `expr` evaluated now.
    fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", percent_encode(expr)));
        match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![serde_json::json!({"metric": {}, "value": data["result"]})],
            other => panic!("{expr}: unexpected result type {other:?}"),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` as a URL query value (everything but unreserved characters escaped).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sum of the values of a query's series.
fn total(series: &[Value]) -> f64 {
    series
        .iter()
        .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn every_panel_and_rule_answers_on_a_real_prometheus_scraping_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let b = bucket("prometheus");
    let q = queues("prometheus", None);
    // Two minutes of audio: an 8D job then keeps a slot busy for a few one-second scrapes, so
    // the busy-slot panels see it.
    upload(&generate(dir.path(), "talk.mp3", 120), &b, "in/talk.mp3");
    upload(&generate(dir.path(), "talk.wav", 4), &b, "in/talk.wav");
    let notes = dir.path().join("notes.mp3");
    std::fs::write(&notes, "meeting notes, not audio\n".repeat(200)).unwrap();
    upload(&notes, &b, "in/notes.mp3");
    let args = ["--dlq-url", &q.dlq, "--max-jobs", "1"];
    let workers = [
        Worker::start(&q.url, &args, &[], dir.path()),
        Worker::start(&q.url, &args, &[], dir.path()),
    ];
    let prometheus = Prometheus::start(
        &[workers[0].metrics_port, workers[1].metrics_port],
        dir.path(),
    );
    // The messages go out once Prometheus scrapes both workers, so it sees every counter move
    // from its first value (an alert on increase() cannot see a change it never saw).
    wait_until(
        "Prometheus to scrape both workers",
        Duration::from_secs(30),
        || prometheus.query(r#"up{job="longwave"} == 1"#).len() == 2,
    );
    // Three jobs that succeed (the 8D preset twice, a gain to FLAC), one that fails on input
    // that is not audio (dead-lettered), one message that is not a job at all.
    for i in 0..2 {
        let body = serde_json::json!({"input": format!("s3://{b}/in/talk.mp3"), "output": format!("s3://{b}/out/{i}/"), "preset": "8d"});
        send(&q.url, &body.to_string());
    }
    let flac = serde_json::json!({"input": format!("s3://{b}/in/talk.wav"), "output": format!("s3://{b}/out/flac/"), "chain": [{"type": "gain", "gain_db": -3.0}], "format": "flac"});
    send(&q.url, &flac.to_string());
    let not_audio = serde_json::json!({"input": format!("s3://{b}/in/notes.mp3"), "output": format!("s3://{b}/bad/"), "preset": "8d"});
    send(&q.url, &not_audio.to_string());
    send(&q.url, "this is not a job");

    let finished = |outcome: &str| {
        workers
            .iter()
            .map(|w| w.metric("longwave_jobs_finished_total", &[("outcome", outcome)]))
            .sum::<f64>()
    };
    wait_until("three jobs done, one failed", LONG_WAIT, || {
        finished("success") >= 3.0 && finished("failed") >= 1.0
    });
    // Prometheus has both workers' final counts, and every series at least two samples (so
    // rate() has an answer), a few scrapes later.
    wait_until(
        "Prometheus to see the jobs",
        Duration::from_secs(30),
        || {
            total(&prometheus.query(r#"sum(longwave_jobs_finished_total{outcome="success"})"#))
                >= 3.0
                && prometheus.query(r#"up{job="longwave"} == 1"#).len() == 2
        },
    );
    std::thread::sleep(Duration::from_secs(3));

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/grafana/longwave.json")).unwrap(),
    )
    .unwrap();
    let mut problems = Vec::new();
    let queries = grafana_queries(&dashboard);
    for query in &queries {
        let expr = substitute_variables(&query.expr, &dashboard).unwrap();
        let series = prometheus.query(&expr);
        if series.is_empty() {
            problems.push(format!("{}: no data\n    {expr}", query.place));
            continue;
        }
        for label in query.legend_labels() {
            if let Some(bare) = series.iter().find(|s| s["metric"][&label].is_null()) {
                problems.push(format!(
                    "{}: the legend shows `{label}` but a series lacks it: {}",
                    query.place, bare["metric"]
                ));
            }
        }
    }
    // The `job` variable (label_values(longwave_build_info, job)) lists the scrape job.
    let jobs = prometheus.api(&format!(
        "/api/v1/label/job/values?{}={}",
        percent_encode("match[]"),
        percent_encode("longwave_build_info")
    ));
    if jobs != serde_json::json!(["longwave"]) {
        problems.push(format!("variable `job`: label values {jobs}"));
    }

    // Every rule evaluated cleanly; every recorded series exists; the one alert that should
    // fire (a message went to the DLQ) fires, and no other.
    let rules = prometheus.api("/api/v1/rules");
    let mut firing = Vec::new();
    let mut evaluated = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["name"].as_str().unwrap();
            evaluated += 1;
            if rule["health"] != "ok" {
                problems.push(format!(
                    "rule {name}: health {} {}",
                    rule["health"], rule["lastError"]
                ));
            }
            if rule["type"] == "recording" && prometheus.query(name).is_empty() {
                problems.push(format!("recording {name}: no data"));
            }
            if rule["type"] == "alerting" && rule["state"] == "firing" {
                firing.push(name.to_string());
            }
        }
    }
    let expected_rules = read_rules(&rules_file()).len();
    if evaluated != expected_rules {
        problems.push(format!(
            "Prometheus loaded {evaluated} rules, the file has {expected_rules}"
        ));
    }
    if firing != ["LongwaveDeadLettering"] {
        problems.push(format!(
            "firing alerts: {firing:?}, expected only LongwaveDeadLettering"
        ));
    }
    assert!(
        problems.is_empty(),
        "{} of {} dashboard queries and {} rules have problems:\n{}\nPrometheus log:\n{}",
        problems.len(),
        queries.len(),
        evaluated,
        problems.join("\n"),
        prometheus.log_text()
    );
    assert!(queries.len() >= 30, "only {} queries found", queries.len());
}

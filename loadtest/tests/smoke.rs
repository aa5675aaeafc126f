//! The CI smoke of the harness: `loadtest/workloads/smoke.toml` (12 jobs in 6 s: every message
//! shape, three input formats, one corrupt input) against two local workers, end to end, and
//! the report checked against what the workload must give. About 20 s.

#![allow(clippy::unwrap_used)] // tests: a panic is a test failure

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_smoke_workload_runs_end_to_end_and_reports_what_happened() {
    let longwave = repo().join("target/release/longwave");
    assert!(
        longwave.is_file(),
        "{} is missing: build it first (cargo build --release); scripts/test.sh does",
        longwave.display()
    );
    let out = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_longwave-loadtest"))
        .arg("run")
        .arg(repo().join("loadtest/workloads/smoke.toml"))
        .arg("--out")
        .arg(out.path())
        .arg("--cache")
        .arg(cache.path())
        .arg("--longwave")
        .arg(&longwave)
        .args(["--timeout-s", "120"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{}\n{stderr}", run.status);

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let report = &json["report"];
    let jobs = &report["jobs"];
    // The schedule (seed 9): 12 jobs, one on the corrupt input (an EventBridge event).
    assert_eq!(jobs["scheduled"], 12, "{report}");
    assert_eq!(jobs["sent"], 12, "{report}");
    assert_eq!(jobs["succeeded"], 11, "{report}");
    assert_eq!(jobs["failed"], 1, "{report}");
    assert_eq!(jobs["unfinished"], 0, "{report}");
    let records = json["data"]["jobs"].as_array().unwrap();
    let failed: Vec<_> = records.iter().filter(|j| j["status"] == "failed").collect();
    assert_eq!(failed[0]["input"], "loadtest/inputs/corrupt.mp3");
    assert_eq!(failed[0]["error_kind"], "not_audio");
    for shape in ["job", "s3_event", "eventbridge"] {
        assert!(
            records
                .iter()
                .any(|j| j["shape"] == shape && j["status"] == "success"),
            "no successful {shape}"
        );
    }
    // The workers agree: 11 successes, 1 failure, which went to the dead-letter queue.
    assert_eq!(report["worker_outcomes"]["success"], 11.0, "{report}");
    assert_eq!(report["worker_outcomes"]["failed"], 1.0, "{report}");
    assert!(report["dead_letters"].as_u64().unwrap() >= 1, "{report}");
    // Measured, not made up: latencies after processing, CPU spent, memory within budget.
    let latency = &report["latency_s"];
    assert_eq!(latency["count"], 11);
    assert!(latency["p50"].as_f64().unwrap() > 0.0);
    assert!(
        report["processing_s"]["max"].as_f64().unwrap() <= latency["max"].as_f64().unwrap() + 0.5
    );
    let cpu: f64 = report["worker_cpu_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .sum();
    assert!(cpu > 0.0, "{report}");
    assert!(report["cpu_s_per_audio_hour"].as_f64().unwrap() > 0.0);
    for worker in report["memory"].as_array().unwrap() {
        let (rss, budget) = (
            worker["peak_rss_mib"].as_f64().unwrap(),
            worker["budget_mib"].as_f64().unwrap(),
        );
        assert!(rss > 1.0 && rss <= budget, "{worker}");
    }
    assert!(report["s3_requests"]["put_object"].as_f64().unwrap() > 0.0);
    assert!(report["cost"]["total_usd_per_audio_hour"].as_f64().unwrap() > 0.0);
    // The plots are PNGs of the size drawn.
    for plot in [
        "queue.png",
        "latency_cdf.png",
        "memory.png",
        "throughput.png",
    ] {
        let bytes = std::fs::read(out.path().join(plot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{plot}");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1000, 500), "{plot}");
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("| latency p50 / p95 / p99 / max"), "{md}");

    // The capacity simulator learns from this report and replays it (--validate), then predicts
    // a day with a 10× peak.
    let sim = out.path().join("sim");
    for extra in [
        &["--validate"][..],
        &["--peak", "10", "--mean-per-hour", "60"][..],
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_longwave-loadtest"))
            .arg("simulate")
            .arg("--from")
            .arg(out.path().join("report.json"))
            .arg("--out")
            .arg(&sim)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sim.join("simulation.json")).unwrap()).unwrap();
        let outcome = &json["outcome"];
        if extra[0] == "--validate" {
            // The same 11 jobs, and they all finish with a latency at least their overhead.
            assert_eq!(outcome["jobs"], 11, "{json}");
            assert!(
                outcome["latency_s"]["p50"].as_f64().unwrap() > 0.0,
                "{json}"
            );
            assert!(sim.join("validation.png").is_file());
        } else {
            // A day at 60 jobs an hour with a 10× peak hour: about 2,000 jobs (these are short:
            // one task keeps up; scaling is checked by the simulator's unit tests), paid for.
            let jobs = outcome["jobs"].as_u64().unwrap();
            assert!((1_700..2_300).contains(&jobs), "{jobs}");
            assert!(outcome["task_hours"].as_f64().unwrap() > 23.0);
            assert!(json["cost_usd"].as_f64().unwrap() > 0.0);
        }
        assert!(sim.join("tasks.png").is_file());
    }
}

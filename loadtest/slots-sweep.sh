#!/usr/bin/env bash
# slots-sweep.sh [SLOTS...]: runs loadtest/workloads/slots.toml (24 three-minute 8D jobs at once)
# against one local worker with each slot count (default 1 2 3 4) and prints throughput,
# latency and CPU per slot count, to choose the worker's default slots per vCPU by measurement.
# Needs `cargo build --release --workspace`; the harness starts the local S3/SQS server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
slots=("$@")
[ ${#slots[@]} -gt 0 ] || slots=(1 2 3 4)
harness=target/release/longwave-loadtest
[ -x "$harness" ] || { echo "slots-sweep: build first: cargo build --release --workspace" >&2; exit 2; }
printf '%-6s %10s %9s %9s %9s %11s %10s\n' slots "jobs/min" "p50 s" "p95 s" "max s" "worker CPU" "peak MiB"
for n in "${slots[@]}"; do
    out=target/loadtest/slots-$n
    mkdir -p target/loadtest
    "$harness" run loadtest/workloads/slots.toml --workers 1 --slots "$n" --out "$out" > "$out.log" 2>&1 \
        || { echo "slots-sweep: run with $n slots failed, see $out.log" >&2; exit 1; }
    python3 - "$out/report.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["report"]
ok = r["jobs"].get("succeeded", r["jobs"].get("success", 0))
peak = max((m.get("peak_rss_mib", 0) for m in r["memory"]), default=0)
print(f'{sys.argv[2]:<6} {r["jobs_per_minute"]:10.1f} {r["latency_s"]["p50"]:9.1f} {r["latency_s"]["p95"]:9.1f} '
      f'{r["latency_s"]["max"]:9.1f} {sum(r["worker_cpu_s"]):10.1f}s {peak:10.1f}   ({ok} ok)')
PY
done

#!/usr/bin/env bash
# chaos.sh: the long chaos run of the reliability issue. Two workers × 2 slots drain
# CHAOS_JOBS jobs (default 100; CHAOS_SECONDS of audio each, default 120) through a
# fault-injecting proxy in front of the local S3/SQS server, while faults go on and off and a
# worker is SIGKILLed and restarted every ~6 s, CHAOS_KILLS times (default 12). It fails unless
# every job ends exactly once as a success (one output + one success manifest, no failure, DLQ
# empty). The last line prints jobs, faults injected, kills, retries, successes and lost.
#
#   bash loadtest/chaos.sh                   # 100 jobs, 12 kills
#   CHAOS_JOBS=20 CHAOS_KILLS=3 bash loadtest/chaos.sh
#
# The bounded version runs in CI: tests/worker.rs, chaos_two_workers_… (8 jobs, 1 kill).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-test-env.sh
export LONGWAVE_AWS_STATE
LONGWAVE_AWS_STATE=$(mktemp -d)
trap 'bash scripts/local-aws.sh stop || true; rm -rf "$LONGWAVE_AWS_STATE"' EXIT
bash scripts/local-aws.sh start
# shellcheck disable=SC1090
. "$(bash scripts/local-aws.sh env)"
cargo test --release --locked --test worker -- --ignored --exact chaos_long --nocapture 2>&1 |
    grep -E "^chaos: |^test |panicked|not every job" 

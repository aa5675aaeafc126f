#!/usr/bin/env bash
# test.sh: the one command that runs every check and test (README and .ci/run call this).
# Order: environment → fmt → clippy → tests → docs → benches build.
# Run the benchmarks themselves with `cargo bench --bench NAME` (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-test-env.sh
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test" >&2
test_log=$(mktemp)
# The local S3 server (moto) for tests/s3_io.rs: private state dir so parallel runs do not share
# (or stop) each other's server; stopped on any exit.
export LONGWAVE_AWS_STATE
LONGWAVE_AWS_STATE=$(mktemp -d)
trap 'bash scripts/local-aws.sh stop || true; rm -rf "$test_log" "$LONGWAVE_AWS_STATE"' EXIT
bash scripts/local-aws.sh start
# shellcheck disable=SC1090
. "$(bash scripts/local-aws.sh env)"
cargo test --locked 2>&1 | tee "$test_log"
echo "== cargo doc" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --locked --quiet
# The benches are built (not run) in the dev profile: it reuses the test build's artifacts, where
# `cargo bench --no-run` would compile every dependency again in release (~8 min on 2 cores).
echo "== cargo build --benches" >&2
cargo build --benches --locked --quiet
echo "== all checks passed" >&2
# One closing line for the whole suite (cargo prints one summary per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$test_log"

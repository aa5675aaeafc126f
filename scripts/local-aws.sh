#!/usr/bin/env bash
# local-aws.sh: a local S3 (moto server) for the tests, plus the aws CLI as an independent client.
#
#   scripts/local-aws.sh start   install (once) into a venv, start moto on a free loopback port,
#                                wait until it answers, write the pid and the env file
#   scripts/local-aws.sh env     print the env file's path (source it: `. "$(local-aws.sh env)"`)
#   scripts/local-aws.sh stop    stop the server started by `start`
#
# The venv lives in ${LONGWAVE_AWS_VENV:-$HOME/.cache/longwave/aws-venv}; state (pid, env file,
# server log) in ${LONGWAVE_AWS_STATE:-$HOME/.cache/longwave/aws-state}. Nothing here talks to
# AWS: the env file points every client at the local server with fake credentials.
set -euo pipefail

MOTO_VERSION="5.2.5"
AWSCLI_VERSION="1.46.3"
VENV="${LONGWAVE_AWS_VENV:-$HOME/.cache/longwave/aws-venv}"
STATE="${LONGWAVE_AWS_STATE:-$HOME/.cache/longwave/aws-state}"
PID_FILE="$STATE/moto.pid"
ENV_FILE="$STATE/env.sh"
LOG_FILE="$STATE/moto.log"

die() { echo "local-aws: $*" >&2; exit 1; }

# shellcheck source=scripts/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
install_tools() {
    ensure_venv local-aws "$VENV" moto_server aws -- \
        "moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION"
}

# A free loopback port: bind port 0 and report what the kernel picked.
free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# shellcheck source=scripts/pidfile.sh
. "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh"
running() { pid_running "$PID_FILE"; }

start() {
    install_tools
    mkdir -p "$STATE"
    if running && [ -f "$ENV_FILE" ]; then
        echo "local-aws: already running (pid $(cat "$PID_FILE"))" >&2
        return 0
    fi
    local port pid
    for _ in 1 2 3; do
        port=$(free_port)
        "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 < /dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
        # Ready when /moto-api/ answers (about 1 s; 2 s cold).
        for _ in $(seq 1 100); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if NO_PROXY=127.0.0.1 "$VENV/bin/python" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
                write_env "$port"
                echo "local-aws: moto $MOTO_VERSION on http://127.0.0.1:$port (pid $pid)" >&2
                return 0
            fi
            sleep 0.2
        done
        kill "$pid" 2>/dev/null || true
        rm -f "$PID_FILE"
        echo "local-aws: moto did not come up on port $port, retrying" >&2
    done
    cat "$LOG_FILE" >&2 || true
    die "cannot start moto_server (log above)"
}

write_env() {
    local port=$1
    cat >"$ENV_FILE" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export NO_PROXY=127.0.0.1,localhost
export no_proxy=127.0.0.1,localhost
export LONGWAVE_AWS_CLI=$VENV/bin/aws
EOF
}

stop() {
    local pid
    pid=$(stop_pid "$PID_FILE")
    [ -z "$pid" ] || echo "local-aws: stopped (pid $pid)" >&2
    rm -f "$ENV_FILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) [ -f "$ENV_FILE" ] || die "not running (run: $0 start)"; echo "$ENV_FILE" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# worker-load.sh: throughput and memory of `longwave worker` against the local SQS/S3 server
# (scripts/local-aws.sh). Two cases:
#
#   throughput  WORKERS workers × SLOTS job slots drain JOBS messages, each an 8D job on a
#               MINUTES-minute MP3: jobs per minute, audio-hours per CPU-hour, peak RSS.
#   memory      one worker with 1 slot on one 30-minute 8D job, then one worker with 4 slots on
#               four at once: peak RSS of each (the "a worker's memory is slots × a bound" check).
#   lean        the same 30-minute 8D job from S3 to S3 twice, once by `longwave process` and
#               once by a worker with 1 slot: CPU seconds of each (the worker's overhead).
#
# Usage: loadtest/worker-load.sh [throughput|memory|lean|all]   (default all)
# Env: WORKERS (2), SLOTS (2), JOBS (24), MINUTES (3), LONG_MINUTES (30).
# Needs a release build (cargo build --release) and GNU time (/usr/bin/time).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-all}
bin=${LONGWAVE:-$here/target/release/longwave}
workers=${WORKERS:-2}
slots=${SLOTS:-2}
jobs=${JOBS:-24}
minutes=${MINUTES:-3}
long_minutes=${LONG_MINUTES:-30}
work=${LOAD_WORK:-${TMPDIR:-/tmp}/longwave-load}
[ -x "$bin" ] || { echo "worker-load.sh: build first: cargo build --release" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "worker-load.sh: GNU time is missing (apt-get install time)" >&2; exit 2; }
mkdir -p "$work"
export LONGWAVE_AWS_STATE=${LONGWAVE_AWS_STATE:-$(mktemp -d)}
bash "$here/scripts/local-aws.sh" start >&2
pids=()
cleanup() {
    for pid in "${pids[@]}"; do pkill -P "$pid" 2>/dev/null || true; done
    bash "$here/scripts/local-aws.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
# shellcheck disable=SC1090
. "$(bash "$here/scripts/local-aws.sh" env)"
aws() { "$LONGWAVE_AWS_CLI" --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
run_id=$$
bucket=lw-load-$run_id
aws s3 mb "s3://$bucket" >/dev/null

new_queue() { # name → queue URL (with a DLQ by redrive)
    aws sqs create-queue --queue-name "$1-dlq" >/dev/null
    local policy="{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:123456789012:$1-dlq\",\"maxReceiveCount\":\"3\"}"
    aws sqs create-queue --queue-name "$1" \
        --attributes "{\"RedrivePolicy\":$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$policy")}" \
        --query QueueUrl --output text
}

# Sends COUNT job messages for input KEY to QUEUE (10 per batch call).
send_jobs() {
    local queue=$1 key=$2 count=$3 tag=$4
    python3 - "$queue" "$bucket" "$key" "$count" "$tag" > "$work/batches.txt" <<'EOF'
import json, sys
queue, bucket, key, count, tag = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
entries = [{"Id": str(i), "MessageBody": json.dumps({"input": f"s3://{bucket}/{key}", "output": f"s3://{bucket}/out/{tag}/{i}/", "preset": "8d"})} for i in range(count)]
for start in range(0, count, 10):
    print(json.dumps(entries[start:start + 10]))
EOF
    while read -r batch; do
        aws sqs send-message-batch --queue-url "$queue" --entries "$batch" >/dev/null
    done < "$work/batches.txt"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

scrape_sum() { # port metric [label filter] → summed value
    curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" -v f="${3:-}" '
        !/^#/ { name = $1; sub(/\{.*/, "", name); if (name == m && index($1, f)) s += $NF }
        END { printf "%d\n", s }'
}

# Starts a worker under GNU time; sets $last_port and $last_log.
start_worker() {
    local queue=$1 max_jobs=$2 name=$3
    last_port=$(free_port)
    last_log="$work/$name.time"
    /usr/bin/time -v -o "$last_log" "$bin" worker --queue-url "$queue" --max-jobs "$max_jobs" \
        --wait-seconds 2 --metrics-addr "127.0.0.1:$last_port" --log-format text \
        2> "$work/$name.log" &
    pids+=($!)
}

peak_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }
cpu_s() { awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$1"; }

wait_finished() { # total ports... : waits until the workers' finished-job counters sum to total
    local total=$1; shift
    while :; do
        local done=0
        for port in "$@"; do done=$((done + $(scrape_sum "$port" longwave_jobs_finished_total))); done
        [ "$done" -ge "$total" ] && break
        sleep 1
    done
}

stop_workers() {
    # The worker is GNU time's child: signal it, then wait for time to report.
    for pid in "${pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

if [ "$mode" = throughput ] || [ "$mode" = all ]; then
    input="$work/input-${minutes}min.mp3"
    [ -s "$input" ] || "$bin" generate "$input" --seconds "$((minutes * 60))" >&2
    aws s3 cp "$input" "s3://$bucket/in/short.mp3" --only-show-errors
    queue=$(new_queue "lw-load-$run_id-t")
    send_jobs "$queue" in/short.mp3 "$jobs" t
    ports=()
    start=$(date +%s.%N)
    for i in $(seq 1 "$workers"); do
        start_worker "$queue" "$slots" "throughput-$i"
        ports+=("$last_port")
    done
    sleep 1
    wait_finished "$jobs" "${ports[@]}"
    end=$(date +%s.%N)
    ok=0
    for port in "${ports[@]}"; do ok=$((ok + $(scrape_sum "$port" longwave_jobs_finished_total 'outcome="success"'))); done
    stop_workers
    cpu=0; peak=0
    for i in $(seq 1 "$workers"); do
        cpu=$(echo "$cpu + $(cpu_s "$work/throughput-$i.time")" | bc)
        p=$(peak_mib "$work/throughput-$i.time")
        peak=$(echo "if ($p > $peak) $p else $peak" | bc)
    done
    wall=$(echo "$end - $start" | bc)
    audio_h=$(echo "scale=4; $jobs * $minutes / 60" | bc)
    echo "throughput: $workers workers x $slots slots, $jobs x ${minutes}-min 8D jobs ($ok succeeded)"
    echo "  wall ${wall%.*} s, jobs/min $(echo "scale=1; $jobs * 60 / $wall" | bc)," \
         "worker CPU ${cpu} s, audio-hours per CPU-hour $(echo "scale=1; $audio_h * 3600 / $cpu" | bc)," \
         "realtime x $(echo "scale=0; $audio_h * 3600 / $wall" | bc), peak RSS per worker ${peak} MiB"
fi

if [ "$mode" = memory ] || [ "$mode" = all ]; then
    input="$work/input-${long_minutes}min.mp3"
    [ -s "$input" ] || "$bin" generate "$input" --seconds "$((long_minutes * 60))" >&2
    aws s3 cp "$input" "s3://$bucket/in/long.mp3" --only-show-errors
    for n in 1 4; do
        queue=$(new_queue "lw-load-$run_id-m$n")
        send_jobs "$queue" in/long.mp3 "$n" "m$n"
        start=$(date +%s.%N)
        start_worker "$queue" "$n" "memory-$n"
        port=$last_port
        sleep 1
        wait_finished "$n" "$port"
        end=$(date +%s.%N)
        budget=$(scrape_sum "$port" longwave_memory_budget_bytes)
        stop_workers
        echo "memory: 1 worker, $n slot(s), $n concurrent ${long_minutes}-min 8D job(s):" \
             "peak RSS $(peak_mib "$work/memory-$n.time") MiB (budget $((budget / 1048576)) MiB)," \
             "wall $(echo "$end - $start" | bc | cut -d. -f1) s, CPU $(cpu_s "$work/memory-$n.time") s"
    done
fi

if [ "$mode" = lean ] || [ "$mode" = all ]; then
    input="$work/input-${long_minutes}min.mp3"
    [ -s "$input" ] || "$bin" generate "$input" --seconds "$((long_minutes * 60))" >&2
    aws s3 cp "$input" "s3://$bucket/in/long.mp3" --only-show-errors
    /usr/bin/time -v -o "$work/lean-process.time" "$bin" process "s3://$bucket/in/long.mp3" \
        --preset 8d -o "s3://$bucket/out/lean-process.mp3" --quiet
    queue=$(new_queue "lw-load-$run_id-lean")
    send_jobs "$queue" in/long.mp3 1 lean
    start_worker "$queue" 1 lean-worker
    port=$last_port
    sleep 1
    wait_finished 1 "$port"
    ok=$(scrape_sum "$port" longwave_jobs_finished_total 'outcome="success"')
    stop_workers
    process_cpu=$(cpu_s "$work/lean-process.time")
    worker_cpu=$(cpu_s "$work/lean-worker.time")
    echo "lean: one ${long_minutes}-min 8D job S3 → S3: process CPU ${process_cpu} s," \
         "worker (1 slot, $ok succeeded, including its idle polling) CPU ${worker_cpu} s," \
         "worker/process $(echo "scale=3; $worker_cpu / $process_cpu" | bc)"
fi

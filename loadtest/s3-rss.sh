#!/usr/bin/env bash
# s3-rss.sh [MINUTES ...]: peak RSS and speed of `longwave process s3://… s3://…` with the 8D
# preset, against the local S3 server (scripts/local-aws.sh), for inputs of each length
# (default 30 and 180 minutes, MP3 made by `longwave generate`). Prints part size and parts in
# flight with the figures. Needs a release build and GNU time.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -eq 0 ]; then set -- 30 180; fi
work=${RSS_WORK:-${TMPDIR:-/tmp}/longwave-rss}
bin=${LONGWAVE:-$here/target/release/longwave}
part_mib=${PART_MIB:-8}
in_flight=${PARTS_IN_FLIGHT:-4}
[ -x "$bin" ] || { echo "s3-rss.sh: build first: cargo build --release" >&2; exit 2; }
mkdir -p "$work"
export LONGWAVE_AWS_STATE=${LONGWAVE_AWS_STATE:-$(mktemp -d)}
bash "$here/scripts/local-aws.sh" start >&2
trap 'bash "$here/scripts/local-aws.sh" stop >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1090
. "$(bash "$here/scripts/local-aws.sh" env)"
aws() { "$LONGWAVE_AWS_CLI" --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
bucket=lw-rss-$$
aws s3 mb "s3://$bucket" >/dev/null
printf '%-22s %9s %9s %8s %8s %10s %6s\n' job peak_MiB cpu_s wall_s x_rt part_MiB flight
for minutes in "$@"; do
    input="$work/input-${minutes}min.mp3"
    [ -s "$input" ] || "$bin" generate "$input" --seconds "$((minutes * 60))" >&2
    aws s3 cp "$input" "s3://$bucket/in/${minutes}.mp3" >/dev/null
    log="$work/s3-time.log"
    /usr/bin/time -v "$bin" process "s3://$bucket/in/${minutes}.mp3" --preset 8d \
        -o "s3://$bucket/out/${minutes}-8d.mp3" --part-size-mib "$part_mib" \
        --parts-in-flight "$in_flight" --quiet 2> "$log"
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$log")
    aws s3 cp "s3://$bucket/out/${minutes}-8d.mp3.manifest.json" "$work/s3-manifest.json" >/dev/null
    read -r wall xrt < <(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"{m['wall_time_s']:.1f} {m['realtime_factor']:.0f}\")" "$work/s3-manifest.json")
    awk -v l="${minutes}min s3 8d" -v r="$rss" -v c="$cpu" -v w="$wall" -v x="$xrt" -v p="$part_mib" -v f="$in_flight" \
        'BEGIN { printf "%-22s %9.1f %9.1f %8s %8s %10s %6s\n", l, r / 1024, c, w, x, p, f }'
done

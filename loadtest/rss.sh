#!/usr/bin/env bash
# rss.sh [MINUTES ...]: proves memory does not grow with the input's length.
#
# Generates a speech-like stereo 44.1 kHz recording of each length in MINUTES (default: 3 and
# 180) with `longwave generate`, then runs the same jobs on each under
# /usr/bin/time -v and prints peak RSS, CPU time and the realtime factor side by side:
#   wav → gain → mp3 192k     wav → gain → wav      mp3 → gain → flac
# Inputs are cached in $RSS_WORK (default ${TMPDIR:-/tmp}/longwave-rss). Needs a release build
# (cargo build --release) and GNU time (apt-get install time).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -eq 0 ]; then set -- 3 180; fi
work=${RSS_WORK:-${TMPDIR:-/tmp}/longwave-rss}
bin=${LONGWAVE:-$here/target/release/longwave}
[ -x "$bin" ] || { echo "rss.sh: build first: cargo build --release" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "rss.sh: needs GNU time: apt-get install time" >&2; exit 2; }
mkdir -p "$work"

make_input() { # minutes ext
    local f="$work/input-$1min.$2"
    if [ ! -s "$f" ]; then
        echo "== generating $1 min $2" >&2
        "$bin" generate "$f" --seconds "$(( $1 * 60 ))" >&2
    fi
    echo "$f"
}

measure() { # label input output chain-args...
    local label=$1 input=$2 output=$3; shift 3
    local log="$work/time.log"
    /usr/bin/time -v "$bin" process "$input" -o "$output" --quiet "$@" 2> "$log"
    local rss cpu_user cpu_sys wall
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    cpu_user=$(awk -F': ' '/User time/ {print $2}' "$log")
    cpu_sys=$(awk -F': ' '/System time/ {print $2}' "$log")
    wall=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"{m['wall_time_s']:.1f} {m['realtime_factor']:.0f}\")" "$output.manifest.json")
    awk -v l="$label" -v r="$rss" -v u="$cpu_user" -v s="$cpu_sys" -v w="$wall" \
        'BEGIN { split(w, a, " "); printf "%-28s %10.1f %10.1f %8s %8s\n", l, r / 1024, u + s, a[1], a[2] }'
    rm -f "$output" "$output.manifest.json"
}

printf '%-28s %10s %10s %8s %8s\n' job peak_MiB cpu_s wall_s x_rt
for minutes in "$@"; do
    wav=$(make_input "$minutes" wav)
    mp3=$(make_input "$minutes" mp3)
    gain='[{"type":"gain","gain_db":-3}]'
    measure "${minutes}min wav→gain→mp3" "$wav" "$work/out.mp3" --chain "$gain" --bitrate 192
    measure "${minutes}min wav→gain→wav" "$wav" "$work/out.wav" --chain "$gain"
    measure "${minutes}min mp3→gain→flac" "$mp3" "$work/out.flac" --chain "$gain"
done

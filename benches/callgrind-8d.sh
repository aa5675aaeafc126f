#!/usr/bin/env bash
# callgrind-8d.sh [SECONDS]: instructions the `8d` preset's DSP executes on a generated
# speech-like recording (default 60 s), counted by valgrind's callgrind. Instruction counts do
# not depend on what else the machine is doing, so before/after figures of a change to a stage
# are comparable on a busy 2-core machine where wall time is not (criterion: `cargo bench
# --bench stages_space`, `--bench stages_dynamics`).
#
#   cargo build --release && bash benches/callgrind-8d.sh 60
#
# Prints the whole process, `Chain::process` (all stages with the chain's bookkeeping) and each
# stage's `process` (inclusive), in millions and per stereo frame. The output is WAV so the
# encoder stays small; the DSP figures do not depend on it. Needs valgrind (Debian: valgrind).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
bin=${LONGWAVE:-target/release/longwave}
command -v valgrind >/dev/null || { echo "callgrind-8d: valgrind is missing (apt-get install valgrind)" >&2; exit 2; }
[ -x "$bin" ] || { echo "callgrind-8d: no binary at $bin (cargo build --release)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate "$work/in.wav" --seconds "$seconds" >/dev/null 2>&1
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$bin" process "$work/in.wav" --preset 8d --format wav -o "$work/out.wav" --quiet 2> "$work/valgrind.log"
frames=$(awk -v s="$seconds" 'BEGIN { printf "%d", s * 44100 }')
total=$(grep -oE 'refs: +[0-9,]+' "$work/valgrind.log" | tr -dc '0-9')
echo "8d preset on ${seconds} s of speech-like stereo 44.1 kHz ($("$bin" --version)), instructions:"
printf '  %-16s %10.1f M\n' "whole process" "$(awk -v t="$total" 'BEGIN { print t / 1e6 }')"
callgrind_annotate --inclusive=yes "$work/cg.out" 2>/dev/null | awk -v frames="$frames" '
    /=> .*(Chain::process|Stage>::process) \(/ {
        n = $1; gsub(",", "", n)
        name = $0
        if (name ~ /Chain::process/) name = "Chain::process"
        else { sub(/ as longwave::dsp::stage::Stage>::process.*/, "", name); sub(/.*::/, "", name) }
        if (!(name in seen)) { seen[name] = 1; printf "  %-16s %10.1f M  %7.1f per frame\n", name, n / 1e6, n / frames }
    }'

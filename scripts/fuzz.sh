#!/usr/bin/env bash
# fuzz.sh: the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer, stable Rust: --sanitizer none).
#
#   bash scripts/fuzz.sh smoke [SECONDS]     each target for SECONDS (default 60), as CI does
#   bash scripts/fuzz.sh long MINUTES      each target for MINUTES, one after the other
#
# Targets: `decode` (probe + demux + decode of any bytes through longwave's decode layer) and
# `message` (SQS message bodies through worker::message). Each starts from the committed seeds
# in fuzz/corpus/<target>/seed-* and grows its corpus beside them (ignored by git). A crash, a
# hang (> 10 s for one input) or more than 2 GiB of memory stops the run and fails the script;
# the input is kept in fuzz/artifacts/<target>/: copy it into fuzz/regressions/<target>/, where
# tests/fuzz_corpus.rs replays it under `cargo test`, and fix the bug.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=${1:-smoke}
targets=(decode message)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (once)" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
echo "== cargo fuzz build (instrumented, its own target directory fuzz/target)" >&2
cargo fuzz build --sanitizer none --release

# libFuzzer options: inputs up to 64 KiB (every seed fits), 10 s per input, 2 GiB RSS.
common=(-max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

run() {
    local target=$1 seconds=$2 log
    log=$(mktemp)
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    echo "== fuzz $target for ${seconds}s" >&2
    # stderr carries libFuzzer's progress and final stats; the decoder's caught symphonia
    # panics print their messages there too (handled input, not findings).
    if ! /usr/bin/time -v cargo fuzz run --sanitizer none --release "$target" \
        -- "${common[@]}" -max_total_time="$seconds" \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
        grep -E "^==|ERROR|SUMMARY|panicked|deadly|Test unit written" "$log" | tail -20 >&2
        echo "fuzz $target: FAILED, the input is in fuzz/artifacts/$target/ (log: $log)" >&2
        return 1
    fi
    # One line per target: executions, coverage, corpus, peak RSS of the fuzzer process.
    local execs cov corpus rss panics
    execs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo "?")
    corpus=$(grep -oE "corp: [0-9]+/[0-9]+[a-zA-Z]*" "$log" | tail -1 | cut -d' ' -f2 || echo "?")
    rss=$(grep -oE "stat::peak_rss_mb: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    panics=$(grep -c "panicked at" "$log" || true)
    echo "fuzz $target: ${seconds}s, $execs executions, coverage $cov edges, corpus $corpus, peak RSS ${rss} MB, crashes 0, caught decoder panics $panics" >&2
    rm -f "$log"
}

case "$mode" in
    smoke)
        seconds=${2:-60}
        for target in "${targets[@]}"; do run "$target" "$seconds"; done
        ;;
    long)
        minutes=${2:?usage: fuzz.sh long MINUTES}
        for target in "${targets[@]}"; do run "$target" $((minutes * 60)); done
        ;;
    *)
        echo "usage: fuzz.sh smoke [SECONDS] | long MINUTES" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# setup-test-env.sh: installs what the test suite needs on a fresh Debian machine, idempotently.
#   - ffmpeg/ffprobe: make format fixtures and independently check our outputs' lengths.
#   - flac: the reference FLAC decoder (`flac -t`) judges every FLAC the encoder matrix writes.
#   - sox: makes streaming WAVs (`sox … -t wav -`) as pipelines do, for the header tests.
#   - fonts-dejavu-core: the font of the load-test harness's plots.
#   - prometheus: the server tests/prometheus.rs runs the dashboards and rules on, and promtool,
#     which lints a real worker's /metrics and unit-tests the rules.
#   - nodejs/npm and tests/js's packages (npm ci, from its lock file): the npm `waveform-data`
#     package, the reader peaks.js uses, judges the waveform files (tests/waveform.rs).
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v flac >/dev/null 2>&1 || need_apt+=(flac)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
# promtool (Debian's prometheus package) lints a real worker's /metrics (tests/worker.rs).
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need_apt+=(prometheus)
# The load-test harness draws its plots' text with DejaVu Sans (loadtest/src/plot.rs).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)

if [ ${#need_apt[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup-test-env: missing ${need_apt[*]} and no apt-get to install it; install ffmpeg by hand" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "setup-test-env: installing ${need_apt[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
for tool in ffmpeg ffprobe flac sox promtool prometheus node npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "setup-test-env: $tool still missing after install" >&2; exit 1; }
done
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || { echo "setup-test-env: DejaVuSans.ttf still missing after install" >&2; exit 1; }
# tests/js: installed again only when its lock file changed since the last install (a copy of
# the lock file it was installed from is kept in node_modules).
js=tests/js
if ! cmp -s "$js/package-lock.json" "$js/node_modules/.installed-from-lock.json"; then
    echo "setup-test-env: npm ci in $js" >&2
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$js/package-lock.json" "$js/node_modules/.installed-from-lock.json"
fi
[ -f "$js/node_modules/waveform-data/package.json" ] || { echo "setup-test-env: waveform-data (npm) still missing after npm ci" >&2; exit 1; }
echo "setup-test-env: ffmpeg $(ffmpeg -version | head -1 | awk '{print $3}') ready" >&2

#!/usr/bin/env bash
# pedalboard-venv.sh: installs pedalboard (Spotify's, the library longwave's reverb and `juce`
# limiter reproduce) and numpy, pinned, into a cached venv, and prints that venv's python.
# tests/pedalboard_parity.rs runs it to render the reference outputs it compares against.
#
#   scripts/pedalboard-venv.sh        # prints e.g. /root/.cache/longwave/pedalboard-venv/bin/python
#
# Idempotent (a stamp marks a finished install). A missing python3, venv or pip is an error
# naming the Debian packages, never a silent skip. The pins are the peers' (benches/peers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PEDALBOARD_VERSION="0.9.26"
NUMPY_VERSION="2.4.6"
VENV="${LONGWAVE_PEDALBOARD_VENV:-$HOME/.cache/longwave/pedalboard-venv}"

# shellcheck source=scripts/venv.sh
. scripts/venv.sh

ensure_venv pedalboard-venv "$VENV" python -- \
    "pedalboard==$PEDALBOARD_VERSION" "numpy==$NUMPY_VERSION"
echo "$VENV/bin/python"

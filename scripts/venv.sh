# venv.sh: sourced by the scripts that install pinned Python tools (local-aws.sh, lint-deploy.sh).
#
#   ensure_venv NAME VENV BIN... -- PACKAGE==VERSION...
#
# Creates VENV with python3 if needed and pip-installs the pinned PACKAGEs once: a stamp file
# named after the pins marks a finished install, so a changed pin reinstalls and an interrupted
# install is retried. BINs are the executables that must exist afterwards. A missing python3,
# venv module or pip is an error naming the Debian packages, never a silent skip. NAME prefixes
# the messages.

ensure_venv() {
    local name=$1 venv=$2
    shift 2
    local bins=() packages=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do bins+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    packages=("$@")
    local stamp="$venv/.longwave-$(printf '%s-' "${packages[@]}" | tr -c 'A-Za-z0-9.=-' '_')"
    local ready=1
    for bin in "${bins[@]}"; do [ -x "$venv/bin/$bin" ] || ready=0; done
    if [ -f "$stamp" ] && [ "$ready" = 1 ]; then
        return 0
    fi
    fail() { echo "$name: $*" >&2; exit 1; }
    command -v python3 >/dev/null 2>&1 || fail "python3 is missing (Debian: apt-get install python3 python3-venv)"
    if [ ! -x "$venv/bin/python" ]; then
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv" 2>/dev/null || {
            rm -rf "$venv"
            fail "cannot create a venv: python3 -m venv failed (Debian: apt-get install python3-venv)"
        }
    fi
    "$venv/bin/python" -m pip --version >/dev/null 2>&1 \
        || fail "pip is missing in $venv (Debian: apt-get install python3-pip python3-venv)"
    echo "$name: installing ${packages[*]} into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2 \
        || fail "pip install failed (needs PyPI)"
    rm -f "$venv"/.longwave-*
    touch "$stamp"
}

#!/usr/bin/env bash
# The official OpenAI Python clients for ChatVault's OpenAI Conversations tests: the `openai`
# SDK and the OpenAI Agents SDK (`openai-agents`), pinned, from PyPI, in a virtual environment
# of the project's own (no system-wide install).
#
# Usage: scripts/openai-clients.sh install|path|env
#
#   install  make the virtual environment and pip-install the pinned versions when they are
#            not there yet (idempotent: a second run changes nothing); prints the venv's
#            python on stdout
#   path     print the venv's python; exit 1 when the clients are not installed
#   env      print `export CHATVAULT_OPENAI_PYTHON=...`: eval "$(scripts/openai-clients.sh env)"
#
# Environment:
#   CHATVAULT_OPENAI_VENV  where the virtual environment goes
#                          (default: target/openai-venv under the repository)
#   PYTHON                 the interpreter that makes it (default python3; needs >= 3.9)
set -euo pipefail

# The pinned versions: change them here, nowhere else.
OPENAI_VERSION=3.63.0
OPENAI_AGENTS_VERSION=0.24.0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CHATVAULT_OPENAI_VENV:-$ROOT/target/openai-venv}
VENV_PYTHON=$VENV/bin/python
# What was installed, written last: its presence with the same pins means "done".
STAMP=$VENV/.chatvault-pins
PINS="openai==$OPENAI_VERSION openai-agents==$OPENAI_AGENTS_VERSION"

log() { echo "openai-clients.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

installed() {
    [[ -x $VENV_PYTHON && -f $STAMP && $(cat "$STAMP") == "$PINS" ]]
}

cmd_install() {
    if installed; then
        log "$PINS already in $VENV"
        echo "$VENV_PYTHON"
        return 0
    fi
    local python=${PYTHON:-python3}
    command -v "$python" >/dev/null 2>&1 || die "no $python on PATH: install Python 3.9 or newer"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
        die "$python is older than 3.9: the OpenAI SDKs need 3.9 or newer"
    if [[ ! -x $VENV_PYTHON ]]; then
        log "making the virtual environment $VENV"
        "$python" -m venv "$VENV" >&2 || die "$python -m venv $VENV failed (see above; Debian: apt-get install python3-venv)"
    fi
    rm -f "$STAMP"
    log "pip install $PINS"
    # shellcheck disable=SC2086 # PINS is a list of requirements
    "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check $PINS >&2 ||
        die "pip install $PINS failed (see above): PyPI must be reachable"
    "$VENV_PYTHON" -c 'import openai, agents' ||
        die "the clients were installed but do not import (see above)"
    echo "$PINS" >"$STAMP"
    log "$PINS installed in $VENV"
    echo "$VENV_PYTHON"
}

cmd_path() {
    installed || die "the OpenAI clients are not installed: run scripts/openai-clients.sh install"
    echo "$VENV_PYTHON"
}

cmd_env() {
    installed || die "the OpenAI clients are not installed: run scripts/openai-clients.sh install"
    echo "export CHATVAULT_OPENAI_PYTHON=$VENV_PYTHON"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

case ${1:-} in
install) cmd_install ;;
path) cmd_path ;;
env) cmd_env ;;
*) usage ;;
esac

#!/usr/bin/env bash
# The Python library that ChatVault re-creates and extends (`chatvault` on PyPI), pinned, in a
# virtual environment of the project's own (no system-wide install), for the benchmarks that
# compare with it (chatvault-memory/benches/append.rs; chatvault-aws/benches/dynamo.rs, which
# also needs boto3, the AWS SDK for Python, for the Python library on DynamoDB).
#
# Usage: scripts/python-chatvault.sh install|path|env
#
#   install  make the virtual environment and pip-install the pinned version when it is
#            not there yet (idempotent: a second run changes nothing); prints the venv's
#            python on stdout
#   path     print the venv's python; exit 1 when the package is not installed
#   env      print `export CHATVAULT_PYTHON_CHATVAULT=...`:
#            eval "$(scripts/python-chatvault.sh env)"
#
# Environment:
#   CHATVAULT_PYTHON_VENV  where the virtual environment goes
#                          (default: target/python-chatvault-venv under the repository)
#   PYTHON                 the interpreter that makes it (default python3; needs >= 3.10)
set -euo pipefail

# The pinned versions: change them here, nowhere else.
CHATVAULT_VERSION=0.1.0
BOTO3_VERSION=1.44.18

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CHATVAULT_PYTHON_VENV:-$ROOT/target/python-chatvault-venv}
VENV_PYTHON=$VENV/bin/python
# What was installed, written last: its presence with the same pins means "done".
STAMP=$VENV/.chatvault-pins
PINS="chatvault==$CHATVAULT_VERSION boto3==$BOTO3_VERSION"

log() { echo "python-chatvault.sh: $*" >&2; }
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
    command -v "$python" >/dev/null 2>&1 || die "no $python on PATH: install Python 3.10 or newer"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "$python is older than 3.10: chatvault $CHATVAULT_VERSION needs 3.10 or newer"
    if [[ ! -x $VENV_PYTHON ]]; then
        log "making the virtual environment $VENV"
        "$python" -m venv "$VENV" >&2 || die "$python -m venv $VENV failed (see above; Debian: apt-get install python3-venv)"
    fi
    rm -f "$STAMP"
    log "pip install $PINS"
    # shellcheck disable=SC2086 # one word per pin
    "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check $PINS >&2 ||
        die "pip install $PINS failed (see above): PyPI must be reachable"
    "$VENV_PYTHON" -c 'import chatvault, boto3; from chatvault.backends import MemoryMessages' ||
        die "the package was installed but does not import (see above)"
    echo "$PINS" >"$STAMP"
    log "$PINS installed in $VENV"
    echo "$VENV_PYTHON"
}

cmd_path() {
    installed || die "the Python chatvault is not installed: run scripts/python-chatvault.sh install"
    echo "$VENV_PYTHON"
}

cmd_env() {
    installed || die "the Python chatvault is not installed: run scripts/python-chatvault.sh install"
    echo "export CHATVAULT_PYTHON_CHATVAULT=$VENV_PYTHON"
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

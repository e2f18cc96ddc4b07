#!/usr/bin/env bash
# A throwaway PostgreSQL server for ChatVault's PostgreSQL tests, from the machine's own
# packages (Debian's `postgresql`), on its own port and data directory. No Docker.
#
# Usage: scripts/postgres.sh install|start|stop|status|env
#
#   install  install Debian's postgresql when initdb/pg_ctl are missing (apt-get; needs root)
#   start    install if needed, create the cluster if needed, start it on 127.0.0.1 and wait
#            until it accepts connections, create the database; idempotent (a running server
#            is left running)
#   stop     stop the server, whether or not `start` completed; fine if nothing runs
#   status   print the state; exit 0 only if the server accepts connections
#   env      print `export DATABASE_URL=... CHATVAULT_POSTGRES_URL=...` (the same URL):
#            eval "$(scripts/postgres.sh env)"
#
# Environment:
#   CHATVAULT_PG_PORT  TCP port on 127.0.0.1 (default 55432)
#   CHATVAULT_PG_DIR   state dir: data/, run/ (socket), postgres.log
#                      (default <repo>/.chatvault-servers/postgres)
#   CHATVAULT_PG_DB    database created by `start` and named by `env` (default chatvault)
#
# The cluster's superuser is `chatvault`, trusted without a password: the server listens only
# on 127.0.0.1 and on a socket in the state dir. When run as root, the server runs as the
# `postgres` system user (PostgreSQL refuses to run as root), which must be able to reach the
# state dir; otherwise it runs as the calling user.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
PORT=${CHATVAULT_PG_PORT:-55432}
STATE_DIR=${CHATVAULT_PG_DIR:-$REPO_ROOT/.chatvault-servers/postgres}
DB=${CHATVAULT_PG_DB:-chatvault}
PGUSER_NAME=chatvault
DATA=$STATE_DIR/data
SOCK=$STATE_DIR/run
LOG=$STATE_DIR/postgres.log

log() { echo "postgres.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

case $PORT in
'' | *[!0-9]*) die "CHATVAULT_PG_PORT must be a port number, got '$PORT'" ;;
esac
if ((10#$PORT < 1 || 10#$PORT > 65535)); then die "CHATVAULT_PG_PORT must be a port number, got '$PORT'"; fi
case $DB in
'' | *[!A-Za-z0-9_]*) die "CHATVAULT_PG_DB must be letters, digits and _ only, got '$DB'" ;;
esac
case $STATE_DIR in
/*) ;;
*) STATE_DIR=$PWD/$STATE_DIR DATA=$PWD/$DATA SOCK=$PWD/$SOCK LOG=$PWD/$LOG ;;
esac

# ---------------------------------------------------------------------------
# binaries and the user the server runs as
# ---------------------------------------------------------------------------

# Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin (not on PATH).
find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    return 1
}

cmd_install() {
    if BINDIR=$(find_bindir); then
        log "PostgreSQL server binaries: $BINDIR"
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH) and installing it needs root: run 'apt-get install postgresql' as root"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is missing: install PostgreSQL (initdb, pg_ctl) yourself"
    log "installing Debian's postgresql (apt-get update && apt-get install postgresql)"
    apt-get update -q >&2 || die "apt-get update failed (see above); cannot install postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql postgresql-client >&2 ||
        die "apt-get install postgresql failed (see above)"
    BINDIR=$(find_bindir) || die "postgresql was installed but no initdb/pg_ctl was found in /usr/lib/postgresql/*/bin"
    # Debian's package starts its own cluster on 5432; ours does not need it, but leave it alone.
    log "PostgreSQL server binaries: $BINDIR"
}

# Runs a server binary as the user the server runs as.
as_server_user() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

server_user() { if [[ $(id -u) == 0 ]]; then echo postgres; else id -un; fi; }

# psql/createdb are run by the caller, over the socket in the state dir.
client() {
    local tool=$1
    shift
    "$BINDIR/$tool" -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" "$@"
}

# ---------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------

initialized() { [[ -f $DATA/PG_VERSION ]]; }

# 0 if a postmaster of our data dir is running (pg_ctl status: 0 running, 3 not, 4 no data dir).
running() {
    [[ -n ${BINDIR:-} ]] || return 1
    [[ -d $DATA ]] || return 1
    as_server_user "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

accepting() { [[ -n ${BINDIR:-} ]] && "$BINDIR/pg_isready" -q -h "$SOCK" -p "$PORT" -U "$PGUSER_NAME" -d postgres >/dev/null 2>&1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
    if [[ -f $LOG ]]; then
        log "last lines of $LOG:"
        tail -n 20 "$LOG" | sed 's/^/    /' >&2
    fi
}

make_state_dir() {
    mkdir -p "$STATE_DIR" || die "cannot create the state dir $STATE_DIR"
    mkdir -p "$SOCK"
    if [[ $(id -u) == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' system user to run the server as (it comes with Debian's postgresql package)"
        chown postgres: "$STATE_DIR" "$SOCK" || die "cannot hand $STATE_DIR to the postgres user"
        if ! runuser -u postgres -- test -w "$STATE_DIR"; then
            die "the postgres user cannot write $STATE_DIR (a parent directory is not searchable by it?); set CHATVAULT_PG_DIR to a directory it can reach, e.g. /tmp/chatvault-postgres"
        fi
    fi
    chmod 0700 "$SOCK" 2>/dev/null || true
}

init_cluster() {
    local tmp=$STATE_DIR/data.initdb
    rm -rf "$tmp"
    log "creating a cluster in $DATA (initdb as $(server_user))"
    if ! as_server_user "$BINDIR/initdb" -D "$tmp" -U "$PGUSER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$STATE_DIR/initdb.log" 2>&1; then
        sed 's/^/    /' "$STATE_DIR/initdb.log" >&2
        rm -rf "$tmp"
        die "initdb failed (output above, also in $STATE_DIR/initdb.log)"
    fi
    # Only a complete cluster gets the real name, so an interrupted initdb is redone next time.
    mv "$tmp" "$DATA"
}

# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

cmd_start() {
    cmd_install
    make_state_dir
    if running; then
        log "a server of $DATA is already running"
    else
        initialized || init_cluster
        if port_in_use "$PORT"; then
            die "port $PORT on 127.0.0.1 is taken by another process; set CHATVAULT_PG_PORT to a free port"
        fi
        : >"$LOG"
        [[ $(id -u) != 0 ]] || chown postgres: "$LOG"
        log "starting PostgreSQL on 127.0.0.1:$PORT (data $DATA, log $LOG)"
        if ! as_server_user "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
            -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0777" \
            start >/dev/null; then
            log_tail
            die "pg_ctl start failed (see the log above)"
        fi
    fi
    local i
    for i in $(seq 1 60); do
        accepting && break
        sleep 0.5
    done
    if ! accepting; then
        log_tail
        die "the server of $DATA runs but does not accept connections on 127.0.0.1:$PORT (another port in its config? run 'scripts/postgres.sh stop' and start again)"
    fi
    if [[ $(client psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") != 1 ]]; then
        client createdb "$DB" || die "createdb $DB failed"
        log "created database $DB"
    fi
    log "ready: $(database_url)"
}

cmd_stop() {
    BINDIR=$(find_bindir) || {
        log "PostgreSQL is not installed: nothing to stop"
        return 0
    }
    if [[ ! -d $DATA ]]; then
        log "no cluster in $DATA: nothing to stop"
        return 0
    fi
    if ! running; then
        log "not running"
        return 0
    fi
    log "stopping the server of $DATA"
    if ! as_server_user "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null; then
        log_tail
        die "pg_ctl stop failed for $DATA"
    fi
    log "stopped"
}

cmd_status() {
    BINDIR=$(find_bindir) || {
        echo "PostgreSQL: not installed"
        return 3
    }
    if accepting; then
        echo "PostgreSQL: accepting connections on 127.0.0.1:$PORT (data $DATA)"
        return 0
    fi
    if running; then
        echo "PostgreSQL: running (data $DATA) but not accepting connections on 127.0.0.1:$PORT"
        return 1
    fi
    echo "PostgreSQL: not running (data $DATA)"
    return 3
}

database_url() { echo "postgres://$PGUSER_NAME@127.0.0.1:$PORT/$DB"; }

cmd_env() {
    # DATABASE_URL is the usual name (sqlx, psql tools); CHATVAULT_POSTGRES_URL is the one
    # chatvault-sql's PostgreSQL tests read.
    echo "export DATABASE_URL=$(database_url) CHATVAULT_POSTGRES_URL=$(database_url)"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

BINDIR=$(find_bindir || true)
case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac

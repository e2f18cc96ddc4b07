#!/usr/bin/env bash
# A throwaway Redis server for ChatVault's Redis tests, from the machine's own packages
# (Debian's `redis-server`), on its own port and data directory. No Docker.
#
# Usage: scripts/redis.sh install|start|stop|status|env
#
#   install  install Debian's redis-server when redis-server/redis-cli are missing (apt-get;
#            needs root)
#   start    install if needed, start the server on 127.0.0.1 (daemonized) and wait until it
#            answers PING; idempotent (a running server is left running)
#   stop     stop the server, whether or not `start` completed; fine if nothing runs
#   status   print the state; exit 0 only if the server answers PING
#   env      print `export CHATVAULT_REDIS_URL=...`: eval "$(scripts/redis.sh env)"
#
# Environment:
#   CHATVAULT_REDIS_PORT     TCP port on 127.0.0.1 (default 56379)
#   CHATVAULT_REDIS_DIR      state dir: data/, redis.conf, redis.pid, redis.log
#                            (default <repo>/.chatvault-servers/redis)
#   CHATVAULT_REDIS_PERSIST  none | rdb | everysec | always (default none): the
#                            persistence setting the server starts with (nothing, RDB
#                            snapshots, or AOF with that fsync policy); see
#                            chatvault-redis/README.md, "Durability". Applies at start.
#                            With none (a throwaway server for tests) the data dir is
#                            emptied at start, so nothing of an earlier run is loaded.
#
# The server has no password: it listens only on 127.0.0.1 (protected mode off for that
# address). Debian's package may start its own server on 6379; ours does not need it, and
# leaves it alone.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
PORT=${CHATVAULT_REDIS_PORT:-56379}
STATE_DIR=${CHATVAULT_REDIS_DIR:-$REPO_ROOT/.chatvault-servers/redis}
PERSIST=${CHATVAULT_REDIS_PERSIST:-none}

log() { echo "redis.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

case $PORT in
'' | *[!0-9]*) die "CHATVAULT_REDIS_PORT must be a port number, got '$PORT'" ;;
esac
if ((10#$PORT < 1 || 10#$PORT > 65535)); then die "CHATVAULT_REDIS_PORT must be a port number, got '$PORT'"; fi
case $PERSIST in
none | rdb | everysec | always) ;;
*) die "CHATVAULT_REDIS_PERSIST must be none, rdb, everysec or always, got '$PERSIST'" ;;
esac
case $STATE_DIR in
/*) ;;
*) STATE_DIR=$PWD/$STATE_DIR ;;
esac
DATA=$STATE_DIR/data
CONF=$STATE_DIR/redis.conf
PIDFILE=$STATE_DIR/redis.pid
LOG=$STATE_DIR/redis.log

cmd_install() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        log "Redis: $(redis-server --version | head -n 1)"
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "Redis is not installed (no redis-server/redis-cli on PATH) and installing it needs root: run 'apt-get install redis-server' as root"
    command -v apt-get >/dev/null 2>&1 || die "Redis is not installed and apt-get is missing: install redis-server and redis-cli yourself"
    log "installing Debian's redis-server (apt-get update && apt-get install redis-server)"
    apt-get update -q >&2 || die "apt-get update failed (see above); cannot install redis-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server redis-tools >&2 ||
        die "apt-get install redis-server failed (see above)"
    command -v redis-server >/dev/null 2>&1 || die "redis-server was installed but is not on PATH"
    log "Redis: $(redis-server --version | head -n 1)"
}

cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

answering() { command -v redis-cli >/dev/null 2>&1 && [[ $(cli PING 2>/dev/null) == PONG ]]; }

# The pid of our server, if its pidfile names a live redis-server process.
our_pid() {
    [[ -f $PIDFILE ]] || return 1
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
    if [[ -f $LOG ]]; then
        log "last lines of $LOG:"
        tail -n 20 "$LOG" | sed 's/^/    /' >&2
    fi
}

write_conf() {
    {
        echo "# written by scripts/redis.sh start; rewritten at every start"
        echo "bind 127.0.0.1"
        echo "port $PORT"
        echo "protected-mode no"
        echo "daemonize yes"
        echo "pidfile $PIDFILE"
        echo "logfile $LOG"
        echo "dir $DATA"
        echo "databases 16"
        case $PERSIST in
        none) printf 'save ""\nappendonly no\n' ;;
        rdb) printf 'save 3600 1 300 100 60 10000\nappendonly no\n' ;;
        everysec) printf 'save ""\nappendonly yes\nappendfsync everysec\n' ;;
        always) printf 'save ""\nappendonly yes\nappendfsync always\n' ;;
        esac
    } >"$CONF"
}

cmd_start() {
    cmd_install
    mkdir -p "$DATA" || die "cannot create the state dir $STATE_DIR"
    if our_pid >/dev/null; then
        log "a server of $DATA is already running"
    else
        if port_in_use "$PORT"; then
            die "port $PORT on 127.0.0.1 is taken by another process; set CHATVAULT_REDIS_PORT to a free port"
        fi
        write_conf
        if [[ $PERSIST == none ]]; then
            # Nothing is to be kept: no snapshot or log of an earlier run gets loaded.
            rm -rf "${DATA:?}"/* 2>/dev/null || true
        fi
        : >"$LOG"
        log "starting Redis on 127.0.0.1:$PORT (data $DATA, persistence $PERSIST, log $LOG)"
        if ! redis-server "$CONF" >/dev/null; then
            log_tail
            die "redis-server failed to start (see the log above)"
        fi
    fi
    local i
    for i in $(seq 1 60); do
        answering && break
        sleep 0.25
    done
    if ! answering; then
        log_tail
        die "the server of $DATA does not answer PING on 127.0.0.1:$PORT (run 'scripts/redis.sh stop' and start again)"
    fi
    log "ready: $(redis_url)"
}

cmd_stop() {
    local pid
    if ! pid=$(our_pid); then
        log "not running"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping the server of $DATA (pid $pid)"
    cli SHUTDOWN >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "SHUTDOWN did not stop it; sending SIGTERM to $pid"
        kill "$pid" 2>/dev/null || true
        sleep 1
        if kill -0 "$pid" 2>/dev/null; then
            log_tail
            die "the server (pid $pid) did not stop"
        fi
    fi
    rm -f "$PIDFILE"
    log "stopped"
}

cmd_status() {
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "Redis: not installed"
        return 3
    fi
    if answering; then
        echo "Redis: answering on 127.0.0.1:$PORT (data $DATA)"
        return 0
    fi
    if our_pid >/dev/null; then
        echo "Redis: running (data $DATA) but not answering on 127.0.0.1:$PORT"
        return 1
    fi
    echo "Redis: not running (data $DATA)"
    return 3
}

redis_url() { echo "redis://127.0.0.1:$PORT/"; }

cmd_env() {
    # CHATVAULT_REDIS_URL is the one chatvault-redis's tests and bench read.
    echo "export CHATVAULT_REDIS_URL=$(redis_url)"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac

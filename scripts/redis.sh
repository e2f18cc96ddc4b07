#!/usr/bin/env bash
# A throwaway Redis server (with a replica) and a throwaway 3-node Redis Cluster for
# ChatVault's Redis tests, from the machine's own packages (Debian's `redis-server`,
# `redis-tools`), on their own ports and data directories. No Docker.
#
# Usage: scripts/redis.sh install|start|stop|status|env
#
#   install  install Debian's redis-server when redis-server/redis-cli are missing (apt-get;
#            needs root)
#   start    install if needed, start the server on 127.0.0.1 (daemonized) and wait until it
#            answers PING; idempotent (a running server is left running). Then its replica
#            (unless CHATVAULT_REDIS_REPLICA=0): a second server on the next port,
#            `replicaof` the first, waited for until its link to the primary is up; a
#            running replica is left running (made a replica of ours again if it is not).
#            Then the cluster: three masters (no replicas, no persistence) made one
#            cluster with `redis-cli --cluster create`, waited for until every node says
#            cluster_state:ok.
#            A cluster that is up and whole is left running; anything else of it (a node
#            down, slots unassigned, a create that did not finish) is stopped, wiped and
#            made again.
#   stop     stop the server, its replica and the cluster's nodes, whether or not `start`
#            completed; fine if nothing runs
#   status   print the state of all three; exit 0 only if the server answers PING, the
#            replica (when there is to be one) is linked to it, and the cluster is whole
#   env      print `export CHATVAULT_REDIS_URL=...`,
#            `export CHATVAULT_REDIS_REPLICA_URL=...` (the replica; not with
#            CHATVAULT_REDIS_REPLICA=0) and `export CHATVAULT_REDIS_CLUSTER_URL=...` (the
#            cluster's nodes, comma-separated URLs, each one a seed for
#            `RedisMessages::cluster_builder`):
#            eval "$(scripts/redis.sh env)"
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
#   CHATVAULT_REDIS_REPLICA  1 (default) or 0: whether start also starts a replica of the
#                            server, on 127.0.0.1:CHATVAULT_REDIS_PORT + 1 (no persistence;
#                            its state in <CHATVAULT_REDIS_DIR>/replica: data/, redis.conf,
#                            redis.pid, redis.log; its data dir is emptied when it starts)
#   CHATVAULT_REDIS_CLUSTER_PORT
#                            the cluster's first port (default 56400): its nodes listen on
#                            this port and the next two on 127.0.0.1, and talk to each other
#                            on their cluster bus at this port + 10, + 11, + 12
#   CHATVAULT_REDIS_CLUSTER_DIR
#                            the cluster's state dir, one node-PORT/ per node (redis.conf,
#                            redis.pid, redis.log, data/ with nodes.conf), and create.log
#                            (default <repo>/.chatvault-servers/redis-cluster)
#
# The cluster always runs without persistence, whatever CHATVAULT_REDIS_PERSIST says: its
# nodes' data dirs are emptied whenever it is made.
#
# The servers have no password: they listen only on 127.0.0.1 (protected mode off for that
# address). Debian's package may start its own server on 6379; ours does not need it, and
# leaves it alone.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
PORT=${CHATVAULT_REDIS_PORT:-56379}
STATE_DIR=${CHATVAULT_REDIS_DIR:-$REPO_ROOT/.chatvault-servers/redis}
PERSIST=${CHATVAULT_REDIS_PERSIST:-none}
WITH_REPLICA=${CHATVAULT_REDIS_REPLICA:-1}
CLUSTER_PORT=${CHATVAULT_REDIS_CLUSTER_PORT:-56400}
CLUSTER_DIR=${CHATVAULT_REDIS_CLUSTER_DIR:-$REPO_ROOT/.chatvault-servers/redis-cluster}
# The cluster's nodes: how many, and how far above a node's port its cluster bus listens
# (not the default + 10000, which is past 65535 for ports from 55536).
CLUSTER_NODES=3
CLUSTER_BUS_OFFSET=10

log() { echo "redis.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

case $PORT in
'' | *[!0-9]*) die "CHATVAULT_REDIS_PORT must be a port number, got '$PORT'" ;;
esac
if ((10#$PORT < 1 || 10#$PORT > 65534)); then die "CHATVAULT_REDIS_PORT must be a port number below 65535 (its replica takes the next one), got '$PORT'"; fi
PORT=$((10#$PORT))
REPLICA_PORT=$((PORT + 1))
case $WITH_REPLICA in
0 | 1) ;;
*) die "CHATVAULT_REDIS_REPLICA must be 1 or 0, got '$WITH_REPLICA'" ;;
esac
case $PERSIST in
none | rdb | everysec | always) ;;
*) die "CHATVAULT_REDIS_PERSIST must be none, rdb, everysec or always, got '$PERSIST'" ;;
esac
case $STATE_DIR in
/*) ;;
*) STATE_DIR=$PWD/$STATE_DIR ;;
esac
case $CLUSTER_PORT in
'' | *[!0-9]*) die "CHATVAULT_REDIS_CLUSTER_PORT must be a port number, got '$CLUSTER_PORT'" ;;
esac
CLUSTER_PORT=$((10#$CLUSTER_PORT))
if ((CLUSTER_PORT < 1 || CLUSTER_PORT + CLUSTER_BUS_OFFSET + CLUSTER_NODES - 1 > 65535)); then
    die "CHATVAULT_REDIS_CLUSTER_PORT must be a port number from 1 to $((65535 - CLUSTER_BUS_OFFSET - CLUSTER_NODES + 1)) (its nodes and their cluster bus take the ports up to + $((CLUSTER_BUS_OFFSET + CLUSTER_NODES - 1))), got '$CLUSTER_PORT'"
fi
if ((REPLICA_PORT >= CLUSTER_PORT && PORT <= CLUSTER_PORT + CLUSTER_BUS_OFFSET + CLUSTER_NODES - 1)); then
    die "CHATVAULT_REDIS_PORT ($PORT) or its replica's ($REPLICA_PORT) is one of the cluster's ports ($CLUSTER_PORT to $((CLUSTER_PORT + CLUSTER_BUS_OFFSET + CLUSTER_NODES - 1))): set CHATVAULT_REDIS_CLUSTER_PORT or CHATVAULT_REDIS_PORT apart"
fi
case $CLUSTER_DIR in
/*) ;;
*) CLUSTER_DIR=$PWD/$CLUSTER_DIR ;;
esac
DATA=$STATE_DIR/data
CONF=$STATE_DIR/redis.conf
PIDFILE=$STATE_DIR/redis.pid
LOG=$STATE_DIR/redis.log
REPLICA_DIR=$STATE_DIR/replica

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
our_pid() { pid_in "$PIDFILE"; }

# The pid in pidfile $1, if it names a live redis-server process.
pid_in() {
    [[ -f $1 ]] || return 1
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    running "$pid" || return 1
    grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

# Whether process $1 runs: a zombie (exited, not yet reaped by its parent, init for a
# daemon) does not.
running() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 0
    [[ $state != Z ]]
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
        # A replica's first sync starts at once, not after 5 s waiting for others.
        echo "repl-diskless-sync-delay 0"
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
    replica_start
    cluster_start
}

# Waits up to TRIES quarter-seconds for PID (NAME in messages) to exit after a SHUTDOWN,
# then sends SIGTERM; dies, after TAIL (a function printing its log's end), if it still runs.
wait_stopped() {
    local name=$1 pid=$2 tries=$3 tail=$4 i
    for i in $(seq 1 "$tries"); do
        running "$pid" || return 0
        sleep 0.25
    done
    log "SHUTDOWN did not stop $name; sending SIGTERM to $pid"
    kill "$pid" 2>/dev/null || true
    sleep 1
    if running "$pid"; then
        "$tail"
        die "$name (pid $pid) did not stop"
    fi
}


cmd_stop() {
    local pid
    stop_nodes
    stop_replica
    if ! pid=$(our_pid); then
        log "not running"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping the server of $DATA (pid $pid)"
    cli SHUTDOWN >/dev/null 2>&1 || true
    wait_stopped "the server" "$pid" 60 log_tail
    rm -f "$PIDFILE"
    log "stopped"
}

cmd_status() {
    local rc=0 replica_rc=0 cluster_rc=0
    server_status || rc=$?
    ((rc == 3)) && ! command -v redis-server >/dev/null 2>&1 && return 3
    replica_status || replica_rc=$?
    cluster_status || cluster_rc=$?
    ((rc != 0)) && return "$rc"
    ((replica_rc != 0)) && return "$replica_rc"
    return "$cluster_rc"
}

server_status() {
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

# The cluster's seed nodes: comma-separated URLs.
cluster_url() {
    local p urls=()
    for p in $(node_ports); do urls+=("redis://127.0.0.1:$p/"); done
    (IFS=,; echo "${urls[*]}")
}

cmd_env() {
    # CHATVAULT_REDIS_URL is the one chatvault-redis's tests and bench read;
    # CHATVAULT_REDIS_CLUSTER_URL the one its cluster tests read.
    echo "export CHATVAULT_REDIS_URL=$(redis_url)"
    # CHATVAULT_REDIS_REPLICA_URL the one its replica tests read.
    if ((WITH_REPLICA)); then echo "export CHATVAULT_REDIS_REPLICA_URL=redis://127.0.0.1:$REPLICA_PORT/"; fi
    echo "export CHATVAULT_REDIS_CLUSTER_URL=$(cluster_url)"
}

# --- the replica ---------------------------------------------------------------------

replica_cli() { redis-cli -h 127.0.0.1 -p "$REPLICA_PORT" "$@"; }
replica_pid() { pid_in "$REPLICA_DIR/redis.pid"; }

# The value of field $1 in the replica's INFO replication (empty when it does not answer).
replica_info() { replica_cli INFO replication 2>/dev/null | tr -d '\r' | sed -n "s/^$1://p"; }

# Whether the replica is ours, running, a replica of our server, and linked to it.
replica_linked() {
    replica_pid >/dev/null &&
        [[ $(replica_info role) == slave && $(replica_info master_port) == "$PORT" &&
            $(replica_info master_link_status) == up ]]
}

replica_log_tail() {
    if [[ -f $REPLICA_DIR/redis.log ]]; then
        log "last lines of $REPLICA_DIR/redis.log:"
        tail -n 20 "$REPLICA_DIR/redis.log" | sed 's/^/    /' >&2
    fi
}

write_replica_conf() {
    {
        echo "# written by scripts/redis.sh start; rewritten whenever the replica starts"
        echo "bind 127.0.0.1"
        echo "port $REPLICA_PORT"
        echo "protected-mode no"
        echo "daemonize yes"
        echo "pidfile $REPLICA_DIR/redis.pid"
        echo "logfile $REPLICA_DIR/redis.log"
        echo "dir $REPLICA_DIR/data"
        echo "databases 16"
        echo "replicaof 127.0.0.1 $PORT"
        echo "replica-read-only yes"
        echo 'save ""'
        echo "appendonly no"
    } >"$REPLICA_DIR/redis.conf"
}

replica_start() {
    ((WITH_REPLICA)) || return 0
    local i
    if replica_pid >/dev/null; then
        if [[ $(replica_info role) != slave || $(replica_info master_port) != "$PORT" ]]; then
            log "the replica on $REPLICA_PORT is not a replica of $PORT (promoted?): making it one again"
            replica_cli REPLICAOF 127.0.0.1 "$PORT" >/dev/null || die "REPLICAOF failed on 127.0.0.1:$REPLICA_PORT"
        else
            log "the replica of $REPLICA_DIR is already running"
        fi
    else
        if port_in_use "$REPLICA_PORT"; then
            die "port $REPLICA_PORT on 127.0.0.1 (for the replica) is taken by another process; set CHATVAULT_REDIS_PORT elsewhere, or CHATVAULT_REDIS_REPLICA=0"
        fi
        rm -rf "$REPLICA_DIR"
        mkdir -p "$REPLICA_DIR/data" || die "cannot create the replica's state dir $REPLICA_DIR"
        write_replica_conf
        log "starting a replica of 127.0.0.1:$PORT on 127.0.0.1:$REPLICA_PORT (no persistence, state $REPLICA_DIR)"
        if ! redis-server "$REPLICA_DIR/redis.conf" >/dev/null; then
            replica_log_tail
            die "redis-server failed to start the replica (see the log above)"
        fi
    fi
    for i in $(seq 1 120); do
        replica_linked && break
        sleep 0.25
    done
    if ! replica_linked; then
        replica_log_tail
        die "the replica on 127.0.0.1:$REPLICA_PORT is not linked to its primary within 30 s (run 'scripts/redis.sh stop' and start again)"
    fi
    log "replica ready: redis://127.0.0.1:$REPLICA_PORT/"
}

# Stops the replica if it runs (SHUTDOWN NOSAVE, then SIGTERM).
stop_replica() {
    local pid
    pid=$(replica_pid) || {
        rm -f "$REPLICA_DIR/redis.pid"
        return 0
    }
    log "stopping the replica (pid $pid)"
    replica_cli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    wait_stopped "the replica" "$pid" 40 replica_log_tail
    rm -f "$REPLICA_DIR/redis.pid"
}

replica_status() {
    ((WITH_REPLICA)) || return 0
    if replica_linked; then
        echo "Redis replica: linked to 127.0.0.1:$PORT, on 127.0.0.1:$REPLICA_PORT (state $REPLICA_DIR)"
        return 0
    fi
    if replica_pid >/dev/null; then
        echo "Redis replica: running on 127.0.0.1:$REPLICA_PORT but not linked to 127.0.0.1:$PORT (role $(replica_info role), link $(replica_info master_link_status)) (state $REPLICA_DIR)"
        return 1
    fi
    echo "Redis replica: not running (state $REPLICA_DIR)"
    return 3
}

# --- the cluster ---------------------------------------------------------------------

node_ports() { seq "$CLUSTER_PORT" $((CLUSTER_PORT + CLUSTER_NODES - 1)); }
node_dir() { echo "$CLUSTER_DIR/node-$1"; }
node_pid() { pid_in "$(node_dir "$1")/redis.pid"; }
node_cli() {
    local port=$1
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# The value of field $2 in node $1's CLUSTER INFO (empty when it does not answer).
node_info() { node_cli "$1" CLUSTER INFO 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# Whether the cluster is up and whole: every node is ours, running, and says the cluster
# is ok, with every slot assigned and every node known. With -v, says what is not.
cluster_whole() {
    local p why=""
    for p in $(node_ports); do
        if ! node_pid "$p" >/dev/null; then
            why="node $p is not running"
        elif [[ $(node_info "$p" cluster_state) != ok ]]; then
            why="node $p does not say cluster_state:ok"
        elif [[ $(node_info "$p" cluster_slots_assigned) != 16384 || $(node_info "$p" cluster_known_nodes) != "$CLUSTER_NODES" ]]; then
            why="node $p does not see $CLUSTER_NODES nodes holding all 16384 slots"
        else
            continue
        fi
        [[ ${1:-} == -v ]] && echo "$why"
        return 1
    done
}

node_log_tail() {
    local log
    log=$(node_dir "$1")/redis.log
    if [[ -f $log ]]; then
        log "last lines of $log:"
        tail -n 20 "$log" | sed 's/^/    /' >&2
    fi
}

write_node_conf() {
    local port=$1 dir
    dir=$(node_dir "$port")
    {
        echo "# written by scripts/redis.sh start; rewritten whenever the cluster is made"
        echo "bind 127.0.0.1"
        echo "port $port"
        echo "protected-mode no"
        echo "daemonize yes"
        echo "pidfile $dir/redis.pid"
        echo "logfile $dir/redis.log"
        echo "dir $dir/data"
        echo "cluster-enabled yes"
        echo "cluster-config-file nodes.conf"
        echo "cluster-port $((port + CLUSTER_BUS_OFFSET))"
        echo 'save ""'
        echo "appendonly no"
    } >"$dir/redis.conf"
}

# Stops the cluster's nodes that run (SHUTDOWN NOSAVE, then SIGTERM).
stop_nodes() {
    local p pid i
    for p in $(node_ports); do
        pid=$(node_pid "$p") || {
            rm -f "$(node_dir "$p")/redis.pid"
            continue
        }
        log "stopping cluster node $p (pid $pid)"
        node_cli "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
        for i in $(seq 1 40); do
            running "$pid" || break
            sleep 0.25
        done
        if running "$pid"; then
            log "SHUTDOWN did not stop node $p; sending SIGTERM to $pid"
            kill "$pid" 2>/dev/null || true
            sleep 1
            if running "$pid"; then
                node_log_tail "$p"
                die "cluster node $p (pid $pid) did not stop"
            fi
        fi
        rm -f "$(node_dir "$p")/redis.pid"
    done
}

cluster_start() {
    local p i why
    if cluster_whole; then
        log "the cluster of $CLUSTER_DIR is already running and whole"
        log "cluster ready: $(cluster_url)"
        return 0
    fi
    why=$(cluster_whole -v || true)
    for p in $(node_ports); do
        if node_pid "$p" >/dev/null; then
            log "the cluster of $CLUSTER_DIR is not whole ($why): making it again"
            stop_nodes
            break
        fi
    done
    for p in $(node_ports); do
        for i in "$p" $((p + CLUSTER_BUS_OFFSET)); do
            if port_in_use "$i"; then
                die "port $i on 127.0.0.1 (for the cluster) is taken by another process; set CHATVAULT_REDIS_CLUSTER_PORT to a free range"
            fi
        done
    done
    log "starting a cluster of $CLUSTER_NODES nodes on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1)) (no persistence, state $CLUSTER_DIR)"
    for p in $(node_ports); do
        # A new cluster each time: no nodes.conf or data of an earlier one.
        rm -rf "$(node_dir "$p")"
        mkdir -p "$(node_dir "$p")/data" || die "cannot create the cluster's state dir $CLUSTER_DIR"
        write_node_conf "$p"
        if ! redis-server "$(node_dir "$p")/redis.conf" >/dev/null; then
            node_log_tail "$p"
            die "redis-server failed to start cluster node $p (see the log above)"
        fi
    done
    for p in $(node_ports); do
        for i in $(seq 1 60); do
            [[ $(node_cli "$p" PING 2>/dev/null) == PONG ]] && break
            sleep 0.25
        done
        if [[ $(node_cli "$p" PING 2>/dev/null) != PONG ]]; then
            node_log_tail "$p"
            die "cluster node $p does not answer PING (run 'scripts/redis.sh stop' and start again)"
        fi
    done
    local nodes=()
    for p in $(node_ports); do nodes+=("127.0.0.1:$p"); done
    if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1; then
        log "redis-cli --cluster create failed; its output ($CLUSTER_DIR/create.log):"
        sed 's/^/    /' "$CLUSTER_DIR/create.log" >&2
        die "the cluster could not be made (run 'scripts/redis.sh stop' and start again)"
    fi
    # Every node must have learnt the whole slot map before a client is let in.
    for i in $(seq 1 120); do
        cluster_whole && break
        sleep 0.25
    done
    if ! cluster_whole; then
        for p in $(node_ports); do node_log_tail "$p"; done
        die "the cluster did not become whole within 30 s: $(cluster_whole -v) (run 'scripts/redis.sh stop' and start again)"
    fi
    log "cluster ready: $(cluster_url)"
}

cluster_status() {
    if cluster_whole; then
        echo "Redis cluster: whole, $CLUSTER_NODES nodes on 127.0.0.1:$CLUSTER_PORT-$((CLUSTER_PORT + CLUSTER_NODES - 1)) (state $CLUSTER_DIR)"
        return 0
    fi
    local p
    for p in $(node_ports); do
        if node_pid "$p" >/dev/null; then
            echo "Redis cluster: not whole ($(cluster_whole -v)) (state $CLUSTER_DIR)"
            return 1
        fi
    done
    echo "Redis cluster: not running (state $CLUSTER_DIR)"
    return 3
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

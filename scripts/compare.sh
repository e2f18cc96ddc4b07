#!/usr/bin/env bash
# Every benchmark that measures ChatVault against a peer or a physical limit, in one run,
# with their ratios (issue #27):
#   - chatvault-memory  append: add_message at 10 / 1,000 / 100,000 messages; 4,000
#                       appends against the Python chatvault 0.1.0 (MemoryMessages)
#   - chatvault-aws     dynamo: append and whole loads against the seed's layout and the
#                       Python chatvault 0.1.0 on boto3 (one item per conversation), and
#                       the seal cycle (p99 and mean of 2,000 appends against their median)
#   - chatvault-local   upload: 1 GiB upload and attach against a timed cp + sync
#
# Usage: scripts/compare.sh
#
# It installs the Python library in the project's own virtual environment
# (scripts/python-chatvault.sh; without a Python interpreter or PyPI the Python
# comparisons are skipped and say why) and starts DynamoDB Local and LocalStack
# (scripts/emulators.sh), stopping them at the end if it started them. Each benchmark's
# whole output goes to target/compare/<name>.log; the lines with a ratio or a target are
# printed again at the end. Run it on a quiet machine: the figures are timings.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOGS=$ROOT/target/compare
log() { echo "compare.sh: $*" >&2; }

if [[ $# -gt 0 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi

mkdir -p "$LOGS"
cd "$ROOT"

if bash scripts/python-chatvault.sh install >/dev/null; then
    eval "$(bash scripts/python-chatvault.sh env)"
else
    log "the Python chatvault could not be installed (see above): its comparisons are skipped"
fi

started_emulators=no
if ! bash scripts/emulators.sh status >/dev/null 2>&1; then
    bash scripts/emulators.sh start >&2
    started_emulators=yes
fi
stop() {
    if [[ $started_emulators == yes ]]; then
        bash scripts/emulators.sh stop >&2 || true
    fi
}
trap stop EXIT
eval "$(bash scripts/emulators.sh env)"

run() {
    local name=$1
    shift
    log "$name: $* (log: $LOGS/$name.log)"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$LOGS/$name.log"
    "$@" 2>&1 | tee -a "$LOGS/$name.log"
}

run memory cargo bench -p chatvault-memory --bench append
run dynamo cargo bench -p chatvault-aws --bench dynamo
run upload cargo bench -p chatvault-local --bench upload

echo
echo "==== ratios and targets (whole outputs in $LOGS) ===="
for name in memory dynamo upload; do
    echo "-- $name ($(head -n1 "$LOGS/$name.log"))"
    # Criterion redraws its progress with carriage returns: one line each.
    tr '\r' '\n' <"$LOGS/$name.log" |
        grep -E '[0-9]x\b|target|ratio|/median|skipped|^add_message\S* +time' |
        grep -vE '^\s*(Compiling|Running|Finished|Warming|Collecting|Analyzing)' || true
done

#!/usr/bin/env bash
# ChatVault's one test command: ./scripts/test.sh [extra cargo test args]
#
# Steps (each must pass):
#   1. cargo fmt --check
#   2. the servers the tests need, installed where missing and started on their own ports and
#      data directories: the AWS emulators (LocalStack S3 + DynamoDB Local,
#      scripts/emulators.sh), PostgreSQL (scripts/postgres.sh), Redis (a server and a
#      3-node cluster, scripts/redis.sh), headless Chromium (scripts/browser.sh), and the
#      official OpenAI Python clients in a virtual environment (scripts/openai-clients.sh).
#      They are stopped again when this script exits, pass or fail; one that cannot start
#      fails the command, saying which and why. Started before the builds: chatvault-aws,
#      chatvault-sql, chatvault-redis, chatvault-axum and the web example decide when they
#      are built whether their server tests run (without the server's endpoint, URL,
#      browser or clients they are compiled as ignored, with the reason;
#      CHATVAULT_REQUIRE_*=1 compiles them to run), so clippy and doc see the same code the
#      tests run.
#   3. cargo clippy (all targets, all features, -D warnings)
#   4. cargo doc (RUSTDOCFLAGS="-D warnings")
#   5. cargo build of every example, bench and binary
#   6. every feature on its own (scripts/features.sh): each published crate checked with each
#      of its features alone (`cargo check -p CRATE --no-default-features --features F`, only
#      that crate's dependencies resolved) and, for a library with features, its doctests
#      with the defaults (and with each feature alone when it has several), so that an app
#      enabling only the feature it needs builds, and every example says which it needs
#   7. packaging: scripts/msrv.sh --quick (no crate uses a language feature newer than its
#      rust-version), then `cargo package` of every published crate, verified (each packaged
#      crate is unpacked and built on its own, as the registry would), offline: crates of this
#      workspace that are not on the registry yet come from cargo's local overlay of the
#      packages just made, so this needs nothing published (this also builds every crate on
#      its own with its default features)
#   8. cargo test --workspace --all-features [args] with CHATVAULT_REQUIRE_AWS=1,
#      CHATVAULT_REQUIRE_POSTGRES=1, CHATVAULT_REQUIRE_REDIS=1, CHATVAULT_REQUIRE_BROWSER=1 and
#      CHATVAULT_REQUIRE_OPENAI_CLIENTS=1, so the server tests run and are never ignored: a
#      missing server fails them
#
# Extra arguments go to `cargo test`, e.g.
#   ./scripts/test.sh -p chatvault-core
#   ./scripts/test.sh -p chatvault-aws -- --nocapture
# (with -p/--package, --workspace is left out so that only those packages are tested).
#
# Environment:
#   CHATVAULT_SKIP_LINT=1   skip steps 1 and 3-7 (quick local iteration only; CI never sets it)
#   CHATVAULT_S3_PORT, CHATVAULT_DYNAMODB_PORT, CHATVAULT_EMULATORS_CACHE:
#                           see scripts/emulators.sh
#   CHATVAULT_PG_PORT, CHATVAULT_PG_DIR: see scripts/postgres.sh
#   CHATVAULT_REDIS_PORT, CHATVAULT_REDIS_DIR, CHATVAULT_REDIS_CLUSTER_PORT,
#   CHATVAULT_REDIS_CLUSTER_DIR: see scripts/redis.sh (a server and a 3-node cluster)
#   CHATVAULT_OPENAI_VENV:  see scripts/openai-clients.sh
#   CARGO_INCREMENTAL       defaults to 0 here (a one-shot build; see below)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# No incremental compilation: this command builds everything once, and the incremental
# caches would add gigabytes of disk that a one-shot run never reads back.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

STARTED_AT=$SECONDS
step() {
    echo
    echo "==> [$1] $2 ($((SECONDS - STARTED_AT)) s elapsed, $(free_disk) free on disk)"
}
# Free space where target/ lives (a full run needs about GB_NEEDED below).
free_disk() {
    df -h "$ROOT" 2>/dev/null | awk 'NR == 2 { print $4 }'
}

servers_up() {
    step 2/8 "servers: scripts/emulators.sh start (LocalStack S3, DynamoDB Local); scripts/postgres.sh start; scripts/redis.sh start; scripts/browser.sh install; scripts/openai-clients.sh install"
    trap 'echo; echo "==> stopping the servers"; bash "$ROOT/scripts/emulators.sh" stop || true; bash "$ROOT/scripts/postgres.sh" stop || true; bash "$ROOT/scripts/redis.sh" stop || true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if ! bash "$ROOT/scripts/emulators.sh" start; then
        echo "test.sh: the AWS emulators did not start (see above); the AWS tests cannot run." >&2
        exit 1
    fi
    eval "$(bash "$ROOT/scripts/emulators.sh" env)"
    if ! bash "$ROOT/scripts/postgres.sh" start; then
        echo "test.sh: PostgreSQL did not start (see above); the PostgreSQL tests cannot run." >&2
        exit 1
    fi
    eval "$(bash "$ROOT/scripts/postgres.sh" env)"
    if ! bash "$ROOT/scripts/redis.sh" start; then
        echo "test.sh: Redis did not start (see above); the Redis tests cannot run." >&2
        exit 1
    fi
    eval "$(bash "$ROOT/scripts/redis.sh" env)"
    if ! bash "$ROOT/scripts/browser.sh" install >/dev/null; then
        echo "test.sh: headless Chromium could not be installed (see above); the browser tests cannot run." >&2
        exit 1
    fi
    eval "$(bash "$ROOT/scripts/browser.sh" env)"
    if ! bash "$ROOT/scripts/openai-clients.sh" install >/dev/null; then
        echo "test.sh: the OpenAI Python clients could not be installed (see above); the OpenAI client tests cannot run." >&2
        exit 1
    fi
    eval "$(bash "$ROOT/scripts/openai-clients.sh" env)"
    export CHATVAULT_REQUIRE_AWS=1
    export CHATVAULT_POSTGRES_URL=$DATABASE_URL CHATVAULT_REQUIRE_POSTGRES=1
    export CHATVAULT_REDIS_URL CHATVAULT_REDIS_CLUSTER_URL CHATVAULT_REQUIRE_REDIS=1
    export CHATVAULT_REQUIRE_BROWSER=1
    export CHATVAULT_REQUIRE_OPENAI_CLIENTS=1
}

if [[ ${CHATVAULT_SKIP_LINT:-0} == 1 ]]; then
    echo "==> CHATVAULT_SKIP_LINT=1: skipping fmt, clippy, doc, example/bench builds, feature checks and packaging"
    servers_up
else
    step 1/8 "cargo fmt --all -- --check"
    cargo fmt --all -- --check

    servers_up

    step 3/8 "cargo clippy --workspace --all-targets --all-features -- -D warnings"
    cargo clippy --workspace --all-targets --all-features -- -D warnings

    step 4/8 'RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features'
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

    step 5/8 "cargo build --workspace --all-features --examples --benches --bins"
    cargo build --workspace --all-features --examples --benches --bins

    step 6/8 "scripts/features.sh: each published crate with each feature alone (check; doctests)"
    bash "$ROOT/scripts/features.sh"

    # Every package that is not `publish = false` (the examples and workspace-checks are),
    # as "name version".
    published=()
    mapfile -t published_ids < <(cargo metadata --no-deps --format-version 1 --offline | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] != []:
        print(p["name"], p["version"])')
    [[ ${#published_ids[@]} -gt 0 ]] || { echo "test.sh: found no published crate to package" >&2; exit 1; }
    for id in "${published_ids[@]}"; do published+=(-p "${id% *}"); done
    step 7/8 "scripts/msrv.sh --quick; cargo package --offline --allow-dirty ${published[*]}"
    bash "$ROOT/scripts/msrv.sh" --quick
    # Cargo treats a registry crate as immutable, and the local overlay that stands in for
    # the registry is one: with an unchanged version, it would reuse the copy of a workspace
    # crate extracted (into $CARGO_HOME/registry/src/-<hash>/, where local registries go)
    # and compiled by an earlier run, and verify the crates depending on it against that old
    # code. So both are dropped first: the extracted copies, and the compiled units of the
    # workspace crates in the packaging target dir (its own, so that this costs no rebuild
    # of the other steps' crates; the dependencies in it stay cached between runs).
    package_target=$ROOT/target/package-verify
    for id in "${published_ids[@]}"; do
        rm -rf "${CARGO_HOME:-$HOME/.cargo}/registry/src/"-*/"${id% *}-${id#* }" \
            "$package_target"/debug/.fingerprint/"${id% *}"-*
    done
    # Verified (no --no-verify). --allow-dirty: the check is whether the crates package and
    # build, not whether the tree is committed.
    cargo package --offline --allow-dirty --target-dir "$package_target" "${published[@]}"
fi

# -p/--package selects packages; cargo ignores it when --workspace is also given.
workspace_flag=(--workspace)
for arg in "$@"; do
    [[ $arg == -- ]] && break
    case $arg in
    -p | -p* | --package | --package=*) workspace_flag=() ;;
    esac
done

step 8/8 "$(echo cargo test "${workspace_flag[@]}" --all-features "$@")"
echo "    AWS_ENDPOINT_URL_S3=$AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB CHATVAULT_POSTGRES_URL=$CHATVAULT_POSTGRES_URL CHATVAULT_REDIS_URL=$CHATVAULT_REDIS_URL"
echo "    CHATVAULT_REDIS_CLUSTER_URL=$CHATVAULT_REDIS_CLUSTER_URL"
echo "    CHATVAULT_REQUIRE_AWS=1 CHATVAULT_REQUIRE_POSTGRES=1 CHATVAULT_REQUIRE_REDIS=1 CHATVAULT_REQUIRE_BROWSER=1 CHATVAULT_REQUIRE_OPENAI_CLIENTS=1"
echo "    CHATVAULT_OPENAI_PYTHON=$CHATVAULT_OPENAI_PYTHON"
cargo test "${workspace_flag[@]}" --all-features "$@"

echo
if [[ ${CHATVAULT_SKIP_LINT:-0} == 1 ]]; then
    echo "==> test.sh: all tests passed (lint steps skipped: CHATVAULT_SKIP_LINT=1) in $((SECONDS - STARTED_AT)) s"
else
    echo "==> test.sh: fmt, clippy, doc, builds, features, packaging and all tests passed in $((SECONDS - STARTED_AT)) s"
fi

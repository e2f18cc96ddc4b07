#!/usr/bin/env bash
# ChatVault's one test command: ./scripts/test.sh [extra cargo test args]
#
# Steps (each must pass):
#   1. cargo fmt --check
#   2. cargo clippy (all targets, all features, -D warnings)
#   3. cargo doc (RUSTDOCFLAGS="-D warnings")
#   4. cargo build of every example, bench and binary
#   5. start the AWS emulators (LocalStack S3 + DynamoDB Local, see scripts/emulators.sh);
#      they are stopped again when this script exits, pass or fail
#   6. cargo test --workspace --all-features [args] with CHATVAULT_REQUIRE_AWS=1, so the
#      AWS tests run against the emulators and are never skipped
#
# Extra arguments go to `cargo test`, e.g.
#   ./scripts/test.sh -p chatvault-core
#   ./scripts/test.sh -p chatvault-aws -- --nocapture
# (with -p/--package, --workspace is left out so that only those packages are tested).
#
# Environment:
#   CHATVAULT_SKIP_LINT=1   skip steps 1-4 (quick local iteration only; CI never sets it)
#   CHATVAULT_S3_PORT, CHATVAULT_DYNAMODB_PORT, CHATVAULT_EMULATORS_CACHE:
#                           see scripts/emulators.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STARTED_AT=$SECONDS
step() {
    echo
    echo "==> [$1] $2 ($((SECONDS - STARTED_AT)) s elapsed)"
}

if [[ ${CHATVAULT_SKIP_LINT:-0} == 1 ]]; then
    echo "==> CHATVAULT_SKIP_LINT=1: skipping fmt, clippy, doc and example/bench builds"
else
    step 1/6 "cargo fmt --all -- --check"
    cargo fmt --all -- --check

    step 2/6 "cargo clippy --workspace --all-targets --all-features -- -D warnings"
    cargo clippy --workspace --all-targets --all-features -- -D warnings

    step 3/6 'RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features'
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

    step 4/6 "cargo build --workspace --all-features --examples --benches --bins"
    cargo build --workspace --all-features --examples --benches --bins
fi

step 5/6 "scripts/emulators.sh start (LocalStack S3, DynamoDB Local)"
trap 'echo; echo "==> scripts/emulators.sh stop"; bash "$ROOT/scripts/emulators.sh" stop || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if ! bash "$ROOT/scripts/emulators.sh" start; then
    echo "test.sh: the AWS emulators did not start (see above); the AWS tests cannot run." >&2
    exit 1
fi
eval "$(bash "$ROOT/scripts/emulators.sh" env)"
export CHATVAULT_REQUIRE_AWS=1

# -p/--package selects packages; cargo ignores it when --workspace is also given.
workspace_flag=(--workspace)
for arg in "$@"; do
    [[ $arg == -- ]] && break
    case $arg in
    -p | -p* | --package | --package=*) workspace_flag=() ;;
    esac
done

step 6/6 "$(echo cargo test "${workspace_flag[@]}" --all-features "$@")"
echo "    AWS_ENDPOINT_URL_S3=$AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB CHATVAULT_REQUIRE_AWS=1"
cargo test "${workspace_flag[@]}" --all-features "$@"

echo
if [[ ${CHATVAULT_SKIP_LINT:-0} == 1 ]]; then
    echo "==> test.sh: all tests passed (lint steps skipped: CHATVAULT_SKIP_LINT=1) in $((SECONDS - STARTED_AT)) s"
else
    echo "==> test.sh: fmt, clippy, doc, builds and all tests passed in $((SECONDS - STARTED_AT)) s"
fi

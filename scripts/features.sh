#!/usr/bin/env bash
# Every published crate with each of its features on its own: what an app gets when it turns
# on only the feature it needs (`chatvault-sql` with `features = ["sqlite"]`).
#
#   ./scripts/features.sh [CRATE ...]
#
# For every workspace package that is not `publish = false` (or each CRATE given):
#   1. `cargo check -p CRATE --no-default-features --features F` for each feature F alone,
#      and `cargo check -p CRATE --no-default-features` when the crate has default features.
#      With `-p` alone cargo resolves only that crate's dependencies, and (resolver 3)
#      dev-dependencies turn on no feature of a build that is not a test: a feature that
#      compiles only because another workspace member, a dev-dependency or another feature
#      turns something on fails here. This is `cargo hack --each-feature --no-dev-deps check`
#      without cargo-hack, whose --no-dev-deps rewrites every Cargo.toml of the working tree
#      while it runs.
#   2. For a library with features, its doctests (the README included as its crate docs, and
#      every doc comment) with the defaults and, when it has more than one feature, with each
#      feature alone: `cargo test -p CRATE --doc --no-default-features --features F` (the
#      test step runs them with all features). An example that needs a feature must say so
#      (`#[cfg(feature = "..")]` in the example) to pass.
# The defaults of every crate on its own are built by test.sh's packaging step (the verified
# `cargo package` builds each crate alone with its default features), so they are not
# repeated here.
#
# It shares target/ with test.sh's other steps: cargo keys every compiled unit by its features,
# so these builds sit next to the --all-features ones and neither rebuilds the other (a
# separate target dir would only compile every shared dependency a second time).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# One cargo command per line: "check -p CRATE FLAGS..." and "test -p CRATE --doc FLAGS...".
plan=$(cargo metadata --no-deps --format-version 1 --offline | python3 -c '
import json, sys
only = set(sys.argv[1:])
packages = [p for p in json.load(sys.stdin)["packages"] if p["publish"] != []]
unknown = only - {p["name"] for p in packages}
if unknown:
    sys.exit("features.sh: not a published crate of this workspace: " + ", ".join(sorted(unknown)))
for p in packages:
    if only and p["name"] not in only:
        continue
    features = p["features"]
    default = sorted(features.get("default", []))
    named = sorted(f for f in features if f != "default")
    # A feature alone is the defaults when the defaults are that one feature.
    alone = [["--no-default-features", "--features", f] for f in named if [f] != default]
    for flags in ([["--no-default-features"]] if default else []) + alone:
        print(" ".join(["check", "-p", p["name"], *flags]))
    # Doctests are a library'"'"'s (a binary-only crate has none). test.sh'"'"'s test step runs
    # them with every feature: here with the defaults, and with each feature alone unless
    # that is every feature.
    has_lib = any("lib" in t["kind"] or "proc-macro" in t["kind"] for t in p["targets"])
    if has_lib and named:
        doc_runs = ([] if sorted(default) == named else [[]]) + (alone if len(named) > 1 else [])
        for flags in doc_runs:
            print(" ".join(["test", "-p", p["name"], "--doc", *flags]))
' "$@")
runs=()
[[ -z $plan ]] || mapfile -t runs <<<"$plan"

started=$SECONDS
for run in "${runs[@]}"; do
    read -r -a args <<<"$run"
    echo "features.sh: cargo ${args[*]}"
    if ! cargo "${args[@]}"; then
        echo "features.sh: failed: cargo ${args[*]}" >&2
        exit 1
    fi
done
echo "features.sh: ${#runs[@]} builds passed in $((SECONDS - started)) s"

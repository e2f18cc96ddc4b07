#!/usr/bin/env bash
# Checks that each published crate builds with the Rust version its Cargo.toml declares
# (`rust-version`), using only the one toolchain installed here:
#
#   ./scripts/msrv.sh [--at VERSION] [--quick] [CRATE ...]
#
# Without CRATE: every workspace package that is not `publish = false`.
# With --at VERSION: check VERSION instead of the declared rust-version (to find out whether a
# crate would also build with an older toolchain; the expected answer for a version below the
# crate's MSRV is a failure that names the reason).
# With --quick: step 1 only (no network, no build; the test command runs this, and its clippy
# step covers the std part of step 3 on the workspace's own dependency versions).
#
# For each crate, with R the version under test, three things must hold:
#   1. Language: edition 2024 needs 1.85; let chains (`if a && let Some(x) = b`) need 1.88.
#      The crate's src/ is searched for let chains when R < 1.88. The workspace crates it
#      depends on must declare a rust-version <= R.
#   2. Dependencies: in a scratch copy of the workspace (target/msrv/ws) every member's
#      rust-version is set to R and a fresh lockfile is resolved with cargo's Rust-version-aware
#      resolver (incompatible-rust-versions = "fallback", the default for edition 2024 users).
#      Every package in the crate's normal/build dependency closure (all features, this host)
#      must then declare a rust-version <= R.
#   3. Code against those dependencies and R's standard library: `cargo clippy --lib
#      --all-features -- -D clippy::incompatible_msrv` in the scratch copy compiles the crate
#      against the older dependency versions chosen in step 2, and clippy fails on any standard
#      library item stabilised after R.
# What this cannot see: a language feature other than let chains stabilised after R (none other
# is used today; see CHANGELOG.md, "Minimum supported Rust versions"), and compiler bugs of
# older toolchains (there is no older toolchain here to run).
#
# Needs the crates.io index (to resolve the older versions), so it is not part of test.sh.
# Tests, benches and examples are outside the MSRV promise (their dev-dependencies, e.g.
# proptest, may need newer toolchains).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SCRATCH=$ROOT/target/msrv
WS=$SCRATCH/ws

die() { echo "msrv.sh: $*" >&2; exit 1; }

at=
quick=0
crates=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --at) [[ $# -ge 2 ]] || die "--at needs a version, e.g. --at 1.85"; at=$2; shift 2 ;;
    --at=*) at=${1#--at=}; shift ;;
    --quick) quick=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) crates+=("$1"); shift ;;
    esac
done

command -v python3 >/dev/null || die "python3 is needed to read cargo metadata"

metadata=$(cargo metadata --no-deps --format-version 1) || die "cargo metadata failed in $ROOT"
if [[ ${#crates[@]} -eq 0 ]]; then
    mapfile -t crates < <(python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] != []:
        print(p["name"])' <<<"$metadata")
fi

host=$(rustc -vV | sed -n 's/^host: //p')
echo "==> $(cargo --version); host $host"

# ver_le A B: true when version A <= version B (numeric, 1.85 == 1.85.0).
ver_le() {
    python3 - "$1" "$2" <<'EOF'
import sys
def key(v): return [int(x) for x in (v.split(".") + ["0", "0"])[:3]]
sys.exit(0 if key(sys.argv[1]) <= key(sys.argv[2]) else 1)
EOF
}

# find_let_chains DIR: print file:line of each let chain in DIR's .rs files (exit 1 if none):
# `&& let` anywhere, or `if let`/`while let` whose condition has `&&` outside parentheses
# before the block's `{` (a condition cannot hold a struct literal outside parentheses).
# Comments and string literals are blanked first.
find_let_chains() {
    python3 - "$1" <<'EOF'
import pathlib, re, sys
found = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.rs")):
    source = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"',
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), source, flags=re.S)
    hits = set()
    for m in re.finditer(r"&&\s*let\b", text):
        hits.add(text.count("\n", 0, m.start()) + 1)
    for m in re.finditer(r"\b(?:if|while)\s+let\b", text):
        depth, i = 0, m.end()
        while i < len(text):
            c = text[i]
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif c in "{;" and depth == 0:
                break
            elif text.startswith("&&", i) and depth == 0:
                hits.add(text.count("\n", 0, m.start()) + 1)
                break
            i += 1
    lines = source.split("\n")
    for n in sorted(hits):
        found.append(f"{path}:{n}: {lines[n - 1].strip()}")
print("\n".join(found))
sys.exit(0 if found else 1)
EOF
}

failed=()
for crate in "${crates[@]}"; do
    read -r manifest declared < <(python3 -c '
import json, sys
name = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == name:
        print(p["manifest_path"], p["rust_version"] or "none")
        break
else:
    sys.exit("no workspace package named " + name)' "$crate" <<<"$metadata") || die "no workspace package $crate"
    dir=$(dirname "$manifest")
    rv=${at:-$declared}
    [[ $rv != none ]] || die "$crate declares no rust-version (and no --at given)"
    echo
    echo "==> $crate: checking rust-version $rv (declared: $declared)"
    problems=()

    # 1. Language features.
    ver_le 1.85 "$rv" || problems+=("edition 2024 needs Rust 1.85")
    if ! ver_le 1.88 "$rv"; then
        if chains=$(find_let_chains "$dir/src"); then
            problems+=("let chains need Rust 1.88: $(echo "$chains" | head -3 | sed "s|$ROOT/||" | tr '\n' ' ')")
        fi
    fi

    # A workspace crate it depends on (normal or build, directly or not) must not need more.
    while IFS= read -r line; do
        [[ -n $line ]] && problems+=("$line")
    done < <(python3 -c '
import json, sys
crate, rv = sys.argv[1], sys.argv[2]
def key(v): return [int(x) for x in (v.split(".") + ["0", "0"])[:3]]
by_name = {p["name"]: p for p in json.load(sys.stdin)["packages"]}
seen, todo = set(), [crate]
while todo:
    for d in by_name[todo.pop()]["dependencies"]:
        if d["kind"] != "dev" and d["name"] in by_name and d["name"] not in seen:
            seen.add(d["name"])
            todo.append(d["name"])
for name in sorted(seen):
    v = by_name[name]["rust_version"]
    if v and key(v) > key(rv):
        print("workspace dependency %s declares rust-version %s" % (name, v))
' "$crate" "$rv" <<<"$metadata")

    # 2. Dependencies resolved for R.
    if [[ $quick == 1 ]]; then
        :
    else
    rm -rf "$WS"
    mkdir -p "$WS"
    git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$WS"
    while IFS= read -r -d '' toml; do
        sed -i -E "s/^rust-version(\.workspace)?[[:space:]]*=.*/rust-version = \"$rv\"/" "$toml"
    done < <(find "$WS" -name Cargo.toml -print0)
    rm -f "$WS/Cargo.lock"
    if ! (cd "$WS" && CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo generate-lockfile -q); then
        problems+=("no lockfile could be resolved for rust-version $rv")
    else
        deps_report=$(cd "$WS" && cargo metadata --format-version 1 --all-features --filter-platform "$host" |
            python3 -c '
import json, sys
crate, rv = sys.argv[1], sys.argv[2]
def key(v): return [int(x) for x in (v.split(".") + ["0", "0"])[:3]]
meta = json.load(sys.stdin)
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(i for i, p in pkgs.items() if p["name"] == crate and p["source"] is None)
seen, todo = set(), [root]
while todo:
    n = todo.pop()
    if n in seen:
        continue
    seen.add(n)
    for d in nodes[n]["deps"]:
        if any(k["kind"] in (None, "build") for k in d["dep_kinds"]):
            todo.append(d["pkg"])
seen.discard(root)
newest, too_new = None, []
for i in seen:
    if pkgs[i]["source"] is None:
        continue  # a workspace member: its rust-version is R by construction
    p = pkgs[i]
    v = p.get("rust_version")
    if v and (newest is None or key(v) > key(newest[0])):
        newest = (v, p["name"] + " " + p["version"])
    if v and key(v) > key(rv):
        too_new.append(p["name"] + " " + p["version"] + " needs " + v)
print("deps: %d packages; newest requirement: %s" % (len(seen), "%s (%s)" % newest if newest else "none declared"))
for t in sorted(too_new):
    print("TOO NEW: " + t)
' "$crate" "$rv") || deps_report="TOO NEW: cargo metadata failed in the scratch copy"
        echo "    $deps_report" | sed '2,$s/^/    /'
        while IFS= read -r line; do
            [[ $line == "TOO NEW: "* ]] && problems+=("dependency ${line#TOO NEW: }")
        done <<<"$deps_report"
        # The dependency versions this crate would get on R, for the record.
        (cd "$WS" && cargo tree -p "$crate" --all-features -e normal --depth 1 --prefix none 2>/dev/null |
            tail -n +2 | sort -u | tr '\n' ',' | sed 's/,$//; s/,/, /g; s/^/    direct dependencies on '"$rv"': /'; echo)

        # 3. Compile against those versions; std items newer than R fail clippy.
        echo "    cargo clippy -p $crate --lib --all-features -- -D clippy::incompatible_msrv (scratch copy)"
        if ! (cd "$WS" && CARGO_TARGET_DIR=$SCRATCH/target cargo clippy -q -p "$crate" --lib --all-features \
            -- -D clippy::incompatible_msrv); then
            problems+=("does not build against the dependencies resolved for $rv, or uses std items newer than $rv (clippy output above)")
        fi
    fi
    fi

    if [[ ${#problems[@]} -eq 0 && $quick == 1 ]]; then
        echo "==> $crate: no language feature newer than rust-version $rv (--quick: dependencies not resolved)"
    elif [[ ${#problems[@]} -eq 0 ]]; then
        echo "==> $crate: builds with rust-version $rv"
    else
        echo "==> $crate: NOT buildable with rust-version $rv:"
        printf '      - %s\n' "${problems[@]}"
        failed+=("$crate")
    fi
done

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "msrv.sh: failed for: ${failed[*]}" >&2
    exit 1
fi
if [[ $quick == 1 ]]; then
    echo "msrv.sh --quick: no crate uses a language feature newer than ${at:-its declared rust-version}"
else
    echo "msrv.sh: every checked crate builds with ${at:-its declared rust-version}"
fi

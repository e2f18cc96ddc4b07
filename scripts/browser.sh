#!/usr/bin/env bash
# Headless Chromium for ChatVault's browser tests, from the machine's own packages (Debian's
# `chromium` and `chromium-driver`). No downloads outside the package manager.
#
# Usage: scripts/browser.sh install|path|env|screenshot URL OUT.png
#
#   install     install Debian's chromium and chromium-driver when missing (apt-get update, then
#               apt-get install; needs root); idempotent; prints the browser's path on stdout
#   path        print the browser's path; exit 1 when it is not installed
#   env         print `export CHROMIUM=... CHROMEDRIVER=...`: eval "$(scripts/browser.sh env)"
#   screenshot  headless screenshot of URL into OUT.png (a quick check that the browser works)
#
# Environment:
#   CHATVAULT_BROWSER_SIZE  window size for `screenshot` (default 1024,768)
#
# Chromium's sandbox cannot run as root; as root, pass --no-sandbox (tests: the same).
set -euo pipefail

log() { echo "browser.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# The browser binary: Debian installs /usr/bin/chromium; other names for other distributions.
find_browser() {
    local c
    for c in chromium chromium-browser google-chrome-stable google-chrome; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

find_driver() { command -v chromedriver 2>/dev/null; }

cmd_install() {
    local missing=()
    find_browser >/dev/null || missing+=(chromium)
    find_driver >/dev/null || missing+=(chromium-driver)
    if [[ ${#missing[@]} -gt 0 ]]; then
        [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; installing needs root: run 'apt-get install ${missing[*]}' as root"
        command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available: install Chromium and chromedriver yourself"
        log "installing Debian's ${missing[*]} (apt-get update && apt-get install)"
        apt-get update -q >&2 || die "apt-get update failed (see above); cannot install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed (see above)"
    fi
    local browser driver
    browser=$(find_browser) || die "chromium was installed but no chromium binary is on PATH"
    driver=$(find_driver) || die "chromium-driver was installed but no chromedriver is on PATH"
    log "$("$browser" --version 2>/dev/null | tail -n 1) at $browser; chromedriver at $driver"
    echo "$browser"
}

cmd_path() {
    find_browser || die "Chromium is not installed: run scripts/browser.sh install"
}

cmd_env() {
    local browser driver
    browser=$(find_browser) || die "Chromium is not installed: run scripts/browser.sh install"
    echo "export CHROMIUM=$browser"
    if driver=$(find_driver); then
        echo "export CHROMEDRIVER=$driver"
    fi
}

cmd_screenshot() {
    [[ $# -eq 2 ]] || die "usage: scripts/browser.sh screenshot URL OUT.png"
    local url=$1 out=$2 browser
    # Global, not local: the EXIT trap runs after this function has returned.
    profile=
    browser=$(find_browser) || die "Chromium is not installed: run scripts/browser.sh install"
    case $out in /*) ;; *) out=$PWD/$out ;; esac
    profile=$(mktemp -d "${TMPDIR:-/tmp}/chatvault-chromium.XXXXXX")
    trap 'rm -rf "$profile"' EXIT
    rm -f "$out"
    local sandbox=()
    [[ $(id -u) != 0 ]] || sandbox=(--no-sandbox)
    if ! "$browser" --headless "${sandbox[@]}" --disable-gpu --no-first-run --user-data-dir="$profile" \
        --window-size="${CHATVAULT_BROWSER_SIZE:-1024,768}" --screenshot="$out" "$url" >"$profile/out.log" 2>&1; then
        grep -v -e 'dbus/' -e 'unexpected operator' "$profile/out.log" | sed 's/^/    /' >&2 || true
        die "chromium failed to take a screenshot of $url (output above)"
    fi
    [[ -s $out ]] || {
        grep -v -e 'dbus/' -e 'unexpected operator' "$profile/out.log" | sed 's/^/    /' >&2 || true
        die "chromium exited without writing $out"
    }
    log "wrote $out"
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

case ${1:-} in
install) cmd_install ;;
path) cmd_path ;;
env) cmd_env ;;
screenshot)
    shift
    cmd_screenshot "$@"
    ;;
*) usage ;;
esac

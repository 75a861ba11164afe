#!/usr/bin/env bash
# Install the pinned opencode (npm package opencode-ai) into a cache folder for the end-to-end tests.
#
# Idempotent: when the cache already holds a binary that reports the pinned version, nothing is downloaded.
# Progress goes to stderr; the last line on stdout is the absolute path of a working `opencode` binary.
#
#   ITERATR_OPENCODE_CACHE   cache folder (default: $HOME/.cache/iteratr-test/opencode)
#   ITERATR_OPENCODE_VERSION version to install (default: the pinned one below)
#
# opencode-ai's postinstall script links the platform binary (from an optional dependency such as
# opencode-linux-x64) to bin/opencode.exe. npm may skip install scripts (ignore-scripts, CI policies), so when
# the installed binary does not run we run that postinstall ourselves, and as a last resort use the platform
# package's binary directly.
set -euo pipefail

VERSION="${ITERATR_OPENCODE_VERSION:-1.18.33}"
CACHE="${ITERATR_OPENCODE_CACHE:-${HOME:?HOME is not set}/.cache/iteratr-test/opencode}"

log() { printf 'install-opencode: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the version a candidate binary reports, or nothing when it does not run.
binary_version() {
    local bin="$1"
    [ -x "$bin" ] || return 0
    "$bin" --version </dev/null 2>/dev/null | tail -n 1 | tr -d '[:space:]' || true
}

# Prints the first binary in the cache that runs and reports $VERSION. With "main", only the binary npm
# links into node_modules/.bin is considered; otherwise the platform packages' binaries too.
find_working_binary() {
    local candidate candidates=("$CACHE/node_modules/.bin/opencode")
    if [ "${1:-}" != main ]; then
        candidates+=("$CACHE"/node_modules/opencode-*/bin/opencode)
    fi
    for candidate in "${candidates[@]}"; do
        if [ "$(binary_version "$candidate")" = "$VERSION" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

if found="$(find_working_binary)"; then
    log "opencode $VERSION already installed in $CACHE"
    printf '%s\n' "$found"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is not on PATH; install Node.js (>= 18) and npm, then rerun"
command -v node >/dev/null 2>&1 || die "node is not on PATH; install Node.js (>= 18), then rerun"

mkdir -p "$CACHE" || die "cannot create the cache folder $CACHE"
CACHE="$(cd "$CACHE" && pwd)"
# A package.json of our own keeps npm from walking up to some enclosing project, and pins the version.
printf '{"name": "iteratr-test-opencode", "private": true, "dependencies": {"opencode-ai": "%s"}}\n' "$VERSION" \
    >"$CACHE/package.json"

log "installing opencode-ai@$VERSION into $CACHE"
if ! (cd "$CACHE" && CI=true npm install --no-audit --no-fund --no-save --no-progress --loglevel=error \
        "opencode-ai@$VERSION" </dev/null >&2); then
    die "npm install opencode-ai@$VERSION failed (network? registry? see npm's output above)"
fi

if ! found="$(find_working_binary main)"; then
    postinstall="$CACHE/node_modules/opencode-ai/postinstall.mjs"
    if [ -f "$postinstall" ]; then
        log "the installed binary does not run; running opencode-ai's postinstall script"
        (cd "$CACHE/node_modules/opencode-ai" && node ./postinstall.mjs </dev/null >&2) \
            || log "postinstall failed; looking for a platform binary directly"
    fi
    found="$(find_working_binary)" \
        || die "opencode-ai@$VERSION was installed in $CACHE but no binary there runs and reports $VERSION"
fi

log "opencode $VERSION ready"
printf '%s\n' "$found"

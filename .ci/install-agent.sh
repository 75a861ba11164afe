#!/usr/bin/env bash
# Install one pinned ACP agent from npm into a cache folder, for the end-to-end tests of iteratr's agent presets.
#
#   .ci/install-agent.sh NAME PACKAGE VERSION PROGRAM
#   e.g. .ci/install-agent.sh claude @zed-industries/claude-code-acp 0.16.2 claude-code-acp
#
# Idempotent: when the cache already holds PACKAGE at VERSION with its PROGRAM, nothing is downloaded.
# Progress goes to stderr; the last line on stdout is the absolute path of the folder holding PROGRAM
# (node_modules/.bin), to put first on PATH so that the preset finds it by name.
#
#   ITERATR_AGENT_CACHE   the caches' parent folder (default: $HOME/.cache/iteratr-test); NAME is a folder in it
#
# opencode has its own script (install-opencode.sh): its package links a platform binary in a postinstall step.
set -euo pipefail

[ "$#" -eq 4 ] || { echo "usage: $0 NAME PACKAGE VERSION PROGRAM" >&2; exit 2; }
NAME="$1" PACKAGE="$2" VERSION="$3" PROGRAM="$4"
CACHE="${ITERATR_AGENT_CACHE:-${HOME:?HOME is not set}/.cache/iteratr-test}/$NAME"

log() { printf 'install-agent %s: %s\n' "$NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The version npm installed, from the package's own package.json; nothing when it is not there.
installed_version() {
    local manifest="$CACHE/node_modules/$PACKAGE/package.json"
    [ -f "$manifest" ] || return 0
    node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$manifest" 2>/dev/null || true
}

ready() { [ "$(installed_version)" = "$VERSION" ] && [ -x "$CACHE/node_modules/.bin/$PROGRAM" ]; }

command -v node >/dev/null 2>&1 || die "node is not on PATH; install Node.js (>= 20), then rerun"

if ready; then
    log "$PACKAGE@$VERSION already installed in $CACHE"
    printf '%s\n' "$CACHE/node_modules/.bin"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is not on PATH; install Node.js (>= 20) and npm, then rerun"
mkdir -p "$CACHE" || die "cannot create the cache folder $CACHE"
CACHE="$(cd "$CACHE" && pwd)"
# A package.json of our own keeps npm from walking up to some enclosing project, and pins the version.
printf '{"name": "iteratr-test-%s", "private": true, "dependencies": {"%s": "%s"}}\n' "$NAME" "$PACKAGE" "$VERSION" \
    >"$CACHE/package.json"

log "installing $PACKAGE@$VERSION into $CACHE"
if ! (cd "$CACHE" && CI=true npm install --no-audit --no-fund --no-save --no-progress --loglevel=error \
        "$PACKAGE@$VERSION" </dev/null >&2); then
    die "npm install $PACKAGE@$VERSION failed (network? registry? see npm's output above)"
fi
ready || die "$PACKAGE@$VERSION was installed in $CACHE but node_modules/.bin/$PROGRAM is not there"
log "$PACKAGE $VERSION ready"
printf '%s\n' "$CACHE/node_modules/.bin"

#!/usr/bin/env bash
# avsc (npm) side of the avro-rpc interop proof (see js/README.md).
#
#   run-js.sh                 install avsc if needed (npm ci), print the path of interop.js
#   run-js.sh server ARGS..   install if needed, exec node interop.js server ARGS
#   run-js.sh client ARGS..   install if needed, exec node interop.js client ARGS
#
# `npm ci` installs exactly js/package-lock.json into js/node_modules, and
# runs only when the lockfile changed since the last install (its SHA-256 is
# kept in node_modules/.lock.sha256); concurrent callers are serialised with
# flock. Progress goes to stderr. Exit 127 if node or npm is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JS="$HERE/js"

log() { echo "run-js: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "$1 not found on PATH"; exit 127; }; }

installed() {
  [ -f "$JS/node_modules/.lock.sha256" ] && [ -f "$JS/node_modules/avsc/package.json" ] &&
    [ "$(cat "$JS/node_modules/.lock.sha256")" = "$1" ]
}

install() {
  need node
  local sum
  sum="$(sha256sum "$JS/package-lock.json" | cut -d' ' -f1)"
  installed "$sum" && return 0
  need npm
  exec 9>"$JS/.install.lock"
  flock 9
  if ! installed "$sum"; then
    log "installing avsc (npm ci)"
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$sum" >"$JS/node_modules/.lock.sha256"
  fi
  exec 9>&-
}

install
case "${1:-path}" in
  path) echo "$JS/interop.js" ;;
  server|client) exec node "$JS/interop.js" "$@" ;;
  *) log "usage: run-js.sh [path|server ARGS..|client ARGS..]"; exit 2 ;;
esac

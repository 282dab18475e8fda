#!/usr/bin/env bash
# Python `avro` (PyPI) side of the avro-rpc interop proof (see python/README.md).
#
#   run-python.sh              create/refresh the venv if needed, print its python (one line)
#   run-python.sh client ARGS  the same, then exec python interop_client.py ARGS
#
# The venv lives in ${CINEREC_PY_VENV:-$HOME/.cache/cinerec/venv-avro-py} and is
# (re)installed with `pip install -r python/requirements.txt` only when that
# file changed since the last install (its SHA-256 is kept in the venv);
# concurrent callers are serialised with flock. Progress goes to stderr.
# Exit 127 if python3 (with the venv module) is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$HERE/python"
VENV="${CINEREC_PY_VENV:-$HOME/.cache/cinerec/venv-avro-py}"

log() { echo "run-python: $*" >&2; }

command -v python3 >/dev/null 2>&1 || { log "python3 not found on PATH"; exit 127; }

sum="$(sha256sum "$PY/requirements.txt" | cut -d' ' -f1)"
installed() { [ -x "$VENV/bin/python" ] && [ -f "$VENV/.requirements.sha256" ] && [ "$(cat "$VENV/.requirements.sha256")" = "$sum" ]; }

if ! installed; then
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  if ! installed; then
    if [ ! -x "$VENV/bin/python" ]; then
      log "creating $VENV"
      python3 -m venv "$VENV" >&2 || { log "python3 cannot create a venv (install python3-venv)"; exit 127; }
    fi
    log "pip install -r requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$PY/requirements.txt" >&2
    echo "$sum" >"$VENV/.requirements.sha256"
  fi
  exec 9>&-
fi

case "${1:-python}" in
  python) echo "$VENV/bin/python" ;;
  client) shift; exec "$VENV/bin/python" "$PY/interop_client.py" "$@" ;;
  *) log "usage: run-python.sh [python|client ARGS..]"; exit 2 ;;
esac

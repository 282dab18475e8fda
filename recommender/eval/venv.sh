#!/usr/bin/env bash
# Creates (once) the Python venv the `recommender evaluate` peer runs in, with
# the `implicit` package from PyPI, and prints the venv's python path.
# Idempotent: a venv whose `import implicit` works is reused as it is.
# Override the location with CINEREC_IMPLICIT_VENV.
set -euo pipefail
venv="${CINEREC_IMPLICIT_VENV:-$HOME/.cache/cinerec/venv-implicit}"
# Pinned so every run scores the same peer.
implicit_version="${CINEREC_IMPLICIT_VERSION:-0.7.2}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import implicit, numpy, scipy' 2>/dev/null; then
    echo "$py"
    exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian splits venv/ensurepip out of python3.
    if command -v apt-get >/dev/null; then
        apt-get install -y python3-venv >&2 || { apt-get update >&2 && apt-get install -y python3-venv >&2; }
    fi
fi
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2
"$py" -m pip install --quiet --upgrade pip >&2
"$py" -m pip install --quiet "implicit==$implicit_version" numpy scipy >&2
"$py" -c 'import implicit, numpy, scipy' >&2
echo "$py"

#!/usr/bin/env bash
# Installs everything the demo and the tests need, idempotently and cached:
#   - the Python virtualenv (.venv), rebuilt when pyproject.toml changes;
#   - the test control plane binary (tests/cluster/kcp), rebuilt when its Go sources change.
# Safe to run on a fresh machine and cheap to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

python=${PYTHON:-python3}
stamp=.venv/.pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating Python virtualenv in .venv"
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[dev,claude]'
  echo "$want" > "$stamp"
fi

tests/cluster/build.sh >/dev/null

#!/usr/bin/env bash
# Installs everything the demo and the tests need, idempotently and cached:
#   - the Python virtualenv (.venv), rebuilt when pyproject.toml changes;
#   - the Node tooling for convex/ (node_modules), reinstalled when package-lock.json changes;
#   - the machine packages of the tier-2 node (scripts/bootstrap-host.sh), when missing;
#   - the test control plane and node binary (tests/cluster/kcp), rebuilt when its Go sources change;
#   - CoreDNS and kube-router of the tier-2 node (tests/cluster/gobuild.sh), cached the same way.
# Safe to run on a fresh machine and cheap to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

python=${PYTHON:-python3}
stamp=.venv/.pyproject.sha256
# Only what is installed matters: lint or test settings must not rebuild the venv.
want=$("$python" -c 'import tomllib, json; d = tomllib.load(open("pyproject.toml", "rb")); p = d["project"]; print(json.dumps([p["dependencies"], p.get("optional-dependencies"), p.get("scripts"), d["tool"]["setuptools"]], sort_keys=True))' | sha256sum | cut -d" " -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating Python virtualenv in .venv"
  rm -rf .venv
  "$python" -m venv .venv
  pip_log=$(mktemp)
  if ! { .venv/bin/pip install --quiet --upgrade pip &&
         .venv/bin/pip install --quiet -e '.[dev,claude]'; } >"$pip_log" 2>&1; then
    cat "$pip_log" >&2
    rm -f "$pip_log" .venv/bin/python
    exit 1
  fi
  rm -f "$pip_log"
  echo "$want" > "$stamp"
fi

scripts/bootstrap-node.sh
scripts/bootstrap-host.sh
tests/cluster/build.sh >/dev/null
tests/cluster/helm/build.sh >/dev/null
tests/cluster/gobuild.sh coredns . >/dev/null
tests/cluster/gobuild.sh kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router >/dev/null

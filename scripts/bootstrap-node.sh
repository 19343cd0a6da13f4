#!/usr/bin/env bash
# Installs the Node tooling pinned by package-lock.json (convex, convex-test,
# vitest, vite-node, typescript) into node_modules with `npm ci`, only when
# node_modules is missing or package-lock.json changed since the last install.
# Quiet unless the install fails; cheap to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
echo "$want" > "$stamp"

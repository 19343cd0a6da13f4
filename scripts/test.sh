#!/usr/bin/env bash
# The one test command: static checks, then every test suite.
# Usage: scripts/test.sh [extra pytest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n== %s\n' "$*"; }

step "bootstrap (venv, node_modules, control-plane binary; cached)"
start=$(date +%s)
scripts/bootstrap.sh
printf 'bootstrap took %ss\n' "$(( $(date +%s) - start ))"

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "mypy --strict"
.venv/bin/mypy

step "tsc"
npm run --silent typecheck

step "vitest (convex/)"
npm run --silent test:convex

step "pytest"
.venv/bin/pytest --durations=15 "$@"

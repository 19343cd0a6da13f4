#!/usr/bin/env bash
# Builds one Go command of the tier-2 test cluster from a small Go module under
# tests/cluster/<name>/ (go.mod pins the version) and prints the binary's path.
# Usage: tests/cluster/gobuild.sh <name> <package>
#
# The binary is cached under ~/.cache/fondation/<name>/<key>/<name> where <key>
# hashes the module's go.mod, go.sum, *.go and the Go version, so a warm run
# does not rebuild; Go's own GOCACHE/GOMODCACHE make a rebuild incremental.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=$1
pkg=$2
src="$here/$name"
cache=${FONDATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fondation}
ldflags="-s -w"
shopt -s nullglob
key=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go <(go version; echo "$ldflags $pkg") | sha256sum | cut -c1-16)
out="$cache/$name/$key"
mkdir -p "$out"
# One build at a time per key: several work trees may bootstrap at once.
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/$name" ]; then
  printf '[%s] building %s (first run only, a few minutes)\n' "$name" "$pkg" >&2
  start=$(date +%s)
  (cd "$src" && go build -trimpath -ldflags="$ldflags" -o "$out/$name.partial" "$pkg")
  mv "$out/$name.partial" "$out/$name"
  printf '[%s] built in %ss: %s\n' "$name" "$(( $(date +%s) - start ))" "$out/$name" >&2
fi
ln -sfn "$out" "$cache/$name/current"
echo "$out/$name"

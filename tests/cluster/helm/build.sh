#!/usr/bin/env bash
# Builds the pinned Helm client (helm.sh/helm/v3, see go.mod) from Go modules
# and prints its path. The chart tests (tests/charts/) run it.
#
# go.mod names Helm's command as a `tool`, so there is no source of our own:
# the binary is `go build helm.sh/helm/v3/cmd/helm` at the version go.sum pins.
# It is cached under ~/.cache/fondation/helm/<key>/helm where <key> hashes
# go.mod, go.sum, the link flags and the Go version, so a warm run does not
# rebuild; Go's own GOCACHE/GOMODCACHE make a rebuild incremental.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${FONDATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fondation}
# Versions read from go.mod itself: a warm run needs neither the network nor GOMODCACHE.
version=$(awk '$1 == "helm.sh/helm/v3" {print $2}' "$here/go.mod")
# What Helm's own Makefile stamps: its version, and the Kubernetes version that
# `helm template` and `helm lint` assume (its client-go minor, major 1).
k8s_minor=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/go.mod" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
key=$(cat "$here/go.mod" "$here/go.sum" <(go version; echo "$ldflags") | sha256sum | cut -c1-16)
out="$cache/helm/$key"
mkdir -p "$out"
# One build at a time per key: several work trees may bootstrap at once.
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/helm" ]; then
  printf '[helm] building helm %s (first run only, a few minutes)\n' "$version" >&2
  start=$(date +%s)
  (cd "$here" && go build -trimpath -ldflags="$ldflags" -o "$out/helm.partial" helm.sh/helm/v3/cmd/helm)
  mv "$out/helm.partial" "$out/helm"
  printf '[helm] built in %ss: %s\n' "$(( $(date +%s) - start ))" "$out/helm" >&2
fi
ln -sfn "$out" "$cache/helm/current"
echo "$out/helm"

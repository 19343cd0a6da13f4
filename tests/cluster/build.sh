#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, etcd,
# kubectl as one multi-call binary `kcp`) from Go modules and prints its path.
#
# The binary is cached under ~/.cache/fondation/kcp/<key>/ where <key> hashes
# the Go sources and the Go version, so a warm run does not rebuild; Go's own
# GOCACHE/GOMODCACHE make a rebuild after a source change incremental.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/kcp"
cache=${FONDATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fondation}
version=v1.34.4
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=34 -X $pkg.gitTreeState=clean"
done
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" <(go version; echo "$ldflags") | sha256sum | cut -c1-16)
out="$cache/kcp/$key"
mkdir -p "$out"
# One build at a time per key: several work trees may bootstrap at once.
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/kcp" ]; then
  printf '[kcp] building the test control plane (first run only, several minutes)\n' >&2
  start=$(date +%s)
  (cd "$src" && go build -trimpath -ldflags="$ldflags" -o "$out/kcp.partial" .)
  mv "$out/kcp.partial" "$out/kcp"
  printf '[kcp] built in %ss: %s\n' "$(( $(date +%s) - start ))" "$out/kcp" >&2
fi
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sf kcp "$out/$name"
done
mkdir -p "$cache/bin"
ln -sfn "$out" "$cache/kcp/current"
echo "$out/kcp"

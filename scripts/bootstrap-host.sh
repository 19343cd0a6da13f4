#!/usr/bin/env bash
# Installs the machine packages the tier-2 node needs (tests/cluster/node.py):
# containerd, runc and the CNI plugins run the pods; iptables, conntrack and
# ipset serve kube-proxy and kube-router; mmdebstrap builds the images; gcc
# builds the pause binary. Only what is missing is installed, so a machine
# that has them all (or a non-root user, or a machine without apt) is left
# alone: the tier-2 tests then skip and say why.
# (Not to be confused with scripts/bootstrap-node.sh, the Node.js tooling.)
set -euo pipefail

log() { printf '[bootstrap-host] %s\n' "$*" >&2; }

# package:command-or-file that proves it is installed
wanted=(
  containerd:containerd
  runc:runc
  containernetworking-plugins:/usr/lib/cni/bridge
  iptables:iptables
  conntrack:conntrack
  ipset:ipset
  mmdebstrap:mmdebstrap
  gcc:gcc
  libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a
)
missing=()
for entry in "${wanted[@]}"; do
  package=${entry%%:*}
  probe=${entry#*:}
  if [[ $probe == /* ]]; then
    [ -e "$probe" ] || missing+=("$package")
  else
    command -v "$probe" >/dev/null 2>&1 || missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "not installing ${missing[*]} (needs root and apt-get): tier-2 tests will be skipped"
  exit 0
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# The demo: a local control plane (etcd, kube-apiserver, kube-controller-manager),
# the operator running as its own service account, and examples/analysisjob.yaml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/bootstrap.sh
exec .venv/bin/python -m tests.cluster.demo "$@"

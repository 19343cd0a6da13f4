"""`make demo`: the operator on a local control plane, end to end.

Starts etcd, kube-apiserver and kube-controller-manager, installs the CRD and
the operator's RBAC, runs the operator as its service account, applies
examples/analysisjob.yaml and reports what happened. On a terminal it then
keeps everything running for `kubectl` until Ctrl-C; otherwise it stops.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from tests.cluster.controlplane import ROOT, ControlPlane, wait_for
from tests.cluster.operator_process import OperatorProcess, install_rbac

EXAMPLE = ROOT / "examples" / "analysisjob.yaml"


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".local" / "demo")
    parser.add_argument(
        "--hold",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty(),
        help="keep the cluster running until Ctrl-C (default: on a terminal)",
    )
    args = parser.parse_args()

    workdir: Path = args.workdir
    if workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    started = time.monotonic()
    cp = ControlPlane(workdir=workdir, keep_workdir=True)
    say("starting etcd, kube-apiserver and kube-controller-manager ...")
    cp.start()
    operator: OperatorProcess | None = None
    try:
        say(f"control plane ready in {time.monotonic() - started:.1f}s at {cp.server}")
        kubeconfig = install_rbac(cp)
        say("installed the AnalysisJob CRD and the operator's RBAC (deploy/rbac.yaml)")
        operator = OperatorProcess(kubeconfig, workdir / "operator.log")
        operator.start()
        say(
            f"operator ready, as service account fondation-system/fondation-operator "
            f"(health and metrics on {operator.health_url})"
        )
        say(cp.kubectl("apply", "-f", str(EXAMPLE)).stdout.strip())

        def running() -> bool:
            out = cp.kubectl("get", "aj", "sample", "-o", "jsonpath={.status.phase}")
            return out.stdout.strip() in ("Running", "Succeeded", "Failed")

        wait_for(running, timeout=60, what="the sample AnalysisJob to start")
        status = json.loads(cp.kubectl("get", "aj", "sample", "-o", "json").stdout)["status"]
        say(
            f"AnalysisJob sample is {status['phase']}: attempt {status['attempt']}, "
            f"Job {status['jobName']}"
        )
        print(cp.kubectl("get", "analysisjobs,jobs,pods", "-o", "wide").stdout)
        print(
            cp.kubectl(
                "get", "events", "--field-selector", "involvedObject.kind=AnalysisJob"
            ).stdout
        )
        say("this control plane has no kubelet, so the runner pod stays Pending")
        say("point kubectl at it:")
        print(f"\n    export KUBECONFIG={cp.kubeconfig}")
        print(f"    alias kubectl='{cp.binary} kubectl'")
        print("    kubectl get aj; kubectl describe aj sample\n")
        if args.hold:
            say("holding; press Ctrl-C to stop everything")
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            stop.wait()
    finally:
        if operator is not None:
            operator.stop()
        cp.stop()
        say(f"stopped; logs kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

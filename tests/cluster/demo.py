"""`make demo`: the whole system on this machine, end to end.

Starts etcd, kube-apiserver and kube-controller-manager, installs the CRD and
the operator's RBAC, runs the operator as its service account, serves the
sample repository from a local Git host (HTTPS), applies
examples/analysisjob.yaml pointed at it, runs the runner pod as a local
process (this control plane has no kubelet), and ends with the finished
course rebuilt from the cluster by `fondation course get`. On a terminal it
then keeps everything running for `kubectl` until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient
from tests.cluster.controlplane import ROOT, ControlPlane
from tests.cluster.git_server import GitServer
from tests.cluster.objects import wait_phase
from tests.cluster.operator_process import OperatorProcess, install_rbac
from tests.cluster.process_kubelet import ProcessKubelet

EXAMPLE = ROOT / "examples" / "analysisjob.yaml"
SAMPLE_REPO = ROOT / "tests" / "fixtures" / "sample-repo"


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


async def run_analysis(cp: ControlPlane, git: GitServer, workdir: Path) -> dict[str, object]:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["spec"]["source"] = {"repository": git.url("sample"), "ref": "main"}
    applied = workdir / "analysisjob.yaml"
    applied.write_text(yaml.safe_dump(manifest))
    say(f"applying {EXAMPLE.relative_to(ROOT)} with its repository set to {git.url('sample')}")
    say(cp.kubectl("apply", "-f", str(applied)).stdout.strip())
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    async with KubeClient(kube_config.from_kubeconfig(cp.kubeconfig)) as kube:
        node = ProcessKubelet(kube, workdir / "node", git.client_env())
        stop = asyncio.Event()
        serving = asyncio.create_task(node.serve(namespace, stop))
        try:
            body = await wait_phase(kube, namespace, name, "Succeeded", timeout=300)
        finally:
            stop.set()
            await serving
        for run in node.runs:
            say(f"runner pod {run.pod} exited {run.exit_code}; its log (kubectl logs):")
            print("    " + "\n    ".join(run.log.strip().splitlines()))
        return dict(body["status"])


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
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    cp = ControlPlane(workdir=workdir / "cluster", keep_workdir=True)
    git = GitServer(workdir / "git")
    operator: OperatorProcess | None = None
    say("starting etcd, kube-apiserver and kube-controller-manager ...")
    cp.start()
    try:
        say(f"control plane ready in {time.monotonic() - started:.1f}s at {cp.server}")
        kubeconfig = install_rbac(cp)
        say("installed the AnalysisJob CRD and the operator's RBAC (deploy/rbac.yaml)")
        operator = OperatorProcess(kubeconfig, workdir / "operator.log")
        operator.start()
        say(
            f"operator running as service account fondation-system/fondation-operator "
            f"(health and metrics: {operator.health_url}/metrics)"
        )
        git.start()
        commit = git.publish(SAMPLE_REPO, "sample")
        say(f"serving tests/fixtures/sample-repo at {git.url('sample')} (commit {commit[:12]})")
        status = asyncio.run(run_analysis(cp, git, workdir))
        result = status["result"]
        assert isinstance(result, dict)
        say(
            f"AnalysisJob sample: {status['phase']}, {result['documents']} documents, "
            f"{result['chapters']} chapters, in ConfigMaps {', '.join(result['resultConfigMaps'])}"
        )
        print(cp.kubectl("get", "analysisjobs,jobs,pods,configmaps", "-n", "default").stdout)
        out = workdir / "course"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fondation_cli",
                "course",
                "get",
                "sample",
                "-n",
                "default",
                "--out",
                str(out),
                "--kubeconfig",
                str(cp.kubeconfig),
            ],
            check=True,
        )
        for path in sorted((out / ".claude-tutorial-output").rglob("*")):
            if path.is_file():
                print(f"    {path.relative_to(out)}")
        index = out / ".claude-tutorial-output" / "tutorials" / "index.md"
        if index.exists():
            say(f"the course starts at {index}:")
            print("    " + "\n    ".join(index.read_text().splitlines()[:25]))
        print(json.dumps({"phase": status["phase"], "result": result}, indent=2))
        say("point kubectl at the cluster:")
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
        git.stop()
        cp.stop()
        say(f"stopped after {time.monotonic() - started:.1f}s; logs kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

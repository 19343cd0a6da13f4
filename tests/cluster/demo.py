"""`make demo`: the whole system on this machine, end to end.

On the real node (tests/cluster/node.py, tier 2): starts the control plane,
containerd and the kubelet, `helm install`s the chart with the project's
images, serves the sample repository from a Git host (HTTPS) on the node's
bridge, applies examples/analysisjob.yaml pointed at it, and its runner pod
runs in containerd; prints `kubectl logs` of that pod and the course rebuilt
by `fondation course get`. On a terminal it then keeps the cluster running
for `kubectl` until Ctrl-C, and restores the machine when it stops.

When this machine cannot run the node (not root, no containerd, a missing
kernel feature), it says why in one line and falls back to the process
runner: the operator as a local process and the runner pod as a local
process (no kubelet), clearly labelled.
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

from fondation_contracts import analysisjob as aj
from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient
from tests.cluster.controlplane import ROOT, ControlPlane
from tests.cluster.git_server import GitServer
from tests.cluster.node import OUTSIDE_IP, Node, NodeUnavailable, preflight
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


def hold() -> None:
    say("holding; press Ctrl-C to stop everything")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


def get_course(kubeconfig: Path, namespace: str, out: Path) -> None:
    """`fondation course get`, then the files and the start of the course."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fondation_cli",
            "course",
            "get",
            "sample",
            "-n",
            namespace,
            "--out",
            str(out),
            "--kubeconfig",
            str(kubeconfig),
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


def node_demo(args: argparse.Namespace, workdir: Path, started: float) -> int:
    """The demo on the real node; NodeUnavailable when it cannot start."""
    from tests.cluster import release

    node = Node()
    say("starting the control plane, containerd, kubelet, kube-proxy, CoreDNS, kube-router ...")
    try:
        node.start()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NodeUnavailable(f"the node did not start: {first}") from exc
    git = GitServer(workdir / "git", host=OUTSIDE_IP)
    try:
        say(f"node {node.cp.node_name} Ready in {time.monotonic() - started:.1f}s")
        manifest = yaml.safe_load(EXAMPLE.read_text())
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        helm = release.helm_for(node, workdir / "helm")
        release.install(helm, node, namespaces=[namespace])
        say(
            f"helm install {release.RELEASE} charts/fondation-operator: operator pod Ready "
            f"({node.image('operator')}), {time.monotonic() - started:.1f}s"
        )
        git.start()
        commit = git.publish(SAMPLE_REPO, "sample")
        say(f"serving tests/fixtures/sample-repo at {git.url('sample')} (commit {commit[:12]})")
        release.runner_namespace(node, namespace, git)
        manifest["spec"]["source"] = {"repository": git.url("sample"), "ref": "main"}
        applied = workdir / "analysisjob.yaml"
        applied.write_text(yaml.safe_dump(manifest))
        say(f"kubectl apply -f {EXAMPLE.relative_to(ROOT)} (repository: {git.url('sample')})")
        say(node.cp.kubectl("apply", "-f", str(applied)).stdout.strip())
        body = release.wait_analysis(node, namespace, name, "Succeeded", timeout=600)
        status = body["status"]
        for pod in release.runner_pods(node, namespace, name):
            pod_name = pod["metadata"]["name"]
            say(f"kubectl logs {pod_name} (a real pod, run by containerd):")
            log = node.cp.kubectl("logs", "-n", namespace, pod_name).stdout
            print("    " + "\n    ".join(log.strip().splitlines()))
        result = status["result"]
        say(
            f"AnalysisJob {name}: {status['phase']} in {time.monotonic() - started:.1f}s, "
            f"{result['documents']} documents, {result['chapters']} chapters"
        )
        print(node.cp.kubectl("get", "analysisjobs,jobs,pods,configmaps", "-n", namespace).stdout)
        get_course(node.cp.kubeconfig, namespace, workdir / "course")
        say("point kubectl at the cluster:")
        print(f"\n    export KUBECONFIG={node.cp.kubeconfig}")
        print(f"    alias kubectl='{node.cp.binary} kubectl'")
        selector = f"{aj.LABEL_ANALYSISJOB}={name}"
        print(f"    kubectl get aj -n {namespace}; kubectl logs -n {namespace} -l {selector}\n")
        if args.hold:
            hold()
    finally:
        git.stop()
        problems = node.stop()
        say(
            f"stopped after {time.monotonic() - started:.1f}s; machine restored"
            + (f" except {problems}" if problems else "")
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".local" / "demo")
    parser.add_argument(
        "--hold",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty(),
        help="keep the cluster running until Ctrl-C (default: on a terminal)",
    )
    parser.add_argument(
        "--process-runner",
        action="store_true",
        help="skip the real node: runner pods as local processes",
    )
    args = parser.parse_args()

    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    if not args.process_runner:
        try:
            preflight()
            return node_demo(args, workdir, started)
        except NodeUnavailable as exc:
            say(f"real node unavailable ({exc}): falling back to the process runner")
    return process_demo(args, workdir, started)


def process_demo(args: argparse.Namespace, workdir: Path, started: float) -> int:
    """The fallback: no kubelet, the runner pod run as a local process."""
    say("PROCESS RUNNER MODE: the operator and the runner pod run as local processes")
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
        get_course(cp.kubeconfig, "default", workdir / "course")
        print(json.dumps({"phase": status["phase"], "result": result}, indent=2))
        say("point kubectl at the cluster:")
        print(f"\n    export KUBECONFIG={cp.kubeconfig}")
        print(f"    alias kubectl='{cp.binary} kubectl'")
        print("    kubectl get aj; kubectl describe aj sample\n")
        if args.hold:
            hold()
    finally:
        if operator is not None:
            operator.stop()
        git.stop()
        cp.stop()
        say(f"stopped after {time.monotonic() - started:.1f}s; logs kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End to end on the tier-2 node: what a user does, with real pods.

`helm install` of charts/fondation-operator with the project's images (the
operator pod reaches the API server through the `kubernetes` Service), then
`kubectl apply` of an AnalysisJob whose runner pod runs in containerd under
restricted Pod Security, clones from the Git host on the node's bridge
(trusted through the `git-ca` ConfigMap), reports to the operator's ingest
Service by its DNS name, and is read back with `kubectl logs` and
`fondation course get`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fondation_contracts.ingest import STEP_NAMES
from tests.charts.test_chart import Helm
from tests.cluster.controlplane import wait_for
from tests.cluster.git_server import GitServer
from tests.cluster.node import BRIDGE_IP, OUTSIDE_IP, Node
from tests.cluster.release import (
    OPERATOR_SERVICE,
    OUTPUT,
    RELEASE,
    RUNNER_LABELS,
    SAMPLE_REPO,
    apply_analysis,
    course_in_pod,
    get_json,
    helm_for,
    install,
    operator_pod,
    probe,
    restricted_pod,
    runner_namespace,
    runner_pods,
    sha256_tree,
    wait_analysis,
)

pytestmark = [pytest.mark.node]


@pytest.fixture(scope="session")
def node_helm(tmp_path_factory: pytest.TempPathFactory, node: Node) -> Helm:
    return helm_for(node, tmp_path_factory.mktemp("node-helm"))


@pytest.fixture(scope="session")
def node_git(node: Node) -> Iterator[GitServer]:
    """The Git host, on the node's bridge address so pods reach it."""
    server = GitServer(host=OUTSIDE_IP)
    server.start()
    server.sample_commit = server.publish(SAMPLE_REPO, "sample")  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def release(node: Node, node_helm: Helm) -> str:
    """The chart installed, its operator pod Ready."""
    install(node_helm, node)
    return RELEASE


def test_helm_install_then_an_analysis_runs_in_a_real_pod_and_its_course_is_rebuilt(
    node: Node, release: str, node_git: GitServer, tmp_path: Path
) -> None:
    namespace = runner_namespace(node, "e2e-real", node_git)
    # The operator pod runs from the project's image and reached the API
    # server through the `kubernetes` Service (it is Ready: it watches).
    operator = operator_pod(node)
    assert operator["status"]["phase"] == "Running"
    assert operator["spec"]["containers"][0]["image"] == node.image("operator")
    kubernetes_service = get_json(
        node, "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes"
    )
    assert kubernetes_service["items"][0]["endpoints"][0]["addresses"] == [BRIDGE_IP]

    started = time.monotonic()
    apply_analysis(node, namespace, "sample", node_git.url("sample"))
    body = wait_analysis(node, namespace, "sample", "Succeeded", timeout=300)
    elapsed = time.monotonic() - started
    result = body["status"]["result"]
    assert result["commit"] == node_git.sample_commit  # type: ignore[attr-defined]
    assert result["chapters"] == 4

    # The runner pod ran in containerd, from the runner image, admitted by
    # restricted Pod Security.
    (pod,) = runner_pods(node, namespace, "sample")
    assert pod["spec"]["containers"][0]["image"] == node.image("runner")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")

    # `kubectl logs` reads like a progress log: one line per step.
    logs = node.cp.kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
    for number, step in enumerate(STEP_NAMES, start=1):
        assert f"[{number}/6 {step}]" in logs, logs

    # `fondation course get` rebuilds, byte for byte, the course the runner
    # writes: the runner image's own code (`fondation analyze`, offline
    # backend, which is deterministic) run in a pod on the same commit. (The
    # runner pod's emptyDir is gone by now: the kubelet removes a finished
    # pod's volumes.)
    out = tmp_path / "course"
    got = subprocess.run(
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
            str(node.cp.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    written = course_in_pod(node, namespace, node_git, result["commit"], chapters=4)
    rebuilt = sha256_tree(out / OUTPUT)
    assert len(written) == result["documents"]
    assert rebuilt == written
    print(f"\napply -> Succeeded: {elapsed:.1f} s, {len(written)} documents identical")


def test_network_policies_confine_runner_pods_and_the_ingest_port(
    node: Node, release: str, node_git: GitServer
) -> None:
    namespace = runner_namespace(node, "e2e-policy", node_git)
    other = "e2e-other"
    node.cp.kubectl("create", "namespace", other)
    server = restricted_pod(
        "web", node.image("runner"), ["python", "-m", "http.server", "8000"], {"app": "web"}
    )
    node.cp.kubectl("apply", "-n", other, "-f", "-", input=json.dumps(server))
    wait_for(
        lambda: get_json(node, "pod", "web", "-n", other)["status"].get("podIP"),
        timeout=60,
        what="the other namespace's server pod",
    )
    web = get_json(node, "pod", "web", "-n", other)["status"]["podIP"] + ":8000"
    ingest = f"{OPERATOR_SERVICE}:8080"
    metrics = f"{OPERATOR_SERVICE}:8081"
    git = f"{OUTSIDE_IP}:{node_git.port}"
    api_service = "10.0.0.1:443"
    api_direct = f"{BRIDGE_IP}:{node.cp.api_port}"
    targets = [ingest, metrics, git, web, api_service, api_direct]

    runner = probe(node, namespace, "runner-probe", targets, RUNNER_LABELS)
    # Allowed: the ingest endpoint (by Service name), the Git host.
    assert runner[ingest] and runner[git], runner
    # Denied: the API server (Service or direct), another namespace's pods.
    assert not runner[api_service] and not runner[api_direct] and not runner[web], runner

    # A pod that is not a runner reaches the other pod and the operator's
    # metrics port (so the probe can connect), but not its ingest port.
    plain = probe(node, namespace, "plain-probe", targets, {"app": "not-a-runner"})
    assert plain[web] and plain[metrics], plain
    assert not plain[ingest], plain

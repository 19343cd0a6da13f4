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
    RELEASE_NAMESPACE,
    RUNNER_LABELS,
    RUNNER_NAMESPACES,
    SAMPLE_REPO,
    apply_analysis,
    course_get,
    course_in_pod,
    get_json,
    helm_for,
    install,
    operator_pod,
    probe,
    restricted_pod,
    runner_namespace,
    runner_pods,
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
def release(node: Node, node_helm: Helm, node_git: GitServer) -> str:
    """The chart installed, its operator pod Ready; runner namespaces trust the Git host."""
    install(node_helm, node)
    for namespace in RUNNER_NAMESPACES:
        runner_namespace(node, namespace, node_git)
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
    written = course_in_pod(node, namespace, node_git, result["commit"], chapters=4)
    rebuilt = course_get(node, namespace, "sample", tmp_path / "course")
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
    # Allowed: the ingest endpoint (by Service name), the Git host. Denied:
    # the API server (Service or direct), another namespace's pods, the
    # operator's other port.
    expected = {ingest: True, git: True}
    expected |= {api_service: False, api_direct: False, web: False, metrics: False}
    assert probe(node, namespace, "runner-probe", expected, RUNNER_LABELS) == expected
    # A pod that is not a runner reaches the other pod and the operator's
    # metrics port (so the probe can connect), but not its ingest port.
    expected = {web: True, metrics: True, ingest: False}
    assert probe(node, namespace, "plain-probe", expected, {"app": "not-a-runner"}) == expected


def big_repository(root: Path, packages: int = 10, modules: int = 3, functions: int = 8) -> Path:
    """A Python project whose offline course is over 1 MB: `packages`
    packages (one chapter each), each of `modules` modules under the
    runner's 100 KB per-file cap, with long docstrings, importing one another.
    The offline chapters quote a bounded number of definitions with their
    docstrings' first paragraph, so the size comes from long paragraphs."""
    sentence = (
        "This function takes part in the processing pipeline of the package and documents "
        "its inputs, its outputs, its failure modes and the invariants callers rely on. "
    )
    for p in range(packages):
        package = root / f"stage_{p:02d}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f'"""Stage {p} of the large pipeline."""\n')
        for m in range(modules):
            lines = [f'"""Stage {p}, part {m}."""', ""]
            if p:
                lines += [f"from stage_{p - 1:02d}.part_{m} import step_0", ""]
            for f in range(functions):
                lines += [
                    f"def step_{f}(value: int) -> int:",
                    f'    """Step {f} of stage {p}, part {m}. {sentence * 40}"""',
                    f"    return value + {f}",
                    "",
                ]
            (package / f"part_{m}.py").write_text("\n".join(lines))
    (root / "README.md").write_text("# A large pipeline\n\nTen stages.\n")
    return root


def test_a_course_over_1_mb_of_10_chapters_arrives_whole(
    node: Node, release: str, node_git: GitServer, tmp_path: Path
) -> None:
    namespace = "e2e-real"
    commit = node_git.publish(big_repository(tmp_path / "big"), "big")
    apply_analysis(node, namespace, "big", node_git.url("big"), maxChapters=10)
    body = wait_analysis(node, namespace, "big", "Succeeded", timeout=600)
    result = body["status"]["result"]
    assert result["chapters"] == 10
    assert result["partial"] is False
    out = tmp_path / "course"
    rebuilt = course_get(node, namespace, "big", out)
    size = sum(p.stat().st_size for p in (out / OUTPUT).rglob("*") if p.is_file())
    assert size > 1_000_000, size
    assert rebuilt == course_in_pod(node, namespace, node_git, commit, chapters=10, repo="big")
    print(f"\n{len(rebuilt)} documents, {size / 1e6:.2f} MB, identical to the runner's")


def test_a_runner_over_its_memory_limit_is_oomkilled_and_retried(
    node: Node, release: str, node_git: GitServer
) -> None:
    namespace = "e2e-real"
    tiny = {"cpu": "100m", "memory": "24Mi", "ephemeral-storage": "64Mi"}
    apply_analysis(
        node,
        namespace,
        "oom",
        node_git.url("sample"),
        retries=1,
        resources={"requests": tiny, "limits": tiny},
    )
    body = wait_analysis(node, namespace, "oom", "Failed", timeout=300)
    status = body["status"]
    assert status["attempt"] == 2  # retried once, as `retries: 1` allows
    assert "OOMKilled" in status["failure"]["message"], status["failure"]
    pods = runner_pods(node, namespace, "oom")
    assert len(pods) == 2
    for pod in pods:
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["reason"] == "OOMKilled", terminated


def test_helm_upgrade_and_uninstall_leave_no_orphans(
    node: Node, node_helm: Helm, release: str, node_git: GitServer, tmp_path: Path
) -> None:
    namespace = "e2e-real"
    apply_analysis(node, namespace, "kept", node_git.url("sample"))
    wait_analysis(node, namespace, "kept", "Succeeded", timeout=300)
    # New values: the operator is rolled, its old pod goes, nothing else moves.
    install(node_helm, node, command="upgrade", workers=4, maxConcurrentJobs=5)
    operator = operator_pod(node)
    env = {e["name"]: e.get("value") for e in operator["spec"]["containers"][0]["env"]}
    assert env["FONDATION_WORKERS"] == "4"
    wait_for(
        lambda: len(get_json(node, "pods", "-n", RELEASE_NAMESPACE)["items"]) == 1,
        timeout=120,
        what="the old operator pod to go",
    )
    node_helm.run("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout=120s")
    kinds = "deployments,replicasets,pods,services,configmaps,secrets,networkpolicies"

    def release_objects() -> list[str]:
        found = get_json(node, kinds, "-n", RELEASE_NAMESPACE)["items"]
        # kube-root-ca.crt is the cluster's, in every namespace.
        return [o["metadata"]["name"] for o in found if o["metadata"]["name"] != "kube-root-ca.crt"]

    wait_for(lambda: not release_objects(), timeout=120, what="the release's objects to go")
    # Nor does the runner egress NetworkPolicy it put in the runner namespace.
    assert get_json(node, "networkpolicies", "-n", namespace)["items"] == []
    # AnalysisJobs and their courses stay; their Jobs, pods and token
    # Secrets belong to them, not to the release.
    assert get_json(node, "analysisjob", "kept", "-n", namespace)["status"]["phase"] == "Succeeded"
    assert course_get(node, namespace, "kept", tmp_path / "kept")
    install(node_helm, node)  # for the tests after this one


def test_an_evicted_runner_is_retried_without_counting_an_attempt(
    node: Node, release: str, node_git: GitServer, tmp_path: Path
) -> None:
    namespace = "e2e-real"
    # A clone slow enough to evict the pod in the middle of it.
    node_git.publish(SAMPLE_REPO, "slow")
    node_git.fetch_delays["slow"] = 15
    apply_analysis(node, namespace, "evicted", node_git.url("slow"))

    wait_for(
        lambda: running_runner_pod(node, namespace, "evicted"),
        timeout=120,
        interval=0.2,
        what="the runner pod Running",
    )
    first = running_runner_pod(node, namespace, "evicted")
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": first, "namespace": namespace},
    }
    node.cp.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{first}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
    )
    body = wait_analysis(node, namespace, "evicted", "Succeeded", timeout=600)
    # The Job replaced the evicted pod (deleted once it stopped): same
    # attempt, not a retry, and the Job counts no failure.
    assert body["status"]["attempt"] == 1
    job = get_json(node, "job", body["status"]["jobName"], "-n", namespace)
    assert job["status"].get("succeeded") == 1, job["status"]
    assert not job["status"].get("failed"), job["status"]
    assert first not in {p["metadata"]["name"] for p in runner_pods(node, namespace, "evicted")}


def running_runner_pod(node: Node, namespace: str, name: str) -> str:
    for pod in runner_pods(node, namespace, name):
        if pod["status"].get("phase") == "Running":
            return str(pod["metadata"]["name"])
    return ""


def test_a_kubelet_killed_mid_run_comes_back_and_the_analysis_finishes(
    node: Node, release: str, node_git: GitServer, tmp_path: Path
) -> None:
    namespace = "e2e-real"
    # A clone slow enough to kill the kubelet in the middle of it.
    commit = node_git.publish(SAMPLE_REPO, "crash")
    node_git.fetch_delays["crash"] = 15
    apply_analysis(node, namespace, "crash", node_git.url("crash"))
    wait_for(
        lambda: running_runner_pod(node, namespace, "crash"),
        timeout=120,
        interval=0.2,
        what="the runner pod Running",
    )
    node.kill_kubelet()
    # The pod's container keeps running under containerd; its status cannot
    # reach the API server until a kubelet is back.
    time.sleep(5)  # the node stays down for a while: this is the scenario, not a wait
    node.start_kubelet()
    body = wait_analysis(node, namespace, "crash", "Succeeded", timeout=600)
    assert body["status"]["result"]["commit"] == commit

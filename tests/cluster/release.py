"""The chart on the tier-2 node, and AnalysisJobs through it, as a user runs them.

Shared by the tier-2 end-to-end tests (tests/e2e/test_real_node.py), the
demo (tests/cluster/demo.py) and the end-to-end benchmark (bench/e2e.py):
`helm install` of charts/fondation-operator with the project's images
imported into the node (never pulled), runner namespaces that enforce
restricted Pod Security and trust the Git host's CA (`git-ca`, see the
operator's FONDATION_GIT_CA_CONFIGMAP), and `kubectl` helpers.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fondation_contracts import analysisjob as aj
from tests.charts.test_chart import BUILD as HELM_BUILD
from tests.charts.test_chart import CHART, Helm
from tests.cluster.controlplane import ROOT, wait_for
from tests.cluster.git_server import GitServer
from tests.cluster.node import OUTSIDE_IP, Node

RELEASE = "fondation-operator"
RELEASE_NAMESPACE = "fondation-system"
# The chart's fullname for this release name, so its Service's DNS name.
OPERATOR_SERVICE = f"{RELEASE}.{RELEASE_NAMESPACE}.svc"
SAMPLE_REPO = ROOT / "tests" / "fixtures" / "sample-repo"
GIT_CA_CONFIGMAP = "git-ca"
# The namespaces the tier-2 tests run AnalysisJobs in: the operator watches
# them, and the chart gives each the runner egress NetworkPolicy.
RUNNER_NAMESPACES = ["e2e-real", "e2e-policy"]
OUTPUT = ".claude-tutorial-output"


def chart_values(node: Node, **overrides: Any) -> dict[str, Any]:
    """The chart's values for the tier-2 node: its imported images, never pulled."""
    values: dict[str, Any] = {
        "image": {"pullPolicy": "Never"},
        "runner": {
            "imagePullPolicy": "Never",
            # Small requests: 20 runner pods fit on the 2-core node.
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi", "ephemeralStorage": "64Mi"},
                "limits": {"cpu": "1", "memory": "1Gi", "ephemeralStorage": "1Gi"},
            },
        },
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "extraEnv": [
            {"name": "FONDATION_GIT_CA_CONFIGMAP", "value": GIT_CA_CONFIGMAP},
            # The Git host and the model API stand "outside" on an address of
            # their own, which runners refuse to clone from unless allowed.
            {"name": aj.ALLOWED_HOSTS_ENV, "value": OUTSIDE_IP},
        ],
        # Enforced by kube-router on the node.
        "networkPolicy": {"enabled": True},
        "namespaces": RUNNER_NAMESPACES,
    }
    values.update(overrides)
    return values


def helm_for(node: Node, home: Path) -> Helm:
    """The pinned helm binary, pointed at the node's cluster."""
    out = subprocess.run([str(HELM_BUILD)], check=True, capture_output=True, text=True)
    home.mkdir(parents=True, exist_ok=True)
    helm = Helm(Path(out.stdout.strip()), home)
    helm.env["KUBECONFIG"] = str(node.cp.kubeconfig)
    return helm


def install(helm: Helm, node: Node, *, command: str = "install", **overrides: Any) -> None:
    """`helm install` (or `upgrade`) the chart; returns once the operator is Ready.

    The namespaces it watches are created first (restricted): the chart puts
    the runner egress NetworkPolicy in each.
    """
    for namespace in chart_values(node, **overrides)["namespaces"]:
        restricted_namespace(node, namespace)
    helm.run(
        command,
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "-f",
        str(helm.values_file(chart_values(node, **overrides))),
        "--wait",
        "--timeout=180s",
    )


def restricted_namespace(node: Node, name: str) -> str:
    """A namespace enforcing the restricted Pod Security Standard (idempotent)."""
    node.cp.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                },
            }
        ),
    )
    return name


def runner_namespace(node: Node, name: str, git: GitServer) -> str:
    """A restricted namespace whose runner pods trust the Git host's CA (idempotent)."""
    restricted_namespace(node, name)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": GIT_CA_CONFIGMAP, "namespace": name},
        "data": {"ca.crt": git.cert.read_text()},
    }
    node.cp.kubectl("apply", "-f", "-", input=json.dumps(configmap))
    return name


def apply_analysis(node: Node, namespace: str, name: str, repository: str, **spec: Any) -> None:
    body = {
        "apiVersion": "fondation.dev/v1alpha1",
        "kind": "AnalysisJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"repository": repository, "ref": "main"},
            "language": "en",
            "backend": "offline",
            "maxChapters": 4,
            "retries": 1,
            "timeoutSeconds": 600,
            **spec,
        },
    }
    node.cp.kubectl("apply", "-f", "-", input=json.dumps(body))


def get_json(node: Node, *args: str) -> Any:
    return json.loads(node.cp.kubectl("get", *args, "-o", "json").stdout)


def wait_analysis(node: Node, namespace: str, name: str, phase: str, timeout: float) -> Any:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(get_json(node, "analysisjob", name, "-n", namespace))
        current = seen.get("status", {}).get("phase")
        if current == "Failed" and phase != "Failed":
            raise AssertionError(f"{name} failed: {seen['status']}")
        return bool(current == phase)

    wait_for(reached, timeout=timeout, interval=0.5, what=f"AnalysisJob {name} {phase}")
    return seen


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def operator_pod(node: Node) -> dict[str, Any]:
    """The operator's one pod, installed by the chart."""
    (pod,) = get_json(
        node, "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=fondation-operator"
    )["items"]
    return dict(pod)


def runner_pods(node: Node, namespace: str, name: str) -> list[dict[str, Any]]:
    """The runner pods of one AnalysisJob, every attempt."""
    selector = f"{aj.LABEL_ANALYSISJOB}={name}"
    return list(get_json(node, "pods", "-n", namespace, "-l", selector)["items"])


RUNNER_LABELS = {
    "app.kubernetes.io/name": "fondation-runner",
    "app.kubernetes.io/managed-by": "fondation-operator",
}
# Tries a TCP connection to each host:port of the JSON object given as
# argument, whose values say whether a connection is expected; tries again
# (a NetworkPolicy enforcer programs a new pod's rules within seconds) until
# every target behaves as expected or the deadline passes, then prints one
# JSON object: {"host:port": true if it connected}.
_PROBE = """
import json, socket, sys, time
expected = json.loads(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
while True:
    out = {}
    for target in expected:
        host, port = target.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            out[target] = True
        except OSError:
            out[target] = False
    if out == expected or time.monotonic() > deadline:
        break
    time.sleep(1)
print(json.dumps(out))
"""


def restricted_pod(
    name: str,
    image: str,
    command: list[str],
    labels: dict[str, str],
    *,
    env: dict[str, str] | None = None,
    volumes: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """A pod that restricted Pod Security admits, as the runner pods are.

    `volumes` maps a mount path to a volume source (`{"emptyDir": {}}`).
    """
    mounted = [(f"v{i}", path, source) for i, (path, source) in enumerate((volumes or {}).items())]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    "volumeMounts": [{"name": n, "mountPath": path} for n, path, _ in mounted],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [{"name": n, **source} for n, _, source in mounted],
        },
    }


def run_pod(node: Node, namespace: str, body: Any, *, timeout: float = 120) -> str:
    """Create a pod, wait until it has finished, return its log."""
    name = body["metadata"]["name"]
    node.cp.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

    def finished() -> bool:
        phase = get_json(node, "pod", name, "-n", namespace)["status"].get("phase")
        return phase in ("Succeeded", "Failed")

    wait_for(finished, timeout=timeout, interval=0.5, what=f"pod {namespace}/{name} to finish")
    return node.cp.kubectl("logs", "-n", namespace, name).stdout


def probe(
    node: Node,
    namespace: str,
    name: str,
    expected: dict[str, bool],
    labels: dict[str, str],
    *,
    deadline: float = 45,
) -> dict[str, bool]:
    """From a pod with `labels` in `namespace`: which `host:port` accept a
    connection, once they all behave as `expected` or `deadline` s passed."""
    command = ["python", "-c", _PROBE, json.dumps(expected), str(deadline)]
    body = restricted_pod(name, node.image("runner"), command, labels)
    log = run_pod(node, namespace, body, timeout=deadline + 120)
    result: dict[str, bool] = json.loads(log.strip().splitlines()[-1])
    return result


# Runs `fondation analyze` (the runner's own code) and prints the sha256 of
# each document it wrote, as one JSON object.
_ANALYZE = """
import hashlib, json, pathlib, subprocess, sys
subprocess.run([sys.executable, "-m", "fondation_cli", "analyze", *sys.argv[1:],
                "--out", "/tmp/out"], check=True, stdout=subprocess.DEVNULL)
root = pathlib.Path("/tmp/out/.claude-tutorial-output")
print(json.dumps({str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in sorted(root.rglob("*")) if p.is_file()}))
"""


def course_in_pod(
    node: Node, namespace: str, git: GitServer, commit: str, *, chapters: int, repo: str = "sample"
) -> dict[str, str]:
    """sha256 of each document the runner image writes for `commit` of `repo`
    (offline backend, deterministic), computed in a pod of that image."""
    args = [git.url(repo), "--ref", commit, "--backend", "offline"]
    args += ["--max-chapters", str(chapters)]
    body = restricted_pod(
        f"course-{commit[:8]}",
        node.image("runner"),
        ["python", "-c", _ANALYZE, *args],
        {"app": "course-check"},
        env={
            "HOME": "/tmp",
            "GIT_SSL_CAINFO": "/etc/git-ca/ca.crt",
            aj.ALLOWED_HOSTS_ENV: OUTSIDE_IP,
        },
        volumes={
            "/tmp": {"emptyDir": {}},
            "/etc/git-ca": {"configMap": {"name": GIT_CA_CONFIGMAP}},
        },
    )
    result: dict[str, str] = json.loads(run_pod(node, namespace, body).strip().splitlines()[-1])
    return result


def course_get(node: Node, namespace: str, name: str, out: Path) -> dict[str, str]:
    """`fondation course get` into `out`; sha256 of each document it wrote."""
    got = subprocess.run(
        [
            *(sys.executable, "-m", "fondation_cli", "course", "get", name, "-n", namespace),
            *("--out", str(out), "--kubeconfig", str(node.cp.kubeconfig)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if got.returncode != 0:
        raise AssertionError(f"fondation course get {name} exited {got.returncode}: {got.stderr}")
    return sha256_tree(out / OUTPUT)

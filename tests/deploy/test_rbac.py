"""The operator's service account can do what it needs, and no more."""

from __future__ import annotations

from pathlib import Path

import pytest

from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient
from tests.cluster.controlplane import ControlPlane
from tests.cluster.operator_process import OPERATOR_NAMESPACE, OPERATOR_SA

pytestmark = pytest.mark.cluster

SA = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SA}"

# (verb, resource, subresource-qualified, expected)
ALLOWED = [
    ("watch", "analysisjobs.fondation.dev"),
    ("create", "analysisjobs.fondation.dev"),
    ("patch", "analysisjobs.fondation.dev/status"),
    ("update", "analysisjobs.fondation.dev/finalizers"),
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("list", "pods"),
    ("create", "secrets"),
    ("create", "events"),
    # Dry runs of the runner pod, and a credentials Secret's opt-in label.
    ("create", "pods"),
    ("get", "secrets"),
]
DENIED = [
    ("delete", "analysisjobs.fondation.dev"),
    ("update", "analysisjobs.fondation.dev"),
    ("patch", "jobs.batch"),
    ("delete", "pods"),
    ("patch", "pods"),
    ("create", "pods/exec"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("patch", "secrets"),
    ("delete", "secrets"),
    ("create", "serviceaccounts/token"),
    ("patch", "nodes"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
]


def _can_i(cp: ControlPlane, verb: str, resource: str) -> bool:
    resource, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    out = cp.kubectl("auth", "can-i", verb, resource, *extra, "-A", f"--as={SA}", check=False)
    answer = out.stdout.strip()
    assert answer in ("yes", "no"), out.stderr
    return answer == "yes"


@pytest.mark.parametrize(("verb", "resource"), ALLOWED)
def test_operator_may(
    control_plane: ControlPlane, operator_kubeconfig: Path, verb: str, resource: str
) -> None:
    assert _can_i(control_plane, verb, resource)


@pytest.mark.parametrize(("verb", "resource"), DENIED)
def test_operator_may_not(
    control_plane: ControlPlane, operator_kubeconfig: Path, verb: str, resource: str
) -> None:
    assert not _can_i(control_plane, verb, resource)


async def test_self_subject_access_review_with_the_operator_token(
    operator_kubeconfig: Path,
) -> None:
    """The same answers, asked by the operator's own (bound, projected) token."""

    async def review(
        client: KubeClient, verb: str, group: str, resource: str, name: str = ""
    ) -> bool:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "name": name,
                }
            },
        }
        result = await client.request(
            "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body
        )
        return bool(result["status"]["allowed"])

    async with KubeClient(kube_config.from_kubeconfig(operator_kubeconfig)) as client:
        assert await review(client, "create", "batch", "jobs")
        assert await review(
            client,
            "get",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "analysisjobs.fondation.dev",
        )
        assert not await review(
            client, "get", "apiextensions.k8s.io", "customresourcedefinitions", "other.example.com"
        )
        assert not await review(client, "list", "", "secrets")
        assert not await review(client, "delete", "", "pods")


CLAIMS_SECRET = "fondation-convex-claims"


@pytest.mark.parametrize(
    ("verb", "secret", "namespace", "expected"),
    [
        ("get", CLAIMS_SECRET, OPERATOR_NAMESPACE, True),
        ("patch", CLAIMS_SECRET, OPERATOR_NAMESPACE, True),
        ("delete", CLAIMS_SECRET, OPERATOR_NAMESPACE, False),
        ("patch", "claude-credentials", OPERATOR_NAMESPACE, False),
        ("patch", CLAIMS_SECRET, "default", False),
        ("list", "", OPERATOR_NAMESPACE, False),
    ],
)
def test_the_only_secret_the_operator_writes_is_the_convex_claims_record(
    control_plane: ControlPlane,
    operator_kubeconfig: Path,
    verb: str,
    secret: str,
    namespace: str,
    expected: bool,
) -> None:
    """The Convex bridge keeps its callback tokens in one Secret it may patch by name;
    other Secrets it may only `get` (their opt-in label, asked as metadata only)."""
    target = f"secrets/{secret}" if secret else "secrets"
    out = control_plane.kubectl(
        "auth", "can-i", verb, target, "-n", namespace, f"--as={SA}", check=False
    )
    assert out.stdout.strip() == ("yes" if expected else "no"), out.stderr

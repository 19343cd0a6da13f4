"""Runner Jobs the cluster refuses, on a real API server: a LimitRange, a
ResourceQuota and a ValidatingAdmissionPolicy each refuse one, the
AnalysisJob ends `Failed/JobRejected` with the API server's words and an
Event, and another namespace's AnalysisJob still starts although the bad
ones were first and as many as the cap. A quota that clears only delays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError
from fondation_operator.kube.resources import EVENTS, JOBS
from tests.cluster.controlplane import ControlPlane
from tests.cluster.objects import (
    create_aj,
    eventually,
    get_aj,
    jobs_of,
    succeed_job,
    wait_phase,
    wait_pod,
)
from tests.cluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

NO_MAXIMUM = '{"cpu": "", "memory": "", "ephemeral-storage": ""}'


def _policy(namespace: str) -> str:
    """Refuse (422) the runner Job of the AnalysisJob named `forbidden` in `namespace`."""
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: deny-forbidden-{namespace}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [batch]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [jobs]
  validations:
    - expression: >-
        !has(object.metadata.labels) ||
        !('fondation.dev/analysisjob' in object.metadata.labels) ||
        object.metadata.labels['fondation.dev/analysisjob'] != 'forbidden'
      message: runner Jobs of 'forbidden' are not allowed in this namespace
      reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: deny-forbidden-{namespace}}}
spec:
  policyName: deny-forbidden-{namespace}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"""


def _limits(namespace: str) -> str:
    return f"""
apiVersion: v1
kind: LimitRange
metadata: {{name: runner-max, namespace: {namespace}}}
spec:
  limits:
    - type: Container
      max: {{cpu: "4"}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: memory, namespace: {namespace}}}
spec:
  hard: {{requests.memory: 2Gi}}
"""


def _probe_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"fondation.dev/analysisjob": "forbidden"}},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            }
        },
    }


async def _policy_in_force(kube: KubeClient, namespace: str) -> None:
    """A new admission policy takes a moment to be loaded by the API server."""

    async def refused() -> bool:
        try:
            await kube.create(JOBS, _probe_job("probe"), namespace, dry_run=True)
        except ApiError as exc:
            return exc.status == 422
        return False

    await eventually(refused, timeout=60, interval=0.2, what="the admission policy in force")


async def _event_reasons(kube: KubeClient, namespace: str, name: str) -> list[str]:
    items = await kube.list(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return [e["reason"] for e in items]


@pytest.fixture
async def refusing(
    control_plane: ControlPlane, kube: KubeClient, namespace: str
) -> AsyncIterator[str]:
    """`namespace` with a LimitRange, a ResourceQuota and an admission policy
    in force; the (cluster-scoped) policy is deleted afterwards."""
    manifest = _limits(namespace) + "---" + _policy(namespace)
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    await _policy_in_force(kube, namespace)
    yield namespace
    control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifest)


async def test_refused_jobs_fail_with_the_reason_and_never_hold_the_queue(
    kube: KubeClient,
    refusing: str,
    second_namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    namespace = refusing
    operator_factory(
        FONDATION_NAMESPACES=f"{namespace},{second_namespace}",
        FONDATION_MAX_CONCURRENT_JOBS="3",
        FONDATION_MAX_RESOURCES=NO_MAXIMUM,
    )
    # As many bad AnalysisJobs as the cap, all created before the good one.
    await create_aj(kube, namespace, "huge", resources={"limits": {"cpu": "64"}})
    await create_aj(kube, namespace, "greedy", resources={"requests": {"memory": "3Gi"}})
    await create_aj(kube, namespace, "forbidden")
    await create_aj(kube, second_namespace, "innocent")

    expected = {
        "huge": "maximum cpu usage per Container is 4, but limit is 64",
        "greedy": "exceeded quota: memory",
        "forbidden": "runner Jobs of 'forbidden' are not allowed in this namespace",
    }
    for name, words in expected.items():
        status = (await wait_phase(kube, namespace, name, "Failed"))["status"]
        assert status["failure"]["reason"] == "JobRejected", status
        assert words in status["failure"]["message"], status["failure"]
        assert len(status["failure"]["message"]) <= 1024
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Failed"]["reason"] == "JobRejected"

        async def event(name: str = name) -> bool:
            return "JobRejected" in await _event_reasons(kube, namespace, name)

        await eventually(event, what=f"a JobRejected Event on {name}")
    assert await jobs_of(kube, namespace) == [], "a refused pod must not leave a Job behind"

    await wait_phase(kube, second_namespace, "innocent", "Running")
    assert [j["metadata"]["name"] for j in await jobs_of(kube, second_namespace)] == [
        "aj-innocent-1"
    ]


async def test_a_full_quota_delays_its_namespace_only(
    kube: KubeClient,
    control_plane: ControlPlane,
    namespace: str,
    second_namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: v1
kind: ResourceQuota
metadata: {{name: cpu, namespace: {namespace}}}
spec:
  hard: {{requests.cpu: "1"}}
""",
    )

    async def counted() -> bool:
        out = control_plane.kubectl(
            "get", "resourcequota", "cpu", "-n", namespace, "-o", "jsonpath={.status.hard}"
        )
        return bool(out.stdout.strip())

    await eventually(counted, timeout=60, what="the quota counted by its controller")
    operator = operator_factory(
        FONDATION_NAMESPACES=f"{namespace},{second_namespace}", FONDATION_MAX_CONCURRENT_JOBS="3"
    )
    # Runners request 500m: two fit the quota, the third waits. (A dry run
    # sees the pods that exist: q3 comes once the Job controller made the others'.)
    for name in ("q1", "q2"):
        await create_aj(kube, namespace, name)
        await wait_phase(kube, namespace, name, "Running")
        await wait_pod(kube, namespace, f"aj-{name}-1")
    await create_aj(kube, namespace, "q3")
    status = (await wait_phase(kube, namespace, "q3", "Queued"))["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == "QuotaExceeded"
    assert "exceeded quota: cpu" in conditions["Ready"]["message"]
    assert status["retryAt"]
    # The slot q3 gave up goes to another namespace.
    await create_aj(kube, second_namespace, "elsewhere")
    await wait_phase(kube, second_namespace, "elsewhere", "Running")

    # Once q1 finishes, its pod no longer counts and q3 starts.
    await succeed_job(operator, kube, namespace, "q1", "aj-q1-1")
    body = await wait_phase(kube, namespace, "q3", "Running", timeout=90)
    assert "retryAt" not in body["status"]
    assert (await get_aj(kube, namespace, "q3"))["status"]["attempt"] == 1


async def test_resources_over_the_maximum_are_refused_with_the_field(
    kube: KubeClient, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    operator_factory(FONDATION_MAX_RESOURCES='{"cpu": "4", "memory": "8Gi"}')
    await create_aj(kube, namespace, "hog", resources={"limits": {"cpu": "64"}})
    await create_aj(kube, namespace, "modest", resources={"limits": {"cpu": "4"}})
    failure = (await wait_phase(kube, namespace, "hog", "Failed"))["status"]["failure"]
    assert failure == {
        "reason": "ResourcesOverMaximum",
        "message": "spec.resources.limits.cpu: 64 is over the operator's maximum of 4 per "
        "AnalysisJob (setting FONDATION_MAX_RESOURCES)",
    }
    await wait_phase(kube, namespace, "modest", "Running")
    assert await jobs_of(kube, namespace, "hog") == []

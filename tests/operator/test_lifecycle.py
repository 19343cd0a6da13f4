"""An AnalysisJob's life on a real control plane: failure and retries,
timeout, success, cancel, and deletion cascading to what it owns."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fondation_contracts import analysisjob as aj
from fondation_operator import names
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import NotFound
from fondation_operator.kube.resources import ANALYSISJOBS, EVENTS, JOBS, PODS, SECRETS
from tests.cluster.objects import (
    analysisjob,
    create_aj,
    eventually,
    finish_job,
    jobs_of,
    succeed_job,
    wait_phase,
)
from tests.cluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


async def _events(kube: KubeClient, namespace: str, name: str) -> list[str]:
    items = await kube.list(
        EVENTS,
        namespace,
        field_selector=f"involvedObject.name={name},involvedObject.kind=AnalysisJob",
    )
    return [e["reason"] for e in sorted(items, key=lambda e: e["metadata"]["creationTimestamp"])]


async def _wait_job(kube: KubeClient, namespace: str, name: str) -> None:
    async def exists() -> bool:
        try:
            await kube.get(JOBS, name, namespace)
        except NotFound:
            return False
        return True

    await eventually(exists, what=f"Job {name}")


async def test_failed_pods_are_retried_then_the_job_fails_with_the_reason(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    await create_aj(kube, namespace, "flaky", retries=2)
    for attempt in (1, 2, 3):
        await _wait_job(kube, namespace, f"aj-flaky-{attempt}")
        await finish_job(
            kube,
            namespace,
            f"aj-flaky-{attempt}",
            exit_code=1,
            message=f"clone failed on try {attempt}",
        )
    body = await wait_phase(kube, namespace, "flaky", "Failed")
    status = body["status"]
    assert status["attempt"] == 3
    assert status["failure"]["reason"] == "AttemptsExhausted"
    assert "clone failed on try 3" in status["failure"]["message"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Failed"]["status"] == "True"
    assert conds["Ready"]["status"] == "False"
    assert status["completedAt"]
    names = sorted(j["metadata"]["name"] for j in await jobs_of(kube, namespace, "flaky"))
    assert names == ["aj-flaky-1", "aj-flaky-2", "aj-flaky-3"]

    async def all_events() -> list[str]:
        got = await _events(kube, namespace, "flaky")
        return got if "Failed" in got else []

    reasons = await eventually(all_events, what="Failed event")
    assert reasons.count("AttemptFailed") == 2
    assert reasons.count("Started") == 3


async def test_success_ends_succeeded(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    await create_aj(kube, namespace, "fine")
    await _wait_job(kube, namespace, "aj-fine-1")
    await succeed_job(operator, kube, namespace, "fine", "aj-fine-1")
    status = (await wait_phase(kube, namespace, "fine", "Succeeded"))["status"]
    assert status["result"]["documents"] == 3 and status["result"]["chapters"] == 2
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"Ready": "True", "Succeeded": "True", "Failed": "False"}
    assert len(await jobs_of(kube, namespace, "fine")) == 1


async def test_exit_zero_without_a_course_fails(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    await create_aj(kube, namespace, "mute", retries=0)
    await _wait_job(kube, namespace, "aj-mute-1")
    await finish_job(kube, namespace, "aj-mute-1", exit_code=0)
    status = (await wait_phase(kube, namespace, "mute", "Failed"))["status"]
    assert status["failure"]["reason"] == "NoCourse"


async def test_cancel_deletes_the_job_and_ends_cancelled(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    await create_aj(kube, namespace, "stopme")
    await wait_phase(kube, namespace, "stopme", "Running")
    await kube.patch(ANALYSISJOBS, "stopme", {"spec": {"cancel": True}}, namespace)
    status = (await wait_phase(kube, namespace, "stopme", "Cancelled"))["status"]
    assert status["conditions"][0]["reason"] == "Cancelled"

    async def job_gone() -> bool:
        return not await jobs_of(kube, namespace, "stopme")

    await eventually(job_gone, what="the cancelled Job to be deleted")


async def test_deleting_the_analysisjob_cascades(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    await create_aj(kube, namespace, "gone")
    await wait_phase(kube, namespace, "gone", "Running")
    token_secret = names.token_secret_name("gone", 1)
    await kube.get(SECRETS, token_secret, namespace)
    await kube.delete(ANALYSISJOBS, "gone", namespace)

    async def nothing_left() -> bool:
        jobs = await jobs_of(kube, namespace, "gone")
        pods = await kube.list(PODS, namespace, label_selector="fondation.dev/analysisjob=gone")
        try:
            await kube.get(SECRETS, token_secret, namespace)
            secret = True
        except NotFound:
            secret = False
        return not jobs and not pods and not secret

    await eventually(nothing_left, timeout=60, what="garbage collection of Job, pods, Secret")


async def test_a_job_waits_for_its_git_credentials_before_it_starts(
    kube: KubeClient, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    """The Convex bridge creates an AnalysisJob, then its Git token Secret (which
    it owns), then lifts the annotation: no runner starts without its token."""
    operator_factory()
    body = analysisjob("private", source={"repository": "https://example.com/acme/private.git"})
    body["metadata"]["annotations"] = {aj.ANNOTATION_AWAITING_CREDENTIALS: "true"}
    await kube.create(ANALYSISJOBS, body, namespace)
    # A second AnalysisJob, created after, starts: so the operator has seen both.
    await create_aj(kube, namespace, "public")
    await _wait_job(kube, namespace, "aj-public-1")
    assert [j["metadata"]["name"] for j in await jobs_of(kube, namespace)] == ["aj-public-1"]

    await kube.patch(
        ANALYSISJOBS,
        "private",
        {"metadata": {"annotations": {aj.ANNOTATION_AWAITING_CREDENTIALS: None}}},
        namespace,
    )
    await _wait_job(kube, namespace, "aj-private-1")

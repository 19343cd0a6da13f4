"""The Convex bridge end to end: the Convex emulator (the project's real
convex/ functions), the test control plane, and operator processes running
as their service account.

Pods never run here (no kubelet): the tests act as the runner, posting
progress events and the course to the operator's ingest endpoint, and as
the kubelet, setting the pod's final status.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from fondation_contracts import analysisjob as aj
from fondation_contracts.course import Course, Document, DocumentKind
from fondation_contracts.ingest import STEP_NAMES
from fondation_operator.convexbridge.analysisjobs import name_for
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import NotFound
from fondation_operator.kube.resources import ANALYSISJOBS, EVENTS, JOBS, PODS, SECRETS
from tests.cluster.convex_emulator import ConvexEmulator
from tests.cluster.objects import (
    RetryableReport,
    eventually,
    finish_job,
    finish_pod,
    report_course,
    report_step,
)
from tests.cluster.operator_process import OPERATOR_NAMESPACE, OperatorProcess
from tests.operator.convexbridge.conftest import BridgeOperators

pytestmark = pytest.mark.cluster

REPO = "https://example.com/acme/widgets.git"
CLAIMS_SECRET = "fondation-convex-claims"
FRENCH_STEPS = [
    "Étape 1/6: Identification des abstractions",
    "Étape 2/6: Analyse des relations",
    "Étape 3/6: Ordonnancement des chapitres",
    "Étape 4/6: Génération des chapitres",
    "Étape 5/6: Relecture des chapitres",
    "Étape 6/6: Rédaction du tutoriel",
]

OUTAGE_S = 30.0


# ---- helpers ---------------------------------------------------------------


def enqueue(emulator: ConvexEmulator, **args: Any) -> str:
    job_id = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO, **args})
    assert isinstance(job_id, str)
    return job_id


def convex_job(emulator: ConvexEmulator, job_id: str) -> dict[str, Any]:
    job = emulator.call("query", "jobs:get", {"jobId": job_id})
    assert isinstance(job, dict)
    return job


async def convex_state(
    emulator: ConvexEmulator,
    job_id: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30.0,
    what: str = "",
) -> dict[str, Any]:
    """Wait until the Convex job satisfies `check`; the job."""

    async def probe() -> dict[str, Any] | None:
        job = await asyncio.to_thread(convex_job, emulator, job_id)
        return job if check(job) else None

    return await eventually(probe, timeout=timeout, interval=0.1, what=what or f"job {job_id}")


async def status_is(
    emulator: ConvexEmulator, job_id: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    return await convex_state(
        emulator,
        job_id,
        lambda job: job["status"] == status,
        timeout=timeout,
        what=f"Convex job {job_id} {status}",
    )


async def job_created(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        try:
            return await kube.get(JOBS, f"aj-{name}-1", namespace)
        except NotFound:
            return None

    return await eventually(probe, what=f"Job of {namespace}/{name}")


async def retrying(report: Callable[[], Awaitable[None]]) -> None:
    """Report as the runner does: the operator may be restarting."""

    async def attempt() -> bool:
        try:
            await report()
        except (aiohttp.ClientError, RetryableReport):
            return False
        return True

    await eventually(attempt, what="the operator to accept a report")


def course_of(name: str) -> Course:
    """Every kind of document of DESIGN section 5, chapters in step-3 order."""
    docs = [
        Document.build(
            kind=DocumentKind.YAML,
            slug="step1_abstractions",
            title="Abstractions",
            content='[{"name": "Core"}, {"name": "Edges"}]',
        ),
        Document.build(
            kind=DocumentKind.YAML,
            slug="step2_relationships",
            title="Relationships",
            content='{"summary": "s", "relationships": []}',
        ),
        Document.build(
            kind=DocumentKind.YAML,
            slug="step3_order",
            title="Chapter Order",
            content='{"order": [{"index": 1}, {"index": 0}]}',
        ),
    ]
    for index, (slug, title) in enumerate([("chapter_10", "Edges"), ("chapter_2", "Core")]):
        body = f"# {title}\n\nChapter {index} of {name}.\n"
        docs.append(
            Document.build(
                kind=DocumentKind.CHAPTER, slug=slug, title=title, chapter_index=index, content=body
            )
        )
        docs.append(
            Document.build(
                kind=DocumentKind.CHAPTER,
                slug=f"reviewed-{slug}",
                title=f"Reviewed: {title}",
                chapter_index=index,
                content=body + "\nReviewed.\n",
            )
        )
    docs.append(
        Document.build(
            kind=DocumentKind.TUTORIAL,
            slug="tutorial-index",
            title="Tutorial: Widgets",
            content="# Widgets\n\n```mermaid\nflowchart TD\n  A --> B\n```\n",
        )
    )
    return Course(analysis=name, commit="a" * 40, language="fr", documents=docs)


def assert_documents(emulator: ConvexEmulator, job_id: str, course: Course) -> None:
    """Convex holds exactly the course: nothing missing, duplicated or left over."""
    committed = emulator.call("query", "docs:listByJob", {"jobId": job_id})
    rows = emulator.call("query", "docs:allRowsOfJob", {"jobId": job_id})
    assert len(rows) == len(committed) == len(course.documents)
    got = {d["slug"]: d for d in committed}
    assert len(got) == len(committed)
    for doc in course.documents:
        row = got[doc.slug]
        assert (row["kind"], row["title"], row["chapterIndex"], row["content"]) == (
            doc.kind.value,
            doc.title,
            doc.chapter_index,
            doc.content,
        ), doc.slug
        assert row["sha256"] == doc.sha256
    job = convex_job(emulator, job_id)
    assert job["docsCount"] == len(course.documents)
    assert job["docsSummary"]["chaptersCount"] == 2
    assert job["docsSummary"]["tutorialsCount"] == 1


async def claim_records(kube: KubeClient, namespace: str) -> dict[str, str]:
    """The bridge's claim records for `namespace`, decoded."""
    try:
        secret = await kube.get(SECRETS, CLAIMS_SECRET, OPERATOR_NAMESPACE)
    except NotFound:
        return {}
    return {
        key: base64.b64decode(value).decode()
        for key, value in (secret.get("data") or {}).items()
        if key.startswith(f"{namespace}.")
    }


async def run_to_success(
    op: OperatorProcess, kube: KubeClient, namespace: str, name: str, course: Course
) -> None:
    await retrying(lambda: report_course(op, kube, namespace, name, course))
    await finish_job(kube, namespace, f"aj-{name}-1", exit_code=0)


# ---- tests -------------------------------------------------------------------


async def test_a_pending_job_runs_reports_progress_and_completes_with_its_course(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    op = bridge_operators()
    job_id = enqueue(emulator, branch="main", language="fr", maxAttempts=1)
    name = name_for(job_id, 1)

    job = await job_created(kube, namespace, name)
    cr = await kube.get(ANALYSISJOBS, name, namespace)
    assert cr["spec"]["convex"]["jobId"] == job_id
    assert cr["spec"]["source"] == {"repository": REPO, "ref": "main", "subPath": ""}
    assert (cr["spec"]["language"], cr["spec"]["backend"], cr["spec"]["retries"]) == (
        "fr",
        "offline",
        0,
    )
    assert job["metadata"]["labels"][aj.LABEL_ANALYSISJOB] == name

    started = await convex_state(emulator, job_id, lambda j: j["status"] == "running")
    assert (started["lockedBy"], started["attempt"]) == (
        f"fondation-operator/{OPERATOR_NAMESPACE}/{namespace}",
        1,
    )
    assert started["progress"] == "Démarrage de l'analyse"

    await report_step(op, kube, namespace, name, "clone", "cloning")
    await convex_state(
        emulator, job_id, lambda j: (j["status"], j["progress"]) == ("cloning", "Clonage du dépôt")
    )
    # Each step shows in Convex, in order, before the next one starts.
    for step, (step_name, text) in enumerate(zip(STEP_NAMES, FRENCH_STEPS, strict=True), 1):
        await report_step(op, kube, namespace, name, step_name)
        seen = await convex_state(
            emulator,
            job_id,
            lambda j, s=step: j.get("currentStep") == s,  # type: ignore[misc]
            what=f"step {step}",
        )
        assert (seen["status"], seen["progress"], seen["totalSteps"]) == ("analyzing", text, 6)

    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    done = await status_is(emulator, job_id, "completed")
    assert done["result"]["success"] is True
    assert done["result"]["documents"] == len(course.documents)
    assert done["result"]["chapters"] == 2
    assert_documents(emulator, job_id, course)
    # Once Convex knows the outcome, the record (and its token) is dropped.
    await eventually(
        lambda: _no_record(kube, namespace, name), what="the claim record to be dropped"
    )

    # The deploy key and the callback token appear nowhere but where they must.
    secrets = [emulator.deploy_key, done["callbackToken"]]
    aj_text = json.dumps(await kube.list(ANALYSISJOBS, namespace))
    events_text = json.dumps(await kube.list(EVENTS, namespace))
    log_text = op.log_path.read_text()
    assert "claimed Convex job" in log_text
    for secret in secrets:
        assert secret not in aj_text
        assert secret not in events_text
        assert secret not in log_text


async def _no_record(kube: KubeClient, namespace: str, name: str) -> bool:
    return f"{namespace}.{name}" not in await claim_records(kube, namespace)


async def test_a_convex_outage_mid_run_loses_nothing(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    """Convex goes down (SIGKILL) after step 1 and stays down for 30 s while
    the run finishes; the AnalysisJob's status holds what Convex missed. The
    retry delay is capped at 4 s instead of 30 s so that the test does not
    wait up to 30 s more for the first probe after Convex is back."""
    op = bridge_operators(CONVEX_BACKOFF_MAX="4")
    job_id = enqueue(emulator, language="en")
    name = name_for(job_id, 1)
    await job_created(kube, namespace, name)
    await report_step(op, kube, namespace, name, "abstractions")
    await convex_state(emulator, job_id, lambda j: j.get("currentStep") == 1)

    emulator.kill()
    down_at = time.monotonic()
    for step_name in STEP_NAMES[1:]:
        await report_step(op, kube, namespace, name, step_name)
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)

    async def outage_over() -> bool:
        # The outage is the scenario: 30 s of Convex down, retried throughout.
        return (
            time.monotonic() - down_at >= OUTAGE_S
            and op.log_path.read_text().count("Convex unreachable") >= 5
        )

    await eventually(
        outage_over,
        timeout=OUTAGE_S + 60,
        interval=0.5,
        what="a 30 s outage with failed calls to Convex",
    )
    cr = await kube.get(ANALYSISJOBS, name, namespace)
    assert cr["status"]["phase"] == "Succeeded"
    assert time.monotonic() - down_at >= OUTAGE_S

    emulator.start()
    await status_is(emulator, job_id, "completed", timeout=60)
    assert_documents(emulator, job_id, course)
    job = convex_job(emulator, job_id)
    assert job["attempt"] == 1
    assert "Convex reachable again" in op.log_path.read_text()


async def test_an_operator_killed_mid_run_resumes_without_claiming_again(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    op = bridge_operators()
    job_id = enqueue(emulator, language="fr")
    name = name_for(job_id, 1)
    await job_created(kube, namespace, name)
    await report_step(op, kube, namespace, name, "abstractions")
    await report_step(op, kube, namespace, name, "relationships")
    await convex_state(emulator, job_id, lambda j: j.get("currentStep") == 2)

    op.kill()
    op.start()
    for step_name in STEP_NAMES[2:]:
        await retrying(lambda s=step_name: report_step(op, kube, namespace, name, s))  # type: ignore[misc]
    # Progress goes on from the same claim (updateStatus needs its token).
    await convex_state(
        emulator, job_id, lambda j: j.get("progress") == FRENCH_STEPS[5], what="step 6 mirrored"
    )
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    await status_is(emulator, job_id, "completed")
    assert_documents(emulator, job_id, course)

    assert convex_job(emulator, job_id)["attempt"] == 1
    crs = await kube.list(ANALYSISJOBS, namespace)
    assert [c["metadata"]["name"] for c in crs] == [name]
    jobs = await kube.list(JOBS, namespace)
    assert [j["metadata"]["name"] for j in jobs] == [f"aj-{name}-1"]
    assert "resuming 1 claimed Convex jobs" in op.log_path.read_text()


async def test_a_failing_analysis_is_retried_by_convex_then_dead(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    bridge_operators()
    job_id = enqueue(emulator, maxAttempts=2)
    for attempt in (1, 2):
        name = name_for(job_id, attempt)

        async def created(n: str = name) -> dict[str, Any] | None:
            try:
                return await kube.get(JOBS, f"aj-{n}-1", namespace)
            except NotFound:
                return None

        # Convex's backoff before attempt 2 is 5 s (RETRY_BASE_MS).
        await eventually(created, timeout=30, what=f"the Job of attempt {attempt}")
        await finish_job(
            kube, namespace, f"aj-{name}-1", exit_code=1, message=f"clone failed (try {attempt})"
        )
        if attempt == 1:
            pending = await status_is(emulator, job_id, "pending")
            assert "clone failed (try 1)" in pending["lastError"]
            assert pending["attempts"] == 1
    dead = await status_is(emulator, job_id, "dead")
    assert "clone failed (try 2)" in dead["error"]
    assert dead["attempts"] == 2
    crs = {c["metadata"]["name"]: c for c in await kube.list(ANALYSISJOBS, namespace)}
    assert sorted(crs) == sorted([name_for(job_id, 1), name_for(job_id, 2)])
    assert {c["status"]["phase"] for c in crs.values()} == {"Failed"}


async def test_jobs_that_cannot_run_fail_with_a_reason_and_the_bridge_goes_on(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    bad_url = enqueue(emulator, repositoryUrl="ftp://example.com/acme/widgets.git")
    good = enqueue(emulator)
    op = bridge_operators()

    refused = await status_is(emulator, bad_url, "failed")
    assert "must be an https URL" in refused["error"]

    name = name_for(good, 1)
    await job_created(kube, namespace, name)
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    await status_is(emulator, good, "completed")
    assert_documents(emulator, good, course)
    names = [c["metadata"]["name"] for c in await kube.list(ANALYSISJOBS, namespace)]
    assert names == [name]


async def test_two_operators_share_one_queue_and_run_each_job_once(
    kube: KubeClient,
    namespace: str,
    second_namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    """Two clusters (two namespaces, two worker ids) poll one Convex; each
    holds at most 10 analyses, so both must take part in the 50 jobs."""
    count = 50
    ops = {
        ns: bridge_operators(ns, FONDATION_MAX_CONCURRENT_JOBS="10")
        for ns in (namespace, second_namespace)
    }
    job_ids = [enqueue(emulator) for _ in range(count)]
    reported: set[str] = set()

    async def kubelet() -> None:
        """Finish every pending pod: report its course, then exit 0."""
        while True:
            for ns, op in ops.items():
                pods = await kube.list(PODS, ns, label_selector=aj.LABEL_ANALYSISJOB)
                for pod in pods:
                    pod_name = pod["metadata"]["name"]
                    if pod_name in reported or pod["status"].get("phase") != "Pending":
                        continue
                    owner = pod["metadata"]["labels"][aj.LABEL_ANALYSISJOB]
                    await retrying(lambda o=op, n=ns, w=owner: report_course(o, kube, n, w))  # type: ignore[misc]
                    await finish_pod(kube, ns, pod_name, exit_code=0)
                    reported.add(pod_name)
            await asyncio.sleep(0.1)

    runner = asyncio.create_task(kubelet())
    try:

        async def all_completed() -> bool:
            jobs = await asyncio.to_thread(lambda: [convex_job(emulator, j) for j in job_ids])
            return all(j["status"] == "completed" for j in jobs)

        await eventually(all_completed, timeout=150, interval=0.5, what="all 50 jobs completed")
    finally:
        runner.cancel()

    jobs = [convex_job(emulator, j) for j in job_ids]
    assert [j["attempt"] for j in jobs] == [1] * count
    per_namespace = {
        ns: [c["spec"]["convex"]["jobId"] for c in await kube.list(ANALYSISJOBS, ns)] for ns in ops
    }
    ran = [job for ids in per_namespace.values() for job in ids]
    assert sorted(ran) == sorted(job_ids)  # every job once, none twice
    assert all(per_namespace.values()), {ns: len(ids) for ns, ids in per_namespace.items()}
    workers = {j["lockedBy"] for j in jobs}
    assert workers == {f"fondation-operator/{OPERATOR_NAMESPACE}/{ns}" for ns in ops}
    for ns in ops:
        k8s_jobs = await kube.list(JOBS, ns, label_selector=aj.LABEL_ANALYSISJOB)
        assert len(k8s_jobs) == len(per_namespace[ns])


async def test_a_claim_too_large_to_record_fails_alone(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    """Claim fields are bounded before they reach the claims Secret: a job
    whose URL is 5 KB fails in Convex naming the field, and the next runs."""
    huge_url = "https://example.com/acme/" + "w" * 5000 + ".git"
    oversized = enqueue(emulator, repositoryUrl=huge_url)
    good = enqueue(emulator)
    op = bridge_operators()

    refused = await convex_state(
        emulator,
        oversized,
        lambda job: "claim cannot be recorded" in (job.get("error") or ""),
        what="the oversized claim refused",
    )
    assert "repository_url" in refused["error"] and "w" * 100 not in refused["error"]
    name = name_for(good, 1)
    await job_created(kube, namespace, name)
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    await status_is(emulator, good, "completed")
    crs = [c["metadata"]["name"] for c in await kube.list(ANALYSISJOBS, namespace)]
    assert crs == [name]
    claims = await kube.get(SECRETS, CLAIMS_SECRET, OPERATOR_NAMESPACE)
    assert not any(name_for(oversized, 1) in key for key in claims.get("data") or {})

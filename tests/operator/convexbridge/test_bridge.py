"""The Convex bridge end to end, as a drop-in for Fondation's worker: the
Convex emulator, the test control plane, and operator processes running as
their service account.

The scenarios marked BOTH run against the two function sets a deployment
may have (deployments.py): the fake of Fondation's own functions, with no
deploy key as Fondation's worker has none, and the project's convex/, which
must behave the same for everything Fondation's worker and UI do.

Pods never run here (no kubelet): the tests act as the runner, posting
progress events and the course to the operator's ingest endpoint, and as
the kubelet, setting the pod's final status. The clone itself, with a
private repository's token, is tested in tests/runner/test_clone.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from fondation_contracts import analysisjob as aj
from fondation_contracts import fondation
from fondation_contracts.course import Course, Document, DocumentKind
from fondation_contracts.ingest import STEP_NAMES, ProgressEvent, StepState
from fondation_operator.convexbridge.analysisjobs import git_secret_name, name_for
from fondation_operator.convexbridge.github_tokens import encrypt
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import NotFound
from fondation_operator.kube.resources import ANALYSISJOBS, EVENTS, JOBS, PODS, SECRETS
from tests.cluster.convex_emulator import ConvexEmulator
from tests.cluster.objects import (
    RetryableReport,
    eventually,
    finish_job,
    finish_pod,
    post_report,
    report_course,
    report_step,
)
from tests.cluster.operator_process import OPERATOR_NAMESPACE, OperatorProcess
from tests.fakes.fondation import FondationSeed
from tests.operator.convexbridge.conftest import BridgeOperators
from tests.operator.convexbridge.deployments import CLONE_URL, DEFAULT_BRANCH, Deployment

pytestmark = pytest.mark.cluster

REPO = "https://example.com/acme/widgets.git"
CLAIMS_SECRET = "fondation-convex-claims"
FRENCH_STEPS = [fondation.step_progress(step) for step in range(1, 7)]
BOTH = pytest.mark.parametrize("emulator", ["fondation", "project"], indirect=True)
ENCRYPTION_KEY = SecretStr("3c" * 32)
GITHUB_TOKEN = "ghp_" + "Pr1v4te" * 5


@pytest.fixture
def deployment(emulator: ConvexEmulator) -> Deployment:
    return Deployment(emulator)


@pytest.fixture
def worker(deployment: Deployment, bridge_operators: BridgeOperators) -> BridgeOperators:
    """Start operators as Fondation's worker runs: with no deploy key on a
    Fondation deployment (its functions are public)."""

    def start(**env: str) -> OperatorProcess:
        return bridge_operators(deploy_key=not deployment.fondation, **env)

    return start


OUTAGE_S = 30.0


# ---- helpers ---------------------------------------------------------------


def enqueue(emulator: ConvexEmulator, **args: Any) -> str:
    """A job of the project's convex/, by URL (its `jobs:enqueue`)."""
    job_id = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO, **args})
    assert isinstance(job_id, str)
    return job_id


async def convex_state(
    deployment: Deployment,
    job_id: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30.0,
    what: str = "",
) -> dict[str, Any]:
    """Wait until the Convex job satisfies `check`; the job."""

    async def probe() -> dict[str, Any] | None:
        job = await asyncio.to_thread(deployment.job, job_id)
        return job if check(job) else None

    return await eventually(probe, timeout=timeout, interval=0.1, what=what or f"job {job_id}")


async def status_is(
    deployment: Deployment, job_id: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    return await convex_state(
        deployment,
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


def assert_documents(deployment: Deployment, job_id: str, course: Course) -> None:
    """Convex holds exactly the course, and the UI shows it ("Voir le cours")."""
    rows = deployment.docs_of_job(job_id)
    assert len(rows) == len(course.documents)
    got = {d["slug"]: d for d in rows}
    assert len(got) == len(rows)
    for doc in course.documents:
        row = got[doc.slug]
        assert (row["kind"], row["title"], row["chapterIndex"], row["content"]) == (
            doc.kind.value,
            doc.title,
            doc.chapter_index,
            doc.content,
        ), doc.slug
    job = deployment.job(job_id)
    assert job["docsCount"] == len(course.documents)
    assert deployment.course_shown(job_id)


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


async def report_ignored(
    op: OperatorProcess, kube: KubeClient, namespace: str, name: str, step_name: str
) -> None:
    """What a runner still alive after a cancel reports; whatever the answer."""
    cr = await kube.get(ANALYSISJOBS, name, namespace)
    step = STEP_NAMES.index(step_name) + 1
    body = json.dumps({"step": step, "stepName": step_name, "state": "started"})
    with contextlib.suppress(aiohttp.ClientError):
        await post_report(
            op.ingest_url,
            namespace,
            name,
            "events",
            body,
            token=op.token_for(cr["metadata"]["uid"]),
        )


async def report_cloned(op: OperatorProcess, kube: KubeClient, namespace: str, name: str) -> None:
    """The clone's end, with the commit, as the runner reports it."""
    cr = await kube.get(ANALYSISJOBS, name, namespace)
    event = ProgressEvent(
        step=0, step_name="clone", state=StepState.FINISHED, message="done", commit="c" * 40
    )
    status, text = await post_report(
        op.ingest_url,
        namespace,
        name,
        "events",
        event.model_dump_json(by_alias=True),
        token=op.token_for(cr["metadata"]["uid"]),
    )
    assert status == 202, text


def health(op: OperatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{op.health_url}/health", timeout=10) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


async def run_to_success(
    op: OperatorProcess, kube: KubeClient, namespace: str, name: str, course: Course
) -> None:
    await retrying(lambda: report_course(op, kube, namespace, name, course))
    await finish_job(kube, namespace, f"aj-{name}-1", exit_code=0)


# ---- the scenarios, against both function sets --------------------------------


@BOTH
async def test_claim_progress_private_clone_course_shown_in_fondations_words(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    """claim -> progress in Fondation's words -> private clone -> documents ->
    "Voir le cours". Private where users are seeded (the Fondation fake)."""
    private = deployment.fondation
    stored = encrypt(GITHUB_TOKEN, ENCRYPTION_KEY, os.urandom(16))
    op = worker(
        ENCRYPTION_KEY=ENCRYPTION_KEY.get_secret_value(),
        WORKER_ID="fondation-worker-1",
    )
    seeded = deployment.enqueue(token=stored if private else None)
    job_id = seeded.job_id
    name = name_for(job_id, 1)

    job = await job_created(kube, namespace, name)
    cr = await kube.get(ANALYSISJOBS, name, namespace)
    assert cr["spec"]["convex"]["jobId"] == job_id
    source = cr["spec"]["source"]
    assert (source["repository"], source["ref"]) == (CLONE_URL, DEFAULT_BRANCH)
    assert (cr["spec"]["language"], cr["spec"]["backend"]) == ("en", "offline")
    assert aj.ANNOTATION_AWAITING_CREDENTIALS not in (cr["metadata"].get("annotations") or {})
    assert job["metadata"]["labels"][aj.LABEL_ANALYSISJOB] == name
    if private:
        # The token, decrypted, in a Secret owned by the AnalysisJob, mounted for git.
        secret = await kube.get(SECRETS, git_secret_name(name), namespace)
        assert base64.b64decode(secret["data"]["token"]).decode() == GITHUB_TOKEN
        assert secret["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
        assert source["credentials"] == {"secretName": git_secret_name(name)}
        pod = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["git-credentials"]["secret"]["secretName"] == git_secret_name(name)
        (clone,) = pod["initContainers"]  # the clone alone mounts the token
        env = {e["name"]: e.get("value") for e in clone["env"]}
        assert env[aj.GIT_CREDENTIALS_DIR_ENV] == aj.GIT_CREDENTIALS_DIR

    started = await status_is(deployment, job_id, "running")
    assert started["lockedBy"] == "fondation-worker-1"
    assert started["progress"] == "Initializing..."
    await report_step(op, kube, namespace, name, "clone", "cloning")
    await convex_state(
        deployment,
        job_id,
        lambda j: (j["status"], j["progress"]) == ("cloning", "Clonage du dépôt..."),
    )
    await report_cloned(op, kube, namespace, name)
    await convex_state(
        deployment,
        job_id,
        lambda j: (j["status"], j["progress"]) == ("analyzing", "Analyse du code..."),
    )
    # Each step shows in Convex, in order, before the next one starts.
    for step, (step_name, text) in enumerate(zip(STEP_NAMES, FRENCH_STEPS, strict=True), 1):
        await report_step(op, kube, namespace, name, step_name)
        seen = await convex_state(
            deployment,
            job_id,
            lambda j, s=step: j.get("currentStep") == s,  # type: ignore[misc]
            what=f"step {step}",
        )
        assert (seen["status"], seen["progress"], seen["totalSteps"]) == ("analyzing", text, 6)

    shown = health(op)
    assert (shown["status"], shown["workerId"], shown["activeJobs"]) == (
        "healthy",
        "fondation-worker-1",
        1,
    )
    assert shown["convex"]["reachable"] is True

    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    done = await status_is(deployment, job_id, "completed")
    assert done["result"]["success"] is True
    assert_documents(deployment, job_id, course)
    # The job page's log: the same words, in order.
    lines = [entry["msg"] for entry in deployment.logs(job_id)]
    expected = [
        "Initializing...",
        "Clonage du dépôt...",
        "Analyse du code...",
        *FRENCH_STEPS,
        "Sauvegarde des résultats...",
        f"Cours sauvegardé: {len(course.documents)} documents",
    ]
    assert lines == expected
    # Once Convex knows the outcome, the record (and its token) is dropped.
    await eventually(
        lambda: _no_record(kube, namespace, name), what="the claim record to be dropped"
    )

    # The secrets appear nowhere but where they must.
    secrets = [GITHUB_TOKEN, stored, deployment.emulator.deploy_key, done["callbackToken"]]
    texts = {
        "AnalysisJobs": json.dumps(await kube.list(ANALYSISJOBS, namespace)),
        "Events": json.dumps(await kube.list(EVENTS, namespace)),
        "operator log": op.log_path.read_text(),
        "Convex job": json.dumps({k: v for k, v in done.items() if k != "callbackToken"}),
        "Convex log": json.dumps(deployment.logs(job_id)),
        "Job": json.dumps(job),
    }
    assert "claimed Convex job" in texts["operator log"]
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, where


@BOTH
async def test_a_cancel_from_the_ui_stops_the_analysis_and_nothing_is_written_over_it(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    op = worker(CONVEX_CANCEL_CHECK_INTERVAL="1")
    job_id = deployment.enqueue().job_id
    name = name_for(job_id, 1)
    await job_created(kube, namespace, name)
    for step_name in STEP_NAMES[:2]:
        await report_step(op, kube, namespace, name, step_name)
    await convex_state(deployment, job_id, lambda j: j.get("currentStep") == 2)

    cancelled_at = time.monotonic()
    deployment.request_cancel(job_id)

    async def stopped() -> bool:
        cr = await kube.get(ANALYSISJOBS, name, namespace)
        try:
            k8s_job = await kube.get(JOBS, f"aj-{name}-1", namespace)
        except NotFound:
            k8s_job = None
        gone = k8s_job is None or bool(k8s_job["metadata"].get("deletionTimestamp"))
        return (cr.get("status") or {}).get("phase") == "Cancelled" and gone

    await eventually(stopped, timeout=10, interval=0.1, what="the analysis stopped")
    assert time.monotonic() - cancelled_at < 10
    # A runner not yet stopped keeps reporting; nothing of it reaches Convex.
    await report_ignored(op, kube, namespace, name, "order")
    await eventually(lambda: _no_record(kube, namespace, name), what="the bridge to let the job go")
    row = deployment.job(job_id)
    assert (row["status"], row["cancelRequested"]) == ("canceled", True)
    assert (row["currentStep"], row["progress"]) == (2, FRENCH_STEPS[1])
    assert deployment.docs_of_job(job_id) == []
    assert "is no longer ours (the job is cancel requested in Convex)" in op.log_path.read_text()


@BOTH
async def test_a_regenerated_job_supersedes_the_running_one_which_never_uploads(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    op = worker(CONVEX_CANCEL_CHECK_INTERVAL="1")
    first = deployment.enqueue()
    old = name_for(first.job_id, 1)
    await job_created(kube, namespace, old)
    await report_step(op, kube, namespace, old, "abstractions")
    await convex_state(deployment, first.job_id, lambda j: j.get("currentStep") == 1)

    second = deployment.regenerate(first.job_id)
    new = name_for(second, 1)
    await job_created(kube, namespace, new)
    await eventually(
        lambda: _phase_is(kube, namespace, old, "Cancelled"), what="the old analysis cancelled"
    )
    superseded = await status_is(deployment, first.job_id, "canceled")
    if deployment.fondation:  # the project's regenerate ends the old job itself
        assert superseded["error"] == fondation.SUPERSEDED
    # The old runner still sends its course: it never reaches Convex.
    with contextlib.suppress(AssertionError, aiohttp.ClientError, RetryableReport):
        await report_course(op, kube, namespace, old, course_of(old))

    course = course_of(new)
    await run_to_success(op, kube, namespace, new, course)
    await status_is(deployment, second, "completed")
    assert_documents(deployment, second, course)
    assert deployment.docs_of_job(first.job_id) == []
    assert deployment.job(first.job_id)["status"] == "canceled"


async def _phase_is(kube: KubeClient, namespace: str, name: str, phase: str) -> bool:
    cr = await kube.get(ANALYSISJOBS, name, namespace)
    return bool((cr.get("status") or {}).get("phase") == phase)


@BOTH
async def test_a_failing_analysis_is_retried_by_convex_then_dead(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    worker()
    job_id = deployment.enqueue(max_attempts=2).job_id
    for attempt in (1, 2):
        name = name_for(job_id, attempt)

        async def created(n: str = name) -> dict[str, Any] | None:
            try:
                return await kube.get(JOBS, f"aj-{n}-1", namespace)
            except NotFound:
                return None

        # Fondation's backoff before attempt 2 is 5 s and up to 5 s of jitter.
        await eventually(created, timeout=40, what=f"the Job of attempt {attempt}")
        await finish_job(
            kube, namespace, f"aj-{name}-1", exit_code=1, message=f"clone failed (try {attempt})"
        )
        if attempt == 1:
            pending = await status_is(deployment, job_id, "pending")
            assert "clone failed (try 1)" in (pending.get("lastError") or pending["error"])
            assert pending["attempts"] == 1
    dead = await status_is(deployment, job_id, "dead")
    assert "clone failed (try 2)" in dead["error"]
    assert dead["attempts"] == 2
    crs = {c["metadata"]["name"]: c for c in await kube.list(ANALYSISJOBS, namespace)}
    assert sorted(crs) == sorted([name_for(job_id, 1), name_for(job_id, 2)])
    assert {c["status"]["phase"] for c in crs.values()} == {"Failed"}
    assert any("clone failed (try 2)" in e["msg"] for e in deployment.logs(job_id))


@BOTH
async def test_a_convex_outage_mid_run_loses_nothing(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    """Convex goes down (SIGKILL) after step 1 and stays down for 30 s while
    the run finishes; the AnalysisJob's status holds what Convex missed. The
    retry delay is capped at 4 s instead of 30 s so that the test does not
    wait up to 30 s more for the first probe after Convex is back."""
    op = worker(CONVEX_BACKOFF_MAX="4")
    job_id = deployment.enqueue().job_id
    name = name_for(job_id, 1)
    await job_created(kube, namespace, name)
    await report_step(op, kube, namespace, name, "abstractions")
    await convex_state(deployment, job_id, lambda j: j.get("currentStep") == 1)
    attempts = deployment.job(job_id).get("attempts")

    deployment.emulator.kill()
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

    deployment.emulator.start()
    await status_is(deployment, job_id, "completed", timeout=60)
    assert_documents(deployment, job_id, course)
    assert deployment.job(job_id).get("attempts") == attempts  # never failed for the outage
    assert "Convex reachable again" in op.log_path.read_text()


@BOTH
async def test_an_operator_killed_mid_run_resumes_without_claiming_again(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    op = worker()
    job_id = deployment.enqueue().job_id
    name = name_for(job_id, 1)
    await job_created(kube, namespace, name)
    await report_step(op, kube, namespace, name, "abstractions")
    await report_step(op, kube, namespace, name, "relationships")
    await convex_state(deployment, job_id, lambda j: j.get("currentStep") == 2)
    attempts = deployment.job(job_id).get("attempts")

    op.kill()
    op.start()
    for step_name in STEP_NAMES[2:]:
        await retrying(lambda s=step_name: report_step(op, kube, namespace, name, s))  # type: ignore[misc]
    # Progress goes on from the same claim.
    await convex_state(
        deployment, job_id, lambda j: j.get("progress") == FRENCH_STEPS[5], what="step 6 mirrored"
    )
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    await status_is(deployment, job_id, "completed")
    assert_documents(deployment, job_id, course)

    assert deployment.job(job_id).get("attempts") == attempts
    crs = await kube.list(ANALYSISJOBS, namespace)
    assert [c["metadata"]["name"] for c in crs] == [name]
    jobs = await kube.list(JOBS, namespace)
    assert [j["metadata"]["name"] for j in jobs] == [f"aj-{name}-1"]
    assert "resuming 1 claimed Convex jobs" in op.log_path.read_text()


# ---- Fondation's refusals -------------------------------------------------------


@pytest.mark.parametrize("emulator", ["fondation"], indirect=True)
async def test_jobs_without_prompt_user_or_token_fail_with_fondations_messages(
    kube: KubeClient,
    namespace: str,
    deployment: Deployment,
    worker: BridgeOperators,
) -> None:
    seed = FondationSeed(deployment.emulator)
    no_prompt = deployment.enqueue(prompt=None, token="ghp_plain").job_id
    no_token = deployment.enqueue(without_token=True).job_id
    removed = seed.pending_job("acme/gone", token="ghp_plain")
    seed.remove("users", removed.user_id)
    bad_token = deployment.enqueue(token="enc_v1_00:00:00").job_id
    worker(ENCRYPTION_KEY=ENCRYPTION_KEY.get_secret_value())

    for job_id, message in (
        (no_prompt, fondation.MISSING_PROMPT),
        (no_token, fondation.MISSING_GITHUB_TOKEN),
        (removed.job_id, fondation.MISSING_USER),
        (bad_token, fondation.MISSING_GITHUB_TOKEN),
    ):
        failed = await status_is(deployment, job_id, "failed")
        assert failed["error"].startswith(message), failed["error"]
        assert deployment.logs(job_id)[-1]["msg"] == failed["error"]
    assert await kube.list(ANALYSISJOBS, namespace) == []


# ---- the project's own convex/ ----------------------------------------------------


async def _no_record(kube: KubeClient, namespace: str, name: str) -> bool:
    return f"{namespace}.{name}" not in await claim_records(kube, namespace)


async def test_jobs_that_cannot_run_fail_with_a_reason_and_the_bridge_goes_on(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    deployment = Deployment(emulator)
    bad_url = enqueue(emulator, repositoryUrl="ftp://example.com/acme/widgets.git")
    good = enqueue(emulator)
    op = bridge_operators()

    refused = await status_is(deployment, bad_url, "failed")
    assert "must be an https URL" in refused["error"]

    name = name_for(good, 1)
    await job_created(kube, namespace, name)
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    await status_is(deployment, good, "completed")
    assert_documents(deployment, good, course)
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
    deployment = Deployment(emulator)
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
            jobs = await asyncio.to_thread(lambda: [deployment.job(j) for j in job_ids])
            return all(j["status"] == "completed" for j in jobs)

        await eventually(all_completed, timeout=150, interval=0.5, what="all 50 jobs completed")
    finally:
        runner.cancel()

    jobs = [deployment.job(j) for j in job_ids]
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


def _error_of(job: dict[str, Any]) -> str:
    """What the row says went wrong: `error` once failed, `lastError` while retrying."""
    return " ".join(str(job.get(key) or "") for key in ("error", "lastError"))


async def test_a_claim_too_large_to_record_fails_alone(
    kube: KubeClient,
    namespace: str,
    emulator: ConvexEmulator,
    bridge_operators: BridgeOperators,
) -> None:
    """Claim fields are bounded before they reach the claims Secret: a job
    whose URL is 5 KB fails in Convex naming the field, and the next runs."""
    deployment = Deployment(emulator)
    huge_url = "https://example.com/acme/" + "w" * 5000 + ".git"
    oversized = enqueue(emulator, repositoryUrl=huge_url)
    good = enqueue(emulator)
    op = bridge_operators()

    refused = await convex_state(
        deployment,
        oversized,
        lambda job: "claim cannot be recorded" in _error_of(job),
        what="the oversized claim refused",
    )
    assert "repository_url" in _error_of(refused) and "w" * 100 not in _error_of(refused)
    name = name_for(good, 1)
    await job_created(kube, namespace, name)
    course = course_of(name)
    await run_to_success(op, kube, namespace, name, course)
    await status_is(deployment, good, "completed")
    crs = [c["metadata"]["name"] for c in await kube.list(ANALYSISJOBS, namespace)]
    assert crs == [name]
    claims = await kube.get(SECRETS, CLAIMS_SECRET, OPERATOR_NAMESPACE)
    assert not any(name_for(oversized, 1) in key for key in claims.get("data") or {})

"""Building and driving objects on the test control plane."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import aiohttp

from fondation_contracts import analysisjob as aj
from fondation_contracts.course import Course, Document, DocumentKind
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS, JOBS, PODS

T = TypeVar("T")


class OperatorProcessLike(Protocol):
    @property
    def ingest_url(self) -> str: ...

    def token_for(self, uid: str) -> str: ...


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Await `probe()` until it returns a truthy value, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


def analysisjob(name: str, **spec: Any) -> dict[str, Any]:
    body_spec: dict[str, Any] = {
        "source": {"repository": "https://example.com/acme/widgets.git", "ref": "main"},
        "backend": "offline",
    }
    body_spec.update(spec)
    return {
        "apiVersion": aj.API_VERSION,
        "kind": aj.KIND,
        "metadata": {"name": name},
        "spec": body_spec,
    }


async def create_aj(kube: KubeClient, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return await kube.create(ANALYSISJOBS, analysisjob(name, **spec), namespace)


async def get_aj(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    return await kube.get(ANALYSISJOBS, name, namespace)


async def phase_of(kube: KubeClient, namespace: str, name: str) -> str:
    body = await get_aj(kube, namespace, name)
    return str((body.get("status") or {}).get("phase", ""))


async def wait_phase(
    kube: KubeClient, namespace: str, name: str, phase: str, timeout: float = 30.0
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await get_aj(kube, namespace, name)
        return body if (body.get("status") or {}).get("phase") == phase else None

    return await eventually(probe, timeout=timeout, what=f"{namespace}/{name} phase {phase}")


async def jobs_of(
    kube: KubeClient, namespace: str, name: str | None = None
) -> list[dict[str, Any]]:
    selector = f"{aj.LABEL_ANALYSISJOB}={name}" if name else aj.LABEL_ANALYSISJOB
    return await kube.list(JOBS, namespace, label_selector=selector)


async def pods_of_job(kube: KubeClient, namespace: str, job: str) -> list[dict[str, Any]]:
    return await kube.list(PODS, namespace, label_selector=f"batch.kubernetes.io/job-name={job}")


async def wait_pod(kube: KubeClient, namespace: str, job: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        pods = await pods_of_job(kube, namespace, job)
        return pods[0] if pods else None

    return await eventually(probe, what=f"a pod of Job {job}")


async def finish_pod(
    kube: KubeClient, namespace: str, pod: str, *, exit_code: int, message: str = ""
) -> None:
    """Set a pod's status as a kubelet would when its container exits."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    phase = "Succeeded" if exit_code == 0 else "Failed"
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": now,
        "finishedAt": now,
    }
    if message:
        terminated["message"] = message
    await kube.patch(
        PODS,
        pod,
        {
            "status": {
                "phase": phase,
                "startTime": now,
                "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
                "containerStatuses": [
                    {
                        "name": "runner",
                        "image": "fondation-runner:0.1.0",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        },
        namespace,
        sub="status",
    )


async def finish_job(
    kube: KubeClient, namespace: str, job: str, *, exit_code: int, message: str = ""
) -> None:
    pod = await wait_pod(kube, namespace, job)
    await finish_pod(kube, namespace, pod["metadata"]["name"], exit_code=exit_code, message=message)


def sample_course(analysis: str, chapters: int = 2) -> Course:
    docs = [
        Document.build(
            kind=DocumentKind.YAML,
            slug="step1_abstractions",
            title="Abstractions",
            content='[{"name": "Core"}]',
        ),
    ]
    for i in range(chapters):
        docs.append(
            Document.build(
                kind=DocumentKind.CHAPTER,
                slug=f"chapter-{i + 1:02d}-core",
                title=f"Chapter {i + 1}",
                chapter_index=i,
                content=f"# Chapter {i + 1}\n\nText of {analysis}.\n",
            )
        )
    return Course(analysis=analysis, commit="0" * 40, documents=docs)


async def post_report(
    ingest_url: str,
    namespace: str,
    name: str,
    what: str,
    body: str,
    *,
    token: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """POST to the operator's ingest endpoint as a runner would; (status, text)."""
    url = f"{ingest_url}/v1/namespaces/{namespace}/analysisjobs/{name}/{what}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=body.encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        ) as resp,
    ):
        return resp.status, await resp.text()


async def post_report_in_pieces(
    ingest_url: str,
    namespace: str,
    name: str,
    what: str,
    body: bytes,
    *,
    token: str,
    headers: dict[str, str] | None = None,
    piece: int = 4096,
    pause: float = 0.001,
) -> tuple[int, str]:
    """POST over a raw socket, the body written `piece` bytes at a time with a
    pause after each: what a slow or congested network delivers."""
    host, _, port = ingest_url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = {
            "Host": f"{host}:{port}",
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
            **(headers or {}),
        }
        path = f"/v1/namespaces/{namespace}/analysisjobs/{name}/{what}"
        lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        writer.write("\r\n".join(lines).encode())
        for start in range(0, len(body), piece):
            writer.write(body[start : start + piece])
            await writer.drain()
            await asyncio.sleep(pause)
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.decode(errors="replace").partition("\r\n")
    return int(status_line.split()[1]), rest.partition("\r\n\r\n")[2]


class RetryableReport(Exception):
    """The operator answered 503: it is starting and will know the job shortly."""


async def report_course(
    op: OperatorProcessLike,
    kube: KubeClient,
    namespace: str,
    name: str,
    course: Course | None = None,
) -> None:
    cr = await get_aj(kube, namespace, name)
    body = (course or sample_course(name)).model_dump_json(by_alias=True)
    status, text = await post_report(
        op.ingest_url, namespace, name, "course", body, token=op.token_for(cr["metadata"]["uid"])
    )
    if status == 503:
        raise RetryableReport(text)
    assert status == 201, text


async def succeed_job(
    op: OperatorProcessLike, kube: KubeClient, namespace: str, name: str, job: str
) -> None:
    """What a successful runner does: report its course, then exit 0."""
    await report_course(op, kube, namespace, name)
    await finish_job(kube, namespace, job, exit_code=0)


async def report_step(
    op: OperatorProcessLike,
    kube: KubeClient,
    namespace: str,
    name: str,
    step_name: str,
    state: str = "started",
    message: str = "",
) -> None:
    """POST one progress event as the runner does: `clone` (step 0), then the six steps."""
    from fondation_contracts.ingest import STEP_NAMES, ProgressEvent, StepState

    cr = await get_aj(kube, namespace, name)
    step = 0 if step_name == "clone" else STEP_NAMES.index(step_name) + 1
    event = ProgressEvent(step=step, step_name=step_name, state=StepState(state), message=message)
    status, text = await post_report(
        op.ingest_url,
        namespace,
        name,
        "events",
        event.model_dump_json(by_alias=True),
        token=op.token_for(cr["metadata"]["uid"]),
    )
    if status == 503:
        raise RetryableReport(text)
    assert status == 202, text

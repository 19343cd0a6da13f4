"""The ingest endpoint refuses everything but a well-formed report carrying
the job's own token, and writes nothing when it refuses."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fondation_contracts.course import Course, Document, DocumentKind
from fondation_operator import course_store, names
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import CONFIGMAPS, EVENTS
from tests.cluster.objects import (
    create_aj,
    eventually,
    finish_job,
    get_aj,
    post_report,
    post_report_in_pieces,
    sample_course,
    wait_phase,
)
from tests.cluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

EVENT = {"step": 1, "stepName": "abstractions", "state": "started", "message": "go"}
LIMIT = 64 * 1024
COURSE_MAPS = "fondation.dev/content=course"


async def test_a_leftover_pod_of_an_earlier_attempt_cannot_report(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    cr = await create_aj(kube, namespace, "flaky", retries=1)
    uid = cr["metadata"]["uid"]
    await wait_phase(kube, namespace, "flaky", "Running")
    await finish_job(kube, namespace, names.job_name("flaky", 1), exit_code=1)

    async def second_attempt() -> bool:
        return (await get_aj(kube, namespace, "flaky"))["status"].get("attempt") == 2

    await eventually(second_attempt, what="attempt 2")
    course = sample_course("flaky").model_dump_json(by_alias=True)
    url = operator.ingest_url
    # Attempt 1's pod still runs and reports, with its own valid token: refused.
    status, text = await post_report(
        url, namespace, "flaky", "course", course, token=operator.token_for(uid, 1), attempt=1
    )
    assert status == 409, text
    # Claiming to be attempt 2 does not help without attempt 2's token.
    status, text = await post_report(
        url, namespace, "flaky", "course", course, token=operator.token_for(uid, 1), attempt=2
    )
    assert status == 401, text
    assert await kube.list(CONFIGMAPS, namespace, label_selector=COURSE_MAPS) == []
    # Attempt 2's pod is heard.
    status, text = await post_report(
        url, namespace, "flaky", "course", course, token=operator.token_for(uid, 2), attempt=2
    )
    assert status == 201, text


def _many_documents(count: int) -> bytes:
    return b'{"documents":[' + b",".join([b"{}"] * count) + b"]}"


def _course_with_slug(slug: str) -> str:
    body = json.loads(sample_course("a").model_dump_json(by_alias=True))
    body["documents"][0]["slug"] = slug
    return json.dumps(body)


async def test_refusals_write_nothing(
    kube: KubeClient, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    op = operator_factory(FONDATION_INGEST_MAX_COURSE_BYTES=str(LIMIT))
    a = await create_aj(kube, namespace, "job-a")
    b = await create_aj(kube, namespace, "job-b")
    await wait_phase(kube, namespace, "job-a", "Running")
    await wait_phase(kube, namespace, "job-b", "Running")
    token_a = op.token_for(a["metadata"]["uid"])
    token_b = op.token_for(b["metadata"]["uid"])

    async def settled() -> dict[str, Any] | None:
        body = await get_aj(kube, namespace, "job-a")
        return body if body["status"].get("podName") else None

    before = await eventually(settled, what="the operator to record the pod")
    event = json.dumps(EVENT)
    url = op.ingest_url

    cases: list[tuple[str, tuple[Any, ...], dict[str, Any], int]] = [
        ("no token", (url, namespace, "job-a", "events", event), {"token": ""}, 401),
        ("wrong token", (url, namespace, "job-a", "events", event), {"token": "x" * 43}, 401),
        (
            "another job's token",
            (url, namespace, "job-a", "events", event),
            {"token": token_b},
            401,
        ),
        ("unknown job", (url, namespace, "job-z", "events", event), {"token": token_a}, 401),
        (
            "malformed JSON",
            (url, namespace, "job-a", "events", "{not json"),
            {"token": token_a},
            400,
        ),
        (
            "schema violation",
            (url, namespace, "job-a", "events", json.dumps({**EVENT, "step": 99})),
            {"token": token_a},
            422,
        ),
        (
            "unknown field",
            (url, namespace, "job-a", "events", json.dumps({**EVENT, "shell": "rm -rf /"})),
            {"token": token_a},
            422,
        ),
        (
            "oversized event",
            (url, namespace, "job-a", "events", json.dumps({**EVENT, "message": "x" * 70_000})),
            {"token": token_a},
            413,
        ),
        (
            "oversized course",
            (
                url,
                namespace,
                "job-a",
                "course",
                sample_course("a")
                .model_dump_json(by_alias=True)
                .replace("Text of a.", "y" * (LIMIT + 10)),
            ),
            {"token": token_a},
            413,
        ),
        (
            "path traversal in slug",
            (url, namespace, "job-a", "course", _course_with_slug("../../etc/passwd")),
            {"token": token_a},
            422,
        ),
        (
            "slash in slug",
            (url, namespace, "job-a", "course", _course_with_slug("a/b")),
            {"token": token_a},
            422,
        ),
        (
            "no attempt",
            (url, namespace, "job-a", "events", event),
            {"token": token_a, "attempt": None},
            401,
        ),
        (
            "attempt the token does not prove",
            (url, namespace, "job-a", "events", event),
            {"token": token_a, "attempt": 2},
            401,
        ),
        (
            "a later attempt, not recorded yet",
            (url, namespace, "job-a", "events", event),
            {"token": op.token_for(a["metadata"]["uid"], 7), "attempt": 7},
            503,
        ),
        (
            "gzip bomb",
            (url, namespace, "job-a", "course", ""),
            {"token": token_a, "body_bytes": gzip.compress(b" " * (LIMIT * 50))},
            413,
        ),
        (
            "unknown encoding",
            (url, namespace, "job-a", "course", "{}"),
            {"token": token_a, "headers": {"Content-Encoding": "br"}},
            415,
        ),
        (
            "corrupt gzip",
            (url, namespace, "job-a", "course", ""),
            {"token": token_a, "body_bytes": b"\x1f\x8b" + b"x" * 100},
            400,
        ),
        (
            "a million empty documents",
            (url, namespace, "job-a", "course", ""),
            {"token": token_a, "body_bytes": gzip.compress(_many_documents(1_000_000))},
            413,
        ),
    ]
    for case, args, kwargs, expected in cases:
        status, text = await post_report(*args, **kwargs)
        assert status == expected, f"{case}: {status} {text}"
        assert token_a not in text and token_b not in text

    after = await get_aj(kube, namespace, "job-a")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "progress" not in after["status"]
    assert (
        await kube.list(CONFIGMAPS, namespace, label_selector="fondation.dev/content=course") == []
    )

    # The same report with the right token is accepted and recorded.
    status, _ = await post_report(
        url,
        namespace,
        "job-a",
        "events",
        event,
        token=token_a,
        headers={"X-Fondation-Attempt": "1"},
    )
    assert status == 202
    progress = (await get_aj(kube, namespace, "job-a"))["status"]["progress"]
    assert progress["label"] == "1/6 abstractions"


def _course_of_size(analysis: str, size: int) -> Course:
    """A course of about `size` bytes of JSON, in chapters of at most 200 KB."""
    paragraph = "The parser reads a token, then decides what the next rule is. " * 3 + "\n\n"
    docs: list[Document] = []
    remaining, index = size, 0
    while remaining > 0:
        repeat = min(remaining, 200_000) // len(paragraph)
        text = f"# Chapter {index + 1}\n\n" + paragraph * repeat
        docs.append(
            Document.build(
                kind=DocumentKind.CHAPTER,
                slug=f"chapter-{index + 1:02d}",
                title=f"Chapter {index + 1}",
                chapter_index=index,
                content=text,
            )
        )
        remaining -= len(text)
        index += 1
    return Course(analysis=analysis, commit="a" * 40, documents=docs)


@pytest.mark.parametrize(("size", "piece"), [(1_000_000, 4096), (8_000_000, 32_768)])
async def test_a_course_split_by_the_network_arrives_whole(
    kube: KubeClient, namespace: str, operator: OperatorProcess, size: int, piece: int
) -> None:
    cr = await create_aj(kube, namespace, "big")
    await wait_phase(kube, namespace, "big", "Running")
    course = _course_of_size("big", size)
    body = course.model_dump_json(by_alias=True).encode()
    assert len(body) >= size

    status, text = await post_report_in_pieces(
        operator.ingest_url,
        namespace,
        "big",
        "course",
        body,
        token=operator.token_for(cr["metadata"]["uid"]),
        headers={"X-Fondation-Attempt": "1"},
        piece=piece,
    )

    assert status == 201, text
    stored = await course_store.load(kube, namespace, "big")
    assert stored.model_dump_json(by_alias=True).encode() == body


def _gzip_stream(parts: list[tuple[bytes, int]]) -> bytes:
    """gzip of each `piece * count` in turn, without holding the plain text."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    out = bytearray()
    for piece, count in parts:
        for _ in range(count):
            out += packer.compress(piece)
    out += packer.flush()
    return bytes(out)


def _vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory figure, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


RSS_BUDGET = 256 * 1024 * 1024
"""Half the chart's memory limit (512Mi) for the whole operator, attacked."""


async def test_hostile_uploads_leave_the_operator_healthy(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    cr = await create_aj(kube, namespace, "target")
    await wait_phase(kube, namespace, "target", "Running")
    token = operator.token_for(cr["metadata"]["uid"])
    mb = 1024 * 1024
    hostile = [
        # 91 KB-style gzip bombs: 200 MB of JSON whitespace.
        *[_gzip_stream([(b'{"documents":[', 1), (b" " * mb, 200)])] * 4,
        # Within the size cap, but millions of values: 16 MB of `{}`.
        *[_gzip_stream([(b'{"documents":[{}', 1), (b",{}" * (mb // 3), 5)])] * 3,
        # Within the cap, one object with a million keys.
        *[
            _gzip_stream(
                [(b'{"analysis":"x"', 1), *[(b',"k%d":1' % i, 1) for i in range(1_000_000)]]
            )
        ]
        * 3,
    ]
    assert len(hostile) == 10 and all(len(body) < 4 * mb for body in hostile)
    pid = operator.popen.pid if operator.popen else 0
    rss_before = _vm(pid, "VmRSS")
    latencies: list[float] = []
    done = threading.Event()

    def probe_health() -> None:
        # In a thread of its own: the test's event loop is busy sending.
        while not done.is_set():
            started = time.monotonic()
            assert operator.probe("/healthz") == 200
            latencies.append(time.monotonic() - started)
            done.wait(0.05)

    async def upload(body: bytes) -> int:
        # As a runner would: 503 (busy) means come back later.
        deadline = time.monotonic() + 120
        while True:
            status, _ = await post_report(
                operator.ingest_url, namespace, "target", "course", "", token=token, body_bytes=body
            )
            if status != 503 or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.2)

    health = asyncio.create_task(asyncio.to_thread(probe_health))
    started = time.monotonic()
    try:
        statuses = await asyncio.gather(*(upload(body) for body in hostile))
    finally:
        done.set()
        await health
    elapsed = time.monotonic() - started
    peak = _vm(pid, "VmHWM")

    print(
        f"\n10 hostile uploads in {elapsed:.1f}s: statuses {statuses}; operator RSS "
        f"{rss_before / mb:.0f} MB before, peak {peak / mb:.0f} MB; /healthz "
        f"{len(latencies)} probes, max {max(latencies) * 1000:.0f} ms"
    )
    assert statuses == [413] * 10
    assert peak < RSS_BUDGET
    assert max(latencies) < 1.0
    assert (
        await kube.list(CONFIGMAPS, namespace, label_selector="fondation.dev/content=course") == []
    )


async def _closed_by_the_server(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """What the server sent before closing the connection, and when it closed it."""
    try:
        answer = await reader.read()
    except ConnectionError:
        answer = b""
    return answer, time.monotonic()


async def test_idle_and_slow_connections_are_not_held(
    kube: KubeClient, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    op = operator_factory(
        FONDATION_INGEST_HEADER_TIMEOUT_SECONDS="2",
        FONDATION_INGEST_BODY_TIMEOUT_SECONDS="3",
        FONDATION_INGEST_MAX_CONNECTIONS_PER_PEER="32",
    )
    cr = await create_aj(kube, namespace, "target")
    await wait_phase(kube, namespace, "target", "Running")
    token = op.token_for(cr["metadata"]["uid"])
    host, port = "127.0.0.1", op.ingest_port

    # 3,000 connections that never say anything, and one that sends its
    # headers a byte at a time, slower than the header timeout.
    started = time.monotonic()
    slow_reader, slow_writer = await asyncio.open_connection(host, port)
    idle, opened, watching = [], [], []
    for _ in range(3_000):
        idle.append(await asyncio.open_connection(host, port))
        opened.append(time.monotonic())
        watching.append(asyncio.create_task(_closed_by_the_server(idle[-1][0])))

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in b"POST /v1/namespaces/x/analysisjobs/y/events HTTP/1.1\r\n":
                slow_writer.write(bytes([byte]))
                await slow_writer.drain()
                await asyncio.sleep(0.5)

    dribbling = asyncio.create_task(dribble())
    closed = await asyncio.wait_for(asyncio.gather(*watching), timeout=30)
    slow_answer, slow_closed = await asyncio.wait_for(
        _closed_by_the_server(slow_reader), timeout=30
    )
    dribbling.cancel()
    for _, writer in [*idle, (slow_reader, slow_writer)]:
        writer.close()
    held = sorted(at - since for (_, at), since in zip(closed, opened, strict=True))
    print(
        f"\n3,000 idle connections: {sum(1 for t in held if t < 1.0)} refused at once, "
        f"the last closed after {held[-1]:.1f}s; slow headers closed after "
        f"{slow_closed - started:.1f}s"
    )
    assert all(answer == b"" for answer, _ in closed)  # closed, nothing served
    # Beyond the per-peer limit, refused at once (a few more are let in as the
    # held ones time out while the test is still opening connections).
    assert sum(1 for t in held if t < 1.0) >= 2_500
    assert held[-1] < 15 and slow_answer == b"" and slow_closed - started < 15

    # A body that never ends is answered 408 (the runner retries that).
    body_reader, body_writer = await asyncio.open_connection(host, port)
    body_writer.write(
        (
            f"POST /v1/namespaces/{namespace}/analysisjobs/target/events HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {token}\r\nX-Fondation-Attempt: 1\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        ).encode()
    )
    body_answer, _ = await asyncio.wait_for(_closed_by_the_server(body_reader), timeout=30)
    body_writer.close()
    assert body_answer.startswith(b"HTTP/1.1 408"), body_answer

    # The endpoint still serves a well-behaved runner.
    status, text = await post_report(
        op.ingest_url, namespace, "target", "events", json.dumps(EVENT), token=token
    )
    assert status == 202, text


async def test_escapes_in_progress_messages_reach_neither_status_nor_events(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    cr = await create_aj(kube, namespace, "noisy")
    await wait_phase(kube, namespace, "noisy", "Running")
    hostile = {
        **EVENT,
        "message": "\x1b[2J\x1b]0;owned\x07\x1b[31mred\x1b[0m\x00 and \u202etxet\r\nnext",
    }
    status, text = await post_report(
        operator.ingest_url,
        namespace,
        "noisy",
        "events",
        json.dumps(hostile),
        token=operator.token_for(cr["metadata"]["uid"]),
    )
    assert status == 202, text

    async def recorded() -> list[str]:
        events = await kube.list(EVENTS, namespace)
        return [e["message"] for e in events if "abstractions started" in e["message"]]

    [message] = await eventually(recorded, what="the progress Event")
    progress = (await get_aj(kube, namespace, "noisy"))["status"]["progress"]["message"]
    for shown in (message, progress):
        assert "red and txet" in shown
        assert not any(c in shown for c in "\x1b\x00\x07\u202e\r")

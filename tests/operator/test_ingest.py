"""The ingest endpoint refuses everything but a well-formed report carrying
the job's own token, and writes nothing when it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fondation_contracts.course import Course, Document, DocumentKind
from fondation_operator import course_store
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import CONFIGMAPS
from tests.cluster.objects import (
    create_aj,
    eventually,
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
            "stale attempt",
            (url, namespace, "job-a", "events", event),
            {"token": token_a, "headers": {"X-Fondation-Attempt": "7"}},
            409,
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

"""Courses larger than one ConfigMap are split, and read back byte for byte."""

from __future__ import annotations

import pytest

from fondation_contracts.course import Course, Document, DocumentKind
from fondation_operator import course_store
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import CONFIGMAPS
from fondation_operator.observed import ObservedAnalysisJob
from tests.cluster.objects import create_aj


def _course(sizes: list[int]) -> Course:
    docs = [
        Document.build(
            kind=DocumentKind.CHAPTER,
            slug=f"chapter-{i:02d}",
            title=f"C{i}",
            chapter_index=i,
            content=(f"# C{i}\n" + "é" * (size // 2)),
            source_path=f"chapters/{i:02d}_c.md",
        )
        for i, size in enumerate(sizes)
    ]
    return Course(analysis="big", commit="a" * 40, documents=docs, partial=True)


def test_packing_is_deterministic_and_bounded() -> None:
    chunks, stored = course_store._pack("big", _course([600_000] * 4).documents)
    again = course_store._pack("big", _course([600_000] * 4).documents)
    assert (chunks, stored) == again
    assert len(chunks) == 4  # two 600 KB documents never share a 900 KiB ConfigMap
    for chunk in chunks:
        assert sum(len(v.encode()) for v in chunk.values()) <= course_store.CHUNK_LIMIT


def test_a_document_too_large_for_any_configmap_is_refused() -> None:
    with pytest.raises(course_store.CourseTooLarge):
        course_store._pack("big", _course([2_000_000]).documents)


@pytest.mark.cluster
async def test_save_and_load_round_trip(kube: KubeClient, namespace: str) -> None:
    body = await create_aj(kube, namespace, "big")
    cr = ObservedAnalysisJob.from_body(body)
    course = _course([600_000, 300_000, 200_000, 10, 700_000])
    names = await course_store.save(kube, cr, course)
    # 600+300 KB share one ConfigMap, 200 KB + 10 B + 700 KB the next: manifest + 2.
    assert names[0] == "aj-big-course-0" and len(names) == 3
    # Writing again (a retried report) changes nothing.
    assert await course_store.save(kube, cr, course) == names
    loaded = await course_store.load(kube, namespace, "big")
    assert loaded == course
    maps = await kube.list(CONFIGMAPS, namespace, label_selector="fondation.dev/content=course")
    assert sorted(m["metadata"]["name"] for m in maps) == sorted(names)
    # A tampered content is detected, not served.
    await kube.patch(CONFIGMAPS, names[1], {"data": {"chapter-00": "tampered"}}, namespace)
    with pytest.raises(course_store.CourseUnavailable, match="sha256"):
        await course_store.load(kube, namespace, "big")

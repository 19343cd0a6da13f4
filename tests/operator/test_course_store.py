"""Courses larger than one ConfigMap are split, read back byte for byte, and
replaced atomically: a course that cannot be stored never destroys the
previous one."""

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


async def _analysisjob(kube: KubeClient, namespace: str) -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(await create_aj(kube, namespace, "big"))


async def _versions(kube: KubeClient, namespace: str) -> dict[str, str]:
    """Each ConfigMap's resourceVersion: what changes when anything is written."""
    return {
        m["metadata"]["name"]: m["metadata"]["resourceVersion"]
        for m in await kube.list(CONFIGMAPS, namespace)
    }


def test_packing_is_deterministic_and_bounded() -> None:
    chunks, where = course_store._pack(_course([600_000] * 4).documents)
    again = course_store._pack(_course([600_000] * 4).documents)
    assert (chunks, where) == again
    assert len(chunks) == 4  # two 600 KB documents never share a 900 KiB ConfigMap
    for chunk in chunks:
        assert sum(len(v.encode()) for v in chunk.values()) <= course_store.CHUNK_LIMIT


def test_a_document_too_large_for_any_configmap_is_refused() -> None:
    with pytest.raises(course_store.CourseTooLarge):
        course_store._pack(_course([1_400_000]).documents)


@pytest.mark.cluster
async def test_save_and_load_round_trip(kube: KubeClient, namespace: str) -> None:
    cr = await _analysisjob(kube, namespace)
    course = _course([600_000, 300_000, 200_000, 10, 700_000])
    names = await course_store.save(kube, cr, course)
    # 600+300 KB share one ConfigMap, 200 KB + 10 B + 700 KB the next: manifest + 2.
    assert names[0] == "aj-big-course-0" and len(names) == 3
    assert all(n.startswith("aj-big-course-") for n in names[1:])
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


def _course_with_huge_manifest() -> Course:
    """Small contents, but more metadata than one ConfigMap holds: many
    documents with long source paths, and a 3 MB commit string as the runner
    might have been tricked into sending (the model refuses it at the
    boundary, so it is forced in with model_construct, as a bug would)."""
    docs = [
        Document.build(
            kind=DocumentKind.CHAPTER,
            slug=f"chapter-{i:03d}",
            title="T" * 500,
            chapter_index=i,
            content=f"# C{i}\n",
            source_path="chapters/" + "d/" * 500 + f"{i}.md",
        )
        for i in range(400)
    ]
    return Course.model_construct(
        analysis="big", commit="a" * 3_000_000, language="en", documents=docs, errors=[]
    )


@pytest.mark.cluster
async def test_a_course_that_cannot_be_stored_leaves_the_previous_one(
    kube: KubeClient, namespace: str
) -> None:
    cr = await _analysisjob(kube, namespace)
    first = _course([600_000, 10])
    await course_store.save(kube, cr, first)
    before = await _versions(kube, namespace)

    for too_large in (_course_with_huge_manifest(), _course([10, 1_400_000])):
        with pytest.raises(course_store.CourseTooLarge):
            await course_store.save(kube, cr, too_large)

    after = await _versions(kube, namespace)
    assert after == before  # nothing written, nothing deleted
    assert await course_store.load(kube, namespace, "big") == first


@pytest.mark.cluster
async def test_a_new_course_is_switched_in_and_the_old_one_collected(
    kube: KubeClient, namespace: str
) -> None:
    cr = await _analysisjob(kube, namespace)
    first, second = _course([600_000, 600_000]), _course([10, 20, 30])
    first_names = await course_store.save(kube, cr, first)
    second_names = await course_store.save(kube, cr, second)
    assert first_names[0] == second_names[0]  # the manifest is the switch
    assert not set(first_names[1:]) & set(second_names[1:])
    assert await course_store.load(kube, namespace, "big") == second
    maps = await kube.list(CONFIGMAPS, namespace, label_selector="fondation.dev/content=course")
    assert sorted(m["metadata"]["name"] for m in maps) == sorted(second_names)


@pytest.mark.cluster
async def test_a_reader_sees_the_old_course_until_the_switch(
    kube: KubeClient, namespace: str
) -> None:
    cr = await _analysisjob(kube, namespace)
    first, second = _course([600_000, 600_000]), _course([500_000, 30])
    await course_store.save(kube, cr, first)
    # The new generation's contents are written before the manifest: a reader
    # in between still gets the first course, whole.
    chunks, _ = course_store._pack(second.documents)
    real_apply = course_store._apply
    seen: list[Course] = []

    async def apply_then_read(client: KubeClient, obj: dict[str, object]) -> None:
        await real_apply(client, obj)
        seen.append(await course_store.load(kube, namespace, "big"))

    course_store._apply = apply_then_read  # type: ignore[assignment]
    try:
        await course_store.save(kube, cr, second)
    finally:
        course_store._apply = real_apply  # type: ignore[assignment]
    assert seen[: len(chunks)] == [first] * len(chunks)
    assert seen[-1] == second
    assert await course_store.load(kube, namespace, "big") == second

"""Courses kept in ConfigMaps owned by their AnalysisJob.

A course is too big for status (etcd caps an object at ~1.5 MiB), so its
documents are packed into ConfigMaps of at most ~900 KiB each, plus one
manifest (the Course without contents, and where each content lives).

Replacing a course is atomic: the contents of a new course go under new
names (a generation: a hash of the course, so a rewrite after a crash
produces the same objects), the manifest, always under the same name, is
written last and switches readers to the new generation at once, and only
then are the older generations deleted. Everything is sized before the
first write: a course that cannot be stored (a document or the manifest
over the limit) is refused with nothing written, and the previous course
stays readable throughout. A reader that finds a generation gone under it
reads the manifest again.

Deleting the AnalysisJob deletes the ConfigMaps through their owner reference.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fondation_contracts.analysisjob import LABEL_ANALYSISJOB
from fondation_contracts.course import Course, Document
from fondation_operator import jobbuilder, names
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import NotFound
from fondation_operator.kube.resources import CONFIGMAPS
from fondation_operator.observed import ObservedAnalysisJob

CHUNK_LIMIT = 900 * 1024
MANIFEST_LIMIT = 900 * 1024
MANIFEST_KEY = "course.json"
FIELD_MANAGER = "fondation-operator"
LABEL_CONTENT = "fondation.dev/content"
LABEL_GENERATION = "fondation.dev/course-generation"
LOAD_ATTEMPTS = 3


class CourseTooLarge(ValueError):
    pass


class StoredDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    document: dict[str, Any]
    config_map: str = Field(alias="configMap")
    key: str


class Manifest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    course: dict[str, Any]
    documents: list[StoredDocument]
    config_maps: list[str] = Field(alias="configMaps")


def _pack(documents: list[Document]) -> tuple[list[dict[str, str]], list[int]]:
    """First-fit in document order: deterministic, so a rewrite is identical.
    Returns the chunks and, per document, the index of its chunk."""
    chunks: list[dict[str, str]] = []
    sizes: list[int] = []
    where: list[int] = []
    for doc in documents:
        size = len(doc.content.encode()) + len(doc.slug) + 64
        if size > CHUNK_LIMIT:
            raise CourseTooLarge(f"document {doc.slug!r} is {size} bytes, over {CHUNK_LIMIT}")
        if not chunks or sizes[-1] + size > CHUNK_LIMIT:
            chunks.append({})
            sizes.append(0)
        chunks[-1][doc.slug] = doc.content
        sizes[-1] += size
        where.append(len(chunks) - 1)
    return chunks, where


def _generation(course: dict[str, Any], documents: list[dict[str, Any]]) -> str:
    """A name for this course's contents: the same course, the same names."""
    text = json.dumps([course, documents], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _config_map(
    cr: ObservedAnalysisJob, name: str, data: dict[str, str], generation: str = ""
) -> dict[str, Any]:
    labels = {**jobbuilder.labels(cr), LABEL_CONTENT: "course"}
    if generation:
        labels[LABEL_GENERATION] = generation
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": cr.namespace,
            "labels": labels,
            "ownerReferences": [jobbuilder.owner_reference(cr)],
        },
        "data": data,
    }


async def _apply(client: KubeClient, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    await client.request(
        "PATCH",
        CONFIGMAPS.path(meta["namespace"], meta["name"]),
        body=body,
        params={"fieldManager": FIELD_MANAGER, "force": "true"},
        content_type="application/apply-patch+yaml",
    )


async def save(client: KubeClient, cr: ObservedAnalysisJob, course: Course) -> list[str]:
    """Write the course and switch to it; returns the ConfigMap names, manifest first.

    Raises CourseTooLarge, having written nothing, when it cannot be stored."""
    chunks, where = _pack(course.documents)
    summary = course.model_dump(by_alias=True, exclude={"documents"})
    metas = [d.model_dump(by_alias=True, exclude={"content"}) for d in course.documents]
    generation = _generation(summary, metas)
    content_maps = [
        names.result_configmap_name(cr.name, i + 1, generation) for i in range(len(chunks))
    ]
    manifest = Manifest(
        course=summary,
        documents=[
            StoredDocument(document=meta, config_map=content_maps[chunk], key=doc.slug)
            for meta, chunk, doc in zip(metas, where, course.documents, strict=True)
        ],
        config_maps=content_maps,
    ).model_dump_json(by_alias=True)
    if len(manifest.encode()) > MANIFEST_LIMIT:
        raise CourseTooLarge(
            f"the course's manifest (everything but the contents: {len(course.documents)} "
            f"documents, {len(course.errors)} errors) is {len(manifest.encode())} bytes, "
            f"over {MANIFEST_LIMIT}"
        )
    for name, data in zip(content_maps, chunks, strict=True):
        await _apply(client, _config_map(cr, name, data, generation))
    manifest_name = names.result_configmap_name(cr.name, 0)
    await _apply(client, _config_map(cr, manifest_name, {MANIFEST_KEY: manifest}))
    await _collect(client, cr, generation)
    return [manifest_name, *content_maps]


async def _collect(client: KubeClient, cr: ObservedAnalysisJob, current: str) -> None:
    """Delete the contents of generations older than `current` (and leftovers of
    a save that crashed before its switch)."""
    selector = f"{LABEL_ANALYSISJOB}={names.label_value(cr.name)},{LABEL_GENERATION}!={current}"
    for stale in await client.list(CONFIGMAPS, cr.namespace, label_selector=selector):
        labels = stale["metadata"].get("labels") or {}
        if not labels.get(LABEL_GENERATION):
            continue  # the manifest has no generation: never collected
        with contextlib.suppress(NotFound):
            await client.delete(CONFIGMAPS, stale["metadata"]["name"], cr.namespace)


class CourseUnavailable(LookupError):
    pass


async def load(client: KubeClient, namespace: str, analysis: str) -> Course:
    """Rebuild the Course of an AnalysisJob from its ConfigMaps, checking every hash."""
    for _ in range(LOAD_ATTEMPTS - 1):
        try:
            return await _load_once(client, namespace, analysis)
        except _Switched:
            continue  # a new course was switched in while reading: read that one
    try:
        return await _load_once(client, namespace, analysis)
    except _Switched as exc:
        raise CourseUnavailable(str(exc)) from None


class _Switched(Exception):
    pass


async def _load_once(client: KubeClient, namespace: str, analysis: str) -> Course:
    manifest_cm = await client.get(CONFIGMAPS, names.result_configmap_name(analysis, 0), namespace)
    manifest = Manifest.model_validate_json((manifest_cm.get("data") or {})[MANIFEST_KEY])
    contents: dict[str, dict[str, str]] = {}
    for name in manifest.config_maps:
        try:
            contents[name] = (await client.get(CONFIGMAPS, name, namespace)).get("data") or {}
        except NotFound:
            raise _Switched(f"{name} is missing") from None
    documents = []
    for entry in manifest.documents:
        content = contents.get(entry.config_map, {}).get(entry.key)
        if content is None:
            raise CourseUnavailable(f"{entry.config_map}/{entry.key} is missing")
        doc = Document.model_validate({**entry.document, "content": content})
        if hashlib.sha256(content.encode()).hexdigest() != doc.sha256:
            raise CourseUnavailable(f"{entry.key}: content does not match its sha256")
        documents.append(doc)
    return Course.model_validate(
        {
            **manifest.course,
            "documents": [json.loads(d.model_dump_json(by_alias=True)) for d in documents],
        }
    )

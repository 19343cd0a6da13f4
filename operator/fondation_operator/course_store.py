"""Courses kept in ConfigMaps owned by their AnalysisJob.

A course is too big for status (etcd caps an object at ~1.5 MiB), so its
documents are packed into ConfigMaps of at most ~900 KiB each, plus one
manifest (the Course without contents, and where each content lives). The
manifest is written last: a course whose manifest exists is complete, and
rewriting after a crash produces the same objects (server-side apply).

Deleting the AnalysisJob deletes the ConfigMaps through their owner reference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fondation_contracts.course import Course, Document
from fondation_operator import jobbuilder, names
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import CONFIGMAPS
from fondation_operator.observed import ObservedAnalysisJob

CHUNK_LIMIT = 900 * 1024
MANIFEST_KEY = "course.json"
FIELD_MANAGER = "fondation-operator"


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


def _pack(
    cr_name: str, documents: list[Document]
) -> tuple[list[dict[str, str]], list[StoredDocument]]:
    """First-fit in document order: deterministic, so a rewrite is identical."""
    chunks: list[dict[str, str]] = []
    sizes: list[int] = []
    stored: list[StoredDocument] = []
    for doc in documents:
        size = len(doc.content.encode()) + len(doc.slug) + 64
        if size > CHUNK_LIMIT:
            raise CourseTooLarge(f"document {doc.slug!r} is {size} bytes, over {CHUNK_LIMIT}")
        if not chunks or sizes[-1] + size > CHUNK_LIMIT:
            chunks.append({})
            sizes.append(0)
        chunks[-1][doc.slug] = doc.content
        sizes[-1] += size
        meta = doc.model_dump(by_alias=True, exclude={"content"})
        stored.append(
            StoredDocument(
                document=meta,
                config_map=names.result_configmap_name(cr_name, len(chunks)),
                key=doc.slug,
            )
        )
    return chunks, stored


def _config_map(cr: ObservedAnalysisJob, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": cr.namespace,
            "labels": {**jobbuilder.labels(cr), "fondation.dev/content": "course"},
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
    """Write the course; returns the ConfigMap names, manifest first."""
    chunks, stored = _pack(cr.name, course.documents)
    content_maps = [names.result_configmap_name(cr.name, i + 1) for i in range(len(chunks))]
    manifest_name = names.result_configmap_name(cr.name, 0)
    for name, data in zip(content_maps, chunks, strict=True):
        await _apply(client, _config_map(cr, name, data))
    manifest = Manifest(
        course=course.model_dump(by_alias=True, exclude={"documents"}),
        documents=stored,
        config_maps=content_maps,
    )
    await _apply(
        client,
        _config_map(cr, manifest_name, {MANIFEST_KEY: manifest.model_dump_json(by_alias=True)}),
    )
    return [manifest_name, *content_maps]


class CourseUnavailable(LookupError):
    pass


async def load(client: KubeClient, namespace: str, analysis: str) -> Course:
    """Rebuild the Course of an AnalysisJob from its ConfigMaps, checking every hash."""
    manifest_cm = await client.get(CONFIGMAPS, names.result_configmap_name(analysis, 0), namespace)
    manifest = Manifest.model_validate_json((manifest_cm.get("data") or {})[MANIFEST_KEY])
    contents: dict[str, dict[str, str]] = {}
    for name in manifest.config_maps:
        contents[name] = (await client.get(CONFIGMAPS, name, namespace)).get("data") or {}
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

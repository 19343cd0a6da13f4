"""A course, as the Convex `docs` functions take it.

The runner's documents already have the shape of Fondation's `docs` table
(DESIGN section 5: kind, slug, title, chapterIndex), so nothing is renamed
or re-derived here: a document goes to Convex exactly as the runner parsed
it. What this module adds is what the upload needs around the documents:
the summary the UI shows, the result `jobs:complete` stores, and the split
of a big course into calls that stay under the functions' limits.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from fondation_contracts.course import Course, Document, DocumentKind
from fondation_operator.convexbridge.models import DocFile, DocsSummary, JobResult

MAX_FILES_PER_CALL = 100
"""convex/lib/limits.ts MAX_FILES_PER_CALL."""
MAX_CONTENT_BYTES_PER_CALL = 7 * 1024 * 1024
"""Under MAX_CONTENT_BYTES_PER_CALL (8 MiB) with room for titles and the envelope."""


def doc_file(document: Document, *, extended: bool) -> DocFile:
    """One upload entry. `sha256`/`sourcePath` only where the functions know them:
    Fondation's original validator refuses fields it does not list."""
    return DocFile(
        slug=document.slug,
        title=document.title,
        chapter_index=document.chapter_index,
        content=document.content,
        kind=document.kind.value,
        sha256=document.sha256 if extended else None,
        source_path=(document.source_path or None) if extended else None,
    )


def files_of(course: Course, *, extended: bool) -> list[DocFile]:
    return [doc_file(d, extended=extended) for d in course.documents]


def summary_of(course: Course, generated_at_ms: int) -> DocsSummary:
    """Counts as the UI shows them: reviewed chapters are not extra chapters."""
    tutorials = sum(1 for d in course.documents if d.kind is DocumentKind.TUTORIAL)
    return DocsSummary(
        chapters_count=len(course.chapters),
        tutorials_count=tutorials,
        generated_at=generated_at_ms,
    )


def result_of(course: Course) -> JobResult:
    chapters = len(course.chapters)
    message = f"{len(course.documents)} documents, {chapters} chapters" + (
        f" (partial: {len(course.errors)} errors)" if course.partial else ""
    )
    return JobResult(
        success=True,
        message=message,
        commit=course.commit or None,
        documents=len(course.documents),
        chapters=chapters,
        partial=course.partial,
        cost_usd=round(course.usage.cost_usd, 6),
        input_tokens=course.usage.input_tokens,
        output_tokens=course.usage.output_tokens,
    )


def batches(
    files: list[DocFile],
    *,
    max_files: int = MAX_FILES_PER_CALL,
    max_bytes: int = MAX_CONTENT_BYTES_PER_CALL,
) -> Iterator[list[DocFile]]:
    """Consecutive slices within both limits, in course order (deterministic, so
    a re-sent batch after an outage is the same batch). A single document over
    `max_bytes` travels alone and Convex refuses it by name."""
    batch: list[DocFile] = []
    size = 0
    for file in files:
        weight = len(file.content.encode())
        if batch and (len(batch) >= max_files or size + weight > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += weight
    if batch:
        yield batch


def epoch_ms(timestamp: str) -> int | None:
    """`2026-01-02T03:04:05Z` -> milliseconds since the epoch; None if unparsable."""
    try:
        parsed = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp() * 1000)

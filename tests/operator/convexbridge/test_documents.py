"""A course as Convex's docs functions take it (DESIGN section 5)."""

from __future__ import annotations

import pytest

from fondation_contracts.course import Course, Document, DocumentKind, Usage
from fondation_operator.convexbridge import documents
from fondation_operator.convexbridge.models import DocFile, UpsertDocumentsArgs


def course() -> Course:
    docs = [
        Document.build(
            kind=DocumentKind.YAML, slug="step1_abstractions", title="Abstractions", content="[]"
        ),
        Document.build(
            kind=DocumentKind.YAML, slug="step3_order", title="Chapter Order", content="{}"
        ),
        # Step-3 order, not file-name order: chapter_10 is the first chapter.
        Document.build(
            kind=DocumentKind.CHAPTER,
            slug="chapter_10",
            title="Core",
            chapter_index=0,
            content="# Core\n",
            source_path="chapters/chapter_10.md",
        ),
        Document.build(
            kind=DocumentKind.CHAPTER,
            slug="chapter_2",
            title="Edges",
            chapter_index=1,
            content="# Edges\n",
        ),
        Document.build(
            kind=DocumentKind.CHAPTER,
            slug="reviewed-chapter_10",
            title="Reviewed: Core",
            chapter_index=0,
            content="# Core\n",
        ),
        Document.build(
            kind=DocumentKind.TUTORIAL,
            slug="tutorial-index",
            title="Tutorial: Widgets",
            content="# Widgets\n",
        ),
    ]
    return Course(
        analysis="a",
        commit="c" * 40,
        documents=docs,
        usage=Usage(input_tokens=10, output_tokens=20, cost_usd=0.1234567),
    )


def test_files_keep_kind_slug_title_and_chapter_index() -> None:
    files = documents.files_of(course(), extended=True)
    assert [(f.kind, f.slug, f.title, f.chapter_index) for f in files] == [
        ("yaml", "step1_abstractions", "Abstractions", -1),
        ("yaml", "step3_order", "Chapter Order", -1),
        ("chapter", "chapter_10", "Core", 0),
        ("chapter", "chapter_2", "Edges", 1),
        ("chapter", "reviewed-chapter_10", "Reviewed: Core", 0),
        ("tutorial", "tutorial-index", "Tutorial: Widgets", -1),
    ]
    assert files[2].sha256 == course().documents[2].sha256
    assert files[2].source_path == "chapters/chapter_10.md"
    assert files[3].source_path is None


def test_the_original_contract_gets_only_its_five_fields() -> None:
    """Fondation's validator refuses any field it does not list."""
    files = documents.files_of(course(), extended=False)
    summary = documents.summary_of(course(), 1_700_000_000_000)
    wire = UpsertDocumentsArgs(
        job_id="j", repository_id="r", run_id="run", files=files, summary=summary
    ).wire()
    assert set(wire) == {"jobId", "repositoryId", "runId", "files", "summary"}
    assert all(
        set(f) == {"slug", "title", "chapterIndex", "content", "kind"} for f in wire["files"]
    )


def test_summary_counts_chapters_once_and_tutorials() -> None:
    summary = documents.summary_of(course(), 123)
    assert summary.model_dump(by_alias=True) == {
        "chaptersCount": 2,
        "tutorialsCount": 1,
        "generatedAt": 123,
    }


def test_result_summarises_the_course() -> None:
    result = documents.result_of(course())
    assert result.success is True
    assert (result.documents, result.chapters, result.partial) == (6, 2, False)
    assert result.commit == "c" * 40
    assert result.cost_usd == pytest.approx(0.123457)
    assert result.message == "6 documents, 2 chapters"


def _file(slug: str, size: int) -> DocFile:
    return DocFile(slug=slug, title=slug, content="x" * size, kind="chapter")


def test_batches_respect_both_limits_in_order() -> None:
    files = [_file(f"d{i:03d}", 10) for i in range(250)]
    sizes = [len(b) for b in documents.batches(files)]
    assert sizes == [100, 100, 50]
    big = [_file("a", 600), _file("b", 500), _file("c", 100), _file("d", 2000)]
    split = [[f.slug for f in b] for b in documents.batches(big, max_bytes=1000)]
    assert split == [["a"], ["b", "c"], ["d"]]
    assert [f.slug for b in documents.batches(files) for f in b] == [f.slug for f in files]
    assert list(documents.batches([])) == []


def test_epoch_ms() -> None:
    assert documents.epoch_ms("1970-01-01T00:00:01Z") == 1000
    assert documents.epoch_ms("") is None

"""The Course contract is bounded: what crosses the ingest boundary cannot
make a reader build millions of objects or store unbounded strings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from fondation_contracts.course import (
    MAX_DOCUMENTS,
    MAX_ERRORS,
    MAX_MESSAGE_CHARS,
    Course,
    CourseError,
    Document,
    DocumentKind,
    bounded_errors,
)


def _document(i: int) -> dict[str, object]:
    doc = Document.build(kind=DocumentKind.CHAPTER, slug=f"c{i}", title="T", content="x")
    return json.loads(doc.model_dump_json(by_alias=True))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"documents": [_document(i) for i in range(MAX_DOCUMENTS + 1)]}, "documents"),
        ({"documents": [{}] * 100_000}, "documents"),
        ({"errors": [{"message": "m"}] * (MAX_ERRORS + 1)}, "errors"),
        ({"commit": "a" * 3_000_000}, "commit"),
        ({"commit": "not-a-commit"}, "commit"),
        ({"documents": [{**_document(0), "sourcePath": "d/" * 1000}]}, "documents.0.sourcePath"),
        ({"documents": [{**_document(0), "content": "x" * 1_000_000}]}, "documents.0.content"),
        ({"usage": {"costUsd": -1}}, "usage.costUsd"),
        ({"usage": {"inputTokens": -5}}, "usage.inputTokens"),
    ],
)
def test_oversized_or_invalid_courses_are_refused_naming_the_field(
    body: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Course.model_validate_json(json.dumps(body))
    errors = refused.value.errors()
    assert len(errors) == 1  # stopped at the bound, not one error per item
    assert ".".join(str(p) for p in errors[0]["loc"]) == field


def test_long_error_messages_are_cut_not_refused() -> None:
    error = CourseError(path="p" * 5000, message="m" * 10_000)
    assert len(error.message) == MAX_MESSAGE_CHARS and error.message.endswith("…")
    assert len(error.path) == 1024


def test_error_paths_and_messages_are_printable_whoever_builds_them() -> None:
    """A pipeline error quoting a hostile file name must not carry its controls."""
    error = CourseError(
        path="src/evil\nname\u202e.py",
        message="chapter 2 (Bidi\u202eTxt \x1b[31mmodule\x1b[0m): no\x00 valid answer",
    )
    assert error.path == "src/evil\\nname.py"
    assert error.message == "chapter 2 (BidiTxt module): no valid answer"


def test_bounded_errors_keeps_the_first_and_counts_the_rest() -> None:
    errors = [CourseError(message=str(i)) for i in range(500)]
    kept = bounded_errors(errors)
    assert len(kept) == MAX_ERRORS
    assert [e.message for e in kept[:3]] == ["0", "1", "2"]
    assert kept[-1].message == "301 more problems not listed"
    assert bounded_errors(errors[:5]) == errors[:5]

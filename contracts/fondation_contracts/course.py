"""The course a runner produces: documents in the shape Fondation's Convex
`docs` table stores, so the existing web app shows them unchanged.

`convex/schema.ts` mirrors these models; keep the two in step.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from fondation_contracts import text

NOT_A_CHAPTER = -1

# Bounds of a course, generous for a real one (30 chapters, reviewed, with
# tutorials: about 100 documents and 1 MB) and small enough that no body can
# make a reader build millions of objects.
MAX_DOCUMENTS = 400
MAX_ERRORS = 200
MAX_DOCUMENT_CHARS = 900 * 1024
MAX_PATH_CHARS = 1024
MAX_MESSAGE_CHARS = 2000
MAX_STEPS = 32


class DocumentKind(enum.StrEnum):
    YAML = "yaml"
    CHAPTER = "chapter"
    TUTORIAL = "tutorial"
    TOC = "toc"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class Document(_Model):
    """One file of the course, as the UI shows it."""

    kind: DocumentKind
    slug: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str = Field(max_length=500)
    chapter_index: int = Field(NOT_A_CHAPTER, alias="chapterIndex", ge=NOT_A_CHAPTER)
    content: str = Field(max_length=MAX_DOCUMENT_CHARS)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source_path: str = Field("", alias="sourcePath", max_length=MAX_PATH_CHARS)

    @classmethod
    def build(
        cls,
        *,
        kind: DocumentKind,
        slug: str,
        title: str,
        content: str,
        chapter_index: int = NOT_A_CHAPTER,
        source_path: str = "",
    ) -> Document:
        """The one constructor that computes the content hash."""
        return cls(
            kind=kind,
            slug=slug,
            title=title,
            chapter_index=chapter_index,
            content=content,
            sha256=hashlib.sha256(content.encode()).hexdigest(),
            source_path=source_path,
        )


class CourseError(_Model):
    """A problem found while producing or parsing the course; never fatal.
    Long paths and messages are cut (marked with `…`), never refused: a
    report about a problem must not become one."""

    path: str = Field("", max_length=MAX_PATH_CHARS)
    step: str = Field("", max_length=64)
    message: str = Field(max_length=MAX_MESSAGE_CHARS)

    @field_validator("path", "message", mode="before")
    @classmethod
    def _cut(cls, value: Any, info: ValidationInfo) -> Any:
        """Printable (a message may quote a hostile file name or model answer,
        and errors reach status and the UI), then cut to its limit."""
        if not isinstance(value, str):
            return value
        is_path = info.field_name == "path"
        value = text.path(value) if is_path else text.clean(value)
        limit = MAX_PATH_CHARS if is_path else MAX_MESSAGE_CHARS
        if len(value) > limit:
            return value[: limit - 1] + "…"
        return value


def bounded_errors(errors: list[CourseError]) -> list[CourseError]:
    """At most MAX_ERRORS: the first ones, then one saying how many were left out."""
    if len(errors) <= MAX_ERRORS:
        return errors
    left_out = len(errors) - (MAX_ERRORS - 1)
    return [*errors[: MAX_ERRORS - 1], CourseError(message=f"{left_out} more problems not listed")]


class StepUsage(_Model):
    step: str = Field(max_length=64)
    input_tokens: int = Field(0, alias="inputTokens", ge=0)
    output_tokens: int = Field(0, alias="outputTokens", ge=0)
    cost_usd: float = Field(0.0, alias="costUsd", ge=0, allow_inf_nan=False)
    llm_calls: int = Field(0, alias="llmCalls", ge=0)
    cached: bool = False


class Usage(_Model):
    input_tokens: int = Field(0, alias="inputTokens", ge=0)
    output_tokens: int = Field(0, alias="outputTokens", ge=0)
    cost_usd: float = Field(0.0, alias="costUsd", ge=0, allow_inf_nan=False)
    llm_calls: int = Field(0, alias="llmCalls", ge=0)
    steps: list[StepUsage] = Field(default_factory=list, max_length=MAX_STEPS)


class Course(_Model):
    analysis: str = Field("", max_length=253)
    commit: str = Field("", max_length=64, pattern=r"^[0-9a-f]*$")
    language: str = Field("en", max_length=35)
    documents: list[Document] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    errors: list[CourseError] = Field(default_factory=list, max_length=MAX_ERRORS)
    usage: Usage = Usage()
    partial: bool = False

    @property
    def chapters(self) -> list[Document]:
        return [
            d
            for d in self.documents
            if d.kind is DocumentKind.CHAPTER and not d.title.startswith("Reviewed: ")
        ]

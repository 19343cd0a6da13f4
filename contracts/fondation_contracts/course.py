"""The course a runner produces: documents in the shape Fondation's Convex
`docs` table stores, so the existing web app shows them unchanged.

`convex/schema.ts` mirrors these models; keep the two in step.
"""

from __future__ import annotations

import enum
import hashlib

from pydantic import BaseModel, ConfigDict, Field

NOT_A_CHAPTER = -1


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
    content: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source_path: str = Field("", alias="sourcePath")

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
    """A problem found while producing or parsing the course; never fatal."""

    path: str = ""
    step: str = ""
    message: str


class StepUsage(_Model):
    step: str
    input_tokens: int = Field(0, alias="inputTokens")
    output_tokens: int = Field(0, alias="outputTokens")
    cost_usd: float = Field(0.0, alias="costUsd")
    llm_calls: int = Field(0, alias="llmCalls")
    cached: bool = False


class Usage(_Model):
    input_tokens: int = Field(0, alias="inputTokens")
    output_tokens: int = Field(0, alias="outputTokens")
    cost_usd: float = Field(0.0, alias="costUsd")
    llm_calls: int = Field(0, alias="llmCalls")
    steps: list[StepUsage] = Field(default_factory=list)


class Course(_Model):
    analysis: str = ""
    commit: str = ""
    language: str = "en"
    documents: list[Document] = Field(default_factory=list)
    errors: list[CourseError] = Field(default_factory=list)
    usage: Usage = Usage()
    partial: bool = False

    @property
    def chapters(self) -> list[Document]:
        return [
            d
            for d in self.documents
            if d.kind is DocumentKind.CHAPTER and not d.title.startswith("Reviewed: ")
        ]

"""What each step's answer must contain, with Fondation's keys.

Steps 1-3 answer YAML, validated into these models and written back out as
the step's file; steps 4-6 answer Markdown, kept as written once it passes
the checks of `validate`. The list position of an abstraction is its id.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


class Abstraction(_Answer):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1)
    file_paths: list[str] = Field(min_length=1)


class Abstractions(RootModel[list[Abstraction]]):
    """Step 1: `step1_abstractions.yaml`."""


class Relationship(_Answer):
    from_abstraction: StrictInt = Field(ge=0)
    to_abstraction: StrictInt = Field(ge=0)
    label: str = Field(min_length=1, max_length=200)
    evidence: str = Field(min_length=3)
    """`path:line` or `path:start-end`, relative to the analysed directory."""


class Relationships(_Answer):
    """Step 2: `step2_relationships.yaml`."""

    summary: str = Field(min_length=1)
    relationships: list[Relationship]


class OrderEntry(_Answer):
    index: StrictInt = Field(ge=0)
    name: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)


class ChapterOrder(_Answer):
    """Step 3: `step3_order.yaml`."""

    order: list[OrderEntry] = Field(min_length=1)


class MarkdownAnswer(BaseModel):
    """Steps 4-6: one Markdown document (a chapter, its review, the index)."""

    model_config = ConfigDict(frozen=True)

    title: str
    """The text of its first `# ` heading."""
    text: str

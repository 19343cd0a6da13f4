"""Where each step's result lives in the output directory.

The layout is Fondation's, so existing consumers of `.claude-tutorial-output/`
keep working:

    .claude-tutorial-output/
        step1_abstractions.yaml
        step2_relationships.yaml
        step3_order.yaml
        chapters/NN_slug.md            NN = position in step-3 order, from 01
        reviewed-chapters/NN_slug.md   same name as the chapter it reviews
        tutorials/tutorial_N_name.md   N = chapter number, from 1: its hands-on tutorial
        tutorials/index.md             the course's overview page

Step 6 is Fondation's: one `Interactive Tutorial: <name>` per chapter, which
its UI lists under "Tutoriels", and an overview page (a `toc` document, under
"Références"). Fondation's UI shows one document at a time and resolves no
link between documents, so neither names another document by a file link.

The pipeline writes it, the parser reads it, and both ask this module.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fondation_contracts.course import Document, DocumentKind

OUTPUT_DIR_NAME = ".claude-tutorial-output"

ABSTRACTIONS_FILE = "step1_abstractions.yaml"
RELATIONSHIPS_FILE = "step2_relationships.yaml"
ORDER_FILE = "step3_order.yaml"
CHAPTERS_DIR = "chapters"
REVIEWED_DIR = "reviewed-chapters"
TUTORIALS_DIR = "tutorials"
TUTORIAL_INDEX_FILE = "index.md"
TUTORIAL_TITLE_PREFIX = "Interactive Tutorial: "
"""How Fondation heads each chapter's tutorial, before the chapter's name."""

STEP_FILES: dict[str, str] = {
    "abstractions": ABSTRACTIONS_FILE,
    "relationships": RELATIONSHIPS_FILE,
    "order": ORDER_FILE,
}

_NAME_SLUG_MAX = 60


def output_dir(base: Path) -> Path:
    """The `.claude-tutorial-output` directory under `base`."""
    return base / OUTPUT_DIR_NAME


def resolve_output_dir(path: Path) -> Path:
    """Accept either the output directory itself or the directory holding it."""
    nested = output_dir(path)
    return nested if nested.is_dir() else path


def slugify(text: str) -> str:
    """A lowercase ASCII slug: `Request Router (v2)` -> `request-router-v2`.

    Accents are folded (`Évènement` -> `evenement`); text with nothing
    left (e.g. all CJK) gives an empty string, and callers fall back to a
    number.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:_NAME_SLUG_MAX].rstrip("-")


def chapter_file_name(position: int, name: str) -> str:
    """File name of the chapter at 0-based `position` of the step-3 order."""
    slug = slugify(name) or "chapter"
    return f"{position + 1:02d}_{slug}.md"


def tutorial_file_name(position: int, name: str) -> str:
    """File name of the tutorial of the chapter at 0-based `position`: Fondation's
    `tutorial_<i>_<name>.md`, with its underscores."""
    slug = (slugify(name) or "chapter").replace("-", "_")
    return f"tutorial_{position + 1}_{slug}.md"


def tutorial_title(name: str) -> str:
    """`Interactive Tutorial: <name>`, the heading a chapter's tutorial must have."""
    return f"{TUTORIAL_TITLE_PREFIX}{' '.join(name.split())}"


def dump_yaml(data: Any) -> str:
    """The one YAML form of the step documents: the pipeline writes it and
    `write_documents` writes it back, so a course read back from the cluster
    is the same bytes the runner wrote."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def write_documents(documents: Iterable[Document], out: Path) -> list[Path]:
    """Lay documents back out as the files they came from, under `out`.

    The inverse of the parser, for a course read back from the cluster:
    YAML documents carry their parsed content as JSON and are written back
    as YAML. A source path that would leave `out` is refused.
    """
    root = out / OUTPUT_DIR_NAME
    written = []
    for doc in documents:
        relative = Path(doc.source_path or f"{doc.slug}.md")
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"document {doc.slug!r} has an unsafe path {doc.source_path!r}")
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        content = doc.content
        if doc.kind is DocumentKind.YAML:
            content = dump_yaml(json.loads(content))
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written

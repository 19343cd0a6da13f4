from __future__ import annotations

import json
from pathlib import Path

from fondation_contracts.course import Document, DocumentKind
from fondation_runner import layout
from fondation_runner.layout import (
    chapter_file_name,
    dump_yaml,
    resolve_output_dir,
    slugify,
    write_documents,
)


def test_slugify() -> None:
    assert slugify("Request Router (v2)") == "request-router-v2"
    assert slugify("Évènement & Co.") == "evenement-co"
    assert slugify("日本語") == ""
    assert len(slugify("x" * 300)) == 60


def test_chapter_file_names_are_zero_padded_from_one() -> None:
    assert chapter_file_name(0, "Task Queue") == "01_task-queue.md"
    assert chapter_file_name(11, "Worker") == "12_worker.md"
    assert chapter_file_name(2, "日本語") == "03_chapter.md"


def test_output_dir_may_be_given_as_its_parent(tmp_path: Path) -> None:
    assert resolve_output_dir(tmp_path) == tmp_path
    (tmp_path / ".claude-tutorial-output").mkdir()
    assert resolve_output_dir(tmp_path) == tmp_path / ".claude-tutorial-output"


def test_tutorial_files_and_titles_are_fondations() -> None:
    assert layout.tutorial_file_name(0, "Request Router (v2)") == "tutorial_1_request_router_v2.md"
    assert layout.tutorial_file_name(9, "日本") == "tutorial_10_chapter.md"
    assert layout.tutorial_title("Task  Queue\n") == "Interactive Tutorial: Task Queue"


def test_a_yaml_document_is_written_back_as_the_bytes_the_runner_wrote(tmp_path: Path) -> None:
    # Long lines: a different line width would fold them differently.
    data = [
        {
            "name": "Task and its lifecycle",
            "description": "The data a queue moves around: tasks and their lifecycle states. "
            "It defines classes `TaskStatus` and `Task`, and ties them to the storage module.",
            "files": [0, 2],
        }
    ]
    written_by_runner = dump_yaml(data)
    doc = Document.build(
        slug="step1_abstractions",
        title="Abstractions",
        kind=DocumentKind.YAML,
        content=json.dumps(data),
        source_path="step1_abstractions.yaml",
    )
    (path,) = write_documents([doc], tmp_path)
    assert path.read_text(encoding="utf-8") == written_by_runner

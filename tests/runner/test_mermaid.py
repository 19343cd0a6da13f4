from __future__ import annotations

import pytest

from fondation_runner.mermaid import check_mermaid

VALID = [
    "flowchart TD\n    A --> B",
    "graph LR\nA-->B;B-->C",
    'flowchart LR\n    A["parse (fast)"] -->|"calls"| B((round))\n    B -.-> C{decide}',
    "flowchart TD\n    A & B --> C:::hot\n    classDef hot fill:#f96",
    "flowchart TD\n    A -- text --> B\n    A == thick ==> C\n    A -. dotted .-> D",
    "flowchart TD\n    A --- B\n    B --o C\n    C --x D\n    D <--> E\n    E ~~~ F",
    'flowchart TD\n    subgraph core["Core"]\n        direction LR\n        A --> B\n    end\n'
    "    B --> C",
    "flowchart TD\n    %% a comment\n    A[[sub]] --> B[(db)] --> C([stadium]) --> D>flag]",
    "flowchart TD\n    A{{hex}} --> B[/para/] --> C[\\alt\\]",
    "sequenceDiagram\n    Alice->>Bob: Hello (there)",
    "graph\n    A --> B",
]

INVALID = [
    ("flowchart TD\n    A[parse (fast)] --> B", "holds brackets or quotes"),
    ("flowchart XY\n    A --> B", "direction"),
    ("flowchart TD\n    end --> B", "`end` cannot be a node id"),
    ("flowchart TD\n    subgraph S\n    A --> B", "not closed with `end`"),
    ("flowchart TD\n    A --> B\n    end", "without a matching `subgraph`"),
    ("flowchart TD\n    A -->", "points to nothing"),
    ("flowchart TD\n    A -> B", "expected an arrow"),
    ('flowchart TD\n    A["open --> B', "unclosed quote"),
    ("flowchart TD\n    A[open --> B", "not closed with `]`"),
    ("flowchart TD\n    A[] --> B", "empty label"),
    ("flowchart TD\n    A -->|label B", "not closed"),
    ("flowchart TD", "has no nodes"),
    ("", "empty"),
    ("piechart\n    a: 1", "unknown diagram type"),
    ("sequenceDiagram\n    A->>B: (unbalanced", "unclosed `(`"),
]


@pytest.mark.parametrize("source", VALID)
def test_valid_diagrams_pass(source: str) -> None:
    assert check_mermaid(source) == []


@pytest.mark.parametrize(("source", "problem"), INVALID)
def test_invalid_diagrams_are_reported(source: str, problem: str) -> None:
    problems = check_mermaid(source)
    assert problems, source
    assert any(problem in p for p in problems), problems


def test_problems_name_their_line() -> None:
    assert check_mermaid("flowchart TD\n    A --> B\n    C[x(y)] --> D")[0].startswith("line 3:")

"""A small checker for the Mermaid diagrams the chapters contain.

Mermaid renders nothing at all when a diagram does not parse, and models
often write diagrams it rejects: an unquoted label holding parentheses
(`A[parse (fast)]`), a node called `end`, an unclosed `subgraph`. This checker
catches those for `flowchart`/`graph` diagrams, the kind the prompts ask for:
it reads the header and direction, every node and edge statement (node
shapes, `&` groups, arrow kinds, `|label|` and `-- text -->` edge labels,
`:::class`), `subgraph`/`end` nesting and the styling statements. Other
diagram kinds are only checked for a known header and balanced brackets and
quotes; it is not a full Mermaid grammar and does not pretend to be.
"""

from __future__ import annotations

import re

DIRECTIONS = frozenset({"TB", "TD", "BT", "RL", "LR"})
FLOWCHART_HEADERS = frozenset({"flowchart", "graph"})
OTHER_DIAGRAMS = frozenset(
    {
        "sequenceDiagram",
        "classDiagram",
        "classDiagram-v2",
        "stateDiagram",
        "stateDiagram-v2",
        "erDiagram",
        "journey",
        "gantt",
        "pie",
        "mindmap",
        "timeline",
        "gitGraph",
        "quadrantChart",
        "requirementDiagram",
        "C4Context",
        "sankey-beta",
        "xychart-beta",
        "block-beta",
    }
)
_STYLING = frozenset({"classDef", "class", "style", "linkStyle", "click"})

# Node shapes, longest opener first so `((` wins over `(`.
_SHAPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("(((", (")))",)),
    ("((", ("))",)),
    ("([", ("])",)),
    ("[[", ("]]",)),
    ("[(", (")]",)),
    ("[/", ("/]", "\\]")),
    ("[\\", ("\\]", "/]")),
    ("{{", ("}}",)),
    ("[", ("]",)),
    ("(", (")",)),
    ("{", ("}",)),
    (">", ("]",)),
)
_LABEL_FORBIDDEN = set('[](){}"')
_NODE_ID = re.compile(r"\w+")
_CLASS_SUFFIX = re.compile(r":::[\w-]+")
_TEXT_LINK = re.compile(
    r"(?:--\s+(?P<dash>[^|]+?)\s+-{2,}[->ox]"
    r"|==\s+(?P<thick>[^|]+?)\s+={2,}[=>ox]"
    r"|-\.\s+(?P<dotted>[^|]+?)\s+\.-+>?)"
)
_LINK = re.compile(r"<?(?:-{2,}>|-{3,}|-{2,}[ox](?=\s)|={2,}>|={3,}|-\.+->|-\.+-|~{3,})")
_PIPE_LABEL = re.compile(r"\|(?P<label>[^|]*)\|")


class _Invalid(Exception):
    pass


def check_mermaid(source: str) -> list[str]:
    """The problems found in one diagram's source; empty when it looks valid."""
    numbered = [
        (number, line.strip())
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("%%")
    ]
    if not numbered:
        return ["the diagram is empty"]
    number, header = numbered[0]
    words = header.rstrip(";").split()
    kind = words[0]
    if kind in FLOWCHART_HEADERS:
        problems: list[str] = []
        if len(words) > 2 or (len(words) == 2 and words[1] not in DIRECTIONS):
            problems.append(
                f"line {number}: `{header}` should be `{kind} <direction>` with a direction "
                f"among {', '.join(sorted(DIRECTIONS))}"
            )
        problems.extend(_check_flowchart_body(numbered[1:]))
        if len(numbered) == 1:
            problems.append("the flowchart has no nodes")
        return problems
    if kind in OTHER_DIAGRAMS:
        return _check_balanced(numbered[1:]) or ([] if len(numbered) > 1 else ["empty diagram"])
    return [
        f"line {number}: unknown diagram type `{kind}`; start with `flowchart TD` "
        "(or another Mermaid diagram type)"
    ]


def _check_flowchart_body(lines: list[tuple[int, str]]) -> list[str]:
    problems: list[str] = []
    depth = 0
    for number, line in lines:
        first = line.split()[0]
        try:
            if first == "subgraph":
                depth += 1
                _check_balanced_text(line)
            elif line.rstrip(";") == "end":
                depth -= 1
                if depth < 0:
                    raise _Invalid("`end` without a matching `subgraph`")
            elif first == "direction":
                if line.split()[1:] and line.split()[1] in DIRECTIONS:
                    continue
                raise _Invalid(f"`{line}` needs a direction among {', '.join(sorted(DIRECTIONS))}")
            elif first in _STYLING:
                if len(line.split()) < 2:
                    raise _Invalid(f"`{first}` needs arguments")
                _check_balanced_text(line)
            else:
                for statement in _split_statements(line):
                    _check_statement(statement)
        except _Invalid as problem:
            problems.append(f"line {number}: {problem}")
    if depth > 0:
        problems.append(f"{depth} `subgraph` block(s) not closed with `end`")
    return problems


def _split_statements(line: str) -> list[str]:
    """Split on `;` outside quotes."""
    statements: list[str] = []
    current: list[str] = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _check_statement(statement: str) -> None:
    """node_group (link node_group)*, where node_group is node (& node)*."""
    position = _node_group(statement, 0)
    while True:
        position = _skip_space(statement, position)
        if position == len(statement):
            return
        position = _link(statement, position)
        position = _node_group(statement, _skip_space(statement, position))


def _node_group(text: str, position: int) -> int:
    position = _node(text, position)
    while True:
        after_space = _skip_space(text, position)
        if after_space < len(text) and text[after_space] == "&":
            position = _node(text, _skip_space(text, after_space + 1))
        else:
            return position


def _node(text: str, position: int) -> int:
    match = _NODE_ID.match(text, position)
    if match is None:
        rest = text[position:].split(maxsplit=1)
        found = rest[0] if rest else "the end of the line"
        raise _Invalid(f"expected a node id, found `{found}`")
    node_id = match.group()
    if node_id == "end":
        raise _Invalid("`end` cannot be a node id (Mermaid reserves it); rename the node")
    position = match.end()
    for opener, closers in _SHAPES:
        if text.startswith(opener, position):
            position = _label(text, position + len(opener), closers, node_id)
            break
    suffix = _CLASS_SUFFIX.match(text, position)
    return suffix.end() if suffix else position


def _label(text: str, position: int, closers: tuple[str, ...], node_id: str) -> int:
    if text.startswith('"', position):
        end_quote = text.find('"', position + 1)
        if end_quote < 0:
            raise _Invalid(f"node `{node_id}`: unclosed quote in its label")
        position = end_quote + 1
        for closer in closers:
            if text.startswith(closer, position):
                return position + len(closer)
        raise _Invalid(f"node `{node_id}`: expected `{closers[0]}` after its quoted label")
    ends = [(text.find(closer, position), closer) for closer in closers]
    found = [(index, closer) for index, closer in ends if index >= 0]
    if not found:
        raise _Invalid(f"node `{node_id}`: its shape is not closed with `{closers[0]}`")
    index, closer = min(found)
    label = text[position:index]
    if not label.strip():
        raise _Invalid(f"node `{node_id}` has an empty label")
    if _LABEL_FORBIDDEN & set(label):
        raise _Invalid(
            f"node `{node_id}`: label `{label}` holds brackets or quotes; "
            f'quote it: {node_id}["..."]'
        )
    return index + len(closer)


def _link(text: str, position: int) -> int:
    match = _TEXT_LINK.match(text, position) or _LINK.match(text, position)
    if match is None:
        raise _Invalid(f"expected an arrow such as `-->`, found `{text[position:]}`")
    position = _skip_space(text, match.end())
    label = _PIPE_LABEL.match(text, position)
    if label is not None:
        if label.group("label").count('"') % 2:
            raise _Invalid(f"unbalanced quote in edge label `{label.group()}`")
        position = label.end()
    elif text.startswith("|", position):
        raise _Invalid("edge label opened with `|` is not closed")
    if _skip_space(text, position) == len(text):
        raise _Invalid("the arrow points to nothing")
    return position


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _check_balanced(lines: list[tuple[int, str]]) -> list[str]:
    problems = []
    for number, line in lines:
        try:
            _check_balanced_text(line)
        except _Invalid as problem:
            problems.append(f"line {number}: {problem}")
    return problems


def _check_balanced_text(line: str) -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            raise _Invalid(f"unbalanced `{char}` in `{line}`")
    if quoted:
        raise _Invalid(f"unclosed quote in `{line}`")
    if stack:
        raise _Invalid(f"unclosed `{stack[-1]}` in `{line}`")

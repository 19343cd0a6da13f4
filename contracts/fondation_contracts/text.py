"""Text that reaches a person's terminal or browser, made harmless.

Progress messages, failure messages and file names come from a runner that
reads an untrusted repository and a model's answers. Before they go into
status, Events, logs or a course, control characters are removed: terminal
escape sequences (whole, so no `[31m` is left behind), NUL and the other C0
and C1 controls, and the bidirectional overrides and isolates that make text
display in another order than it reads (`Trojan Source`).
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROLS = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c not in (9, 10))
_DROP = str.maketrans("", "", _CONTROLS + _BIDI)
_LINE_BREAKS = re.compile(r"[\n\t\u2028\u2029\x85]+")
_SHOWN_ESCAPED = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def clean(text: str) -> str:
    """`text` without escape sequences, controls (tab and newline kept) or bidi overrides."""
    return _ANSI.sub("", text).translate(_DROP)


def one_line(text: str) -> str:
    """`clean`, with line breaks and tabs turned into single spaces."""
    return _LINE_BREAKS.sub(" ", clean(text.replace("\r", "\n"))).strip()


def path(name: str) -> str:
    """A file name as one printable line: `a\\nb.py` for a name holding a
    newline (so two names never look alike), controls and bidi removed."""
    return clean(name.translate(_SHOWN_ESCAPED))

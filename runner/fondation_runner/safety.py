"""Making Markdown from a model or a repository safe to publish.

A course is rendered by Fondation's web app. Its text comes from a model
that read an untrusted repository (a prompt injection can make it write
anything) and quotes that repository's file names (which may hold newlines,
backticks or bidi overrides). Before it becomes part of a course it is
neutralised, not refused (a refusal would only cost another model call and
then lose the chapter):

- control characters and bidi overrides are removed (`fondation_contracts.text`);
- raw HTML in prose is escaped (`<script>` shows as text); autolinks
  (`<https://...>`) are kept;
- links and images whose URL is not http(s), mailto, an anchor or a relative
  path (`javascript:`, `data:`, `vbscript:`, `file:`...) lose their URL, even
  when disguised with entities, case or whitespace;
- Mermaid blocks lose `click` lines (they run code or open links) and
  `%%{init: ...}%%` directives (they change the renderer's security level),
  and HTML in their labels is escaped except `<br>`;
- code blocks and inline code are left as they are: Markdown shows them as
  text.

`code_span` quotes a repository path for Markdown or a prompt, whatever it
holds. `load_yaml` reads YAML without aliases: 553 bytes of nested aliases
expand to gigabytes ("billion laughs"), and neither the pipeline nor
Fondation's CLI writes any.
"""

from __future__ import annotations

import html
import re
from typing import Any

import yaml

from fondation_contracts.text import clean
from fondation_contracts.text import path as printable_path

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
REMOVED_URL = "#removed-unsafe-link"

_FENCE = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
_INLINE_CODE = re.compile(r"(?P<ticks>`+).+?(?P=ticks)")
_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_AUTOLINK = re.compile(r"<(?:https?|mailto):[^<>\s]*>", re.IGNORECASE)
_INLINE_LINK = re.compile(
    r"(?P<head>!?\[[^\]\n]*\]\([ \t]*)(?P<url><[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)"
)
_REFERENCE = re.compile(r"^(?P<head>[ \t]{0,3}\[[^\]\n]+\]:[ \t]*)(?P<url>\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
_MERMAID_CLICK = re.compile(r"^\s*click\s", re.IGNORECASE)
_MERMAID_DIRECTIVE = re.compile(r"%%\s*\{.*?\}\s*%%", re.DOTALL)
_MERMAID_TAG = re.compile(r"<(?!br\s*/?>)", re.IGNORECASE)


def safe_url(url: str) -> bool:
    """Whether a link target is harmless: http(s), mailto, an anchor or relative."""
    decoded = html.unescape(url)
    squeezed = "".join(c for c in decoded if c.isprintable() and not c.isspace()).lower()
    scheme = _SCHEME.match(squeezed.lstrip("<"))
    return scheme is None or scheme.group(1) in SAFE_SCHEMES


def neutralise_markdown(text: str) -> str:
    """`text` with everything listed in the module docstring made harmless."""
    out: list[str] = []
    fence: str | None = None
    info = ""
    block: list[str] = []
    for line in clean(text).split("\n"):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, info, block = match.group("fence"), match.group("info").lower(), []
                out.append(line)
            else:
                out.append(_prose(line))
        elif match and match.group("fence").startswith(fence) and not match.group("info"):
            out.extend(_mermaid(block) if info == "mermaid" else block)
            out.append(line)
            fence = None
        else:
            block.append(line)
    if fence is not None:
        out.extend(_mermaid(block) if info == "mermaid" else block)
    return _references("\n".join(out))


def _prose(line: str) -> str:
    """One line outside code blocks: inline code kept, the rest neutralised."""
    parts: list[str] = []
    last = 0
    for code in _INLINE_CODE.finditer(line):
        parts.append(_prose_text(line[last : code.start()]))
        parts.append(code.group())
        last = code.end()
    parts.append(_prose_text(line[last:]))
    return "".join(parts)


def _prose_text(text: str) -> str:
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group())
        return f"\x00{len(kept) - 1}\x00"

    text = _AUTOLINK.sub(keep, text)
    text = _INLINE_LINK.sub(
        lambda m: m.group("head") + (m.group("url") if safe_url(m.group("url")) else REMOVED_URL),
        text,
    )
    text = _TAG.sub("&lt;", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)


def _references(text: str) -> str:
    """`[label]: javascript:...` reference definitions lose their URL too."""
    return _REFERENCE.sub(
        lambda m: m.group("head") + (m.group("url") if safe_url(m.group("url")) else REMOVED_URL),
        text,
    )


def _mermaid(block: list[str]) -> list[str]:
    source = _MERMAID_DIRECTIVE.sub("", "\n".join(block))
    return [
        _MERMAID_TAG.sub("&lt;", line)
        for line in source.split("\n")
        if not _MERMAID_CLICK.match(line)
    ]


def code_span(text: str) -> str:
    """`text` as one line of inline code, whatever it holds: line breaks shown
    as `\\n`, controls and bidi overrides removed, and a fence of more
    backticks than any run inside it."""
    flat = printable_path(text)
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not accepted", None
            )
        node: yaml.Node | None = super().compose_node(parent, index)
        return node


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` without aliases; raises yaml.YAMLError."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass

"""Markdown from a model or a repository is made harmless, not refused."""

from __future__ import annotations

import pytest
import yaml

from fondation_runner.safety import REMOVED_URL, code_span, load_yaml, neutralise_markdown, safe_url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java&#x09;script:alert(1)",
        "&#106;avascript:alert(1)",
        "<javascript:alert(1)>",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox",
        "file:///etc/passwd",
    ],
)
def test_unsafe_urls(url: str) -> None:
    assert not safe_url(url) and not safe_url(url.replace("a", "a\t", 1))
    assert REMOVED_URL in neutralise_markdown(f"[x]({url}) and ![y]({url})\n\n[r]: {url}\n")


@pytest.mark.parametrize(
    "url", ["https://example.com/a(b)", "http://x", "mailto:a@b.c", "#anchor", "02_next.md#x"]
)
def test_safe_urls_are_kept(url: str) -> None:
    assert safe_url(url)
    assert neutralise_markdown(f"[x]({url})") == f"[x]({url})"


def test_html_is_escaped_in_prose_and_kept_in_code() -> None:
    text = (
        "A <script>x</script> <img src=x onerror=y> <iframe src=z> <!-- c --> <https://ok.example>\n"
        "`<script>` stays quoted\n"
        "```html\n<script>shown as code</script>\n```\n"
    )
    out = neutralise_markdown(text)
    assert out.splitlines()[0] == (
        "A &lt;script>x&lt;/script> &lt;img src=x onerror=y> &lt;iframe src=z> &lt;!-- c --> "
        "<https://ok.example>"
    )
    assert "`<script>` stays quoted" in out
    assert "<script>shown as code</script>" in out


def test_mermaid_loses_clicks_directives_and_html() -> None:
    text = (
        "```mermaid\n%%{init: {'securityLevel': 'loose'}}%%\ngraph TD\n"
        '  A["a<img src=x onerror=y>"] --> B[b<br>c]\n'
        '  click A "javascript:alert(1)"\n  CLICK B call evil()\n```\n'
    )
    out = neutralise_markdown(text)
    assert "click" not in out.lower() and "%%{" not in out
    assert 'A["a&lt;img src=x onerror=y>"] --> B[b<br>c]' in out
    assert "graph TD" in out


def test_controls_and_bidi_are_removed() -> None:
    assert neutralise_markdown("a\x00b\x1b[31mc\x1b[0m\u202ed\r\n") == "abcd\n"


@pytest.mark.parametrize(
    ("name", "span"),
    [
        ("taskq/queue.py", "`taskq/queue.py`"),
        ("evil\nname.py", "`evil\\nname.py`"),
        ("bidi\u202etxt.py", "`biditxt.py`"),
        ("tick`s.py", "``tick`s.py``"),
        ("`](javascript:x)[", "`` `](javascript:x)[ ``"),
    ],
)
def test_code_span_quotes_any_file_name(name: str, span: str) -> None:
    assert code_span(name) == span


def test_yaml_aliases_are_refused() -> None:
    assert load_yaml("a: 1\nb: [x, y]\n") == {"a": 1, "b": ["x", "y"]}
    with pytest.raises(yaml.YAMLError, match="aliases"):
        load_yaml("a: &a [1, 2]\nb: [*a, *a]\n")

"""Text for terminals and browsers: escapes, controls and bidi overrides removed."""

from __future__ import annotations

from fondation_contracts.text import clean, one_line, path


def test_clean_removes_escape_sequences_whole() -> None:
    assert clean("\x1b[31mred\x1b[0m \x1b]0;title\x07x \x1b[2J") == "red x "


def test_clean_removes_controls_and_bidi_but_keeps_lines() -> None:
    assert clean("a\x00b\x07c\x7f\x9bd\u202ee\u2066f\tg\nh") == "abcdef\tg\nh"


def test_one_line() -> None:
    assert one_line("first\r\nsecond\tthird\u2028fourth\x1b[1m") == "first second third fourth"


def test_path_shows_line_breaks_so_names_never_look_alike() -> None:
    assert path("a\nb.py") == "a\\nb.py"
    assert path("x\u202ey.py") == "xy.py"

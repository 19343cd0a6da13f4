from __future__ import annotations

from pathlib import Path

from fondation_runner.sources import list_sources


def _tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a = 1\n")
    (root / "README.md").write_text("# hi\n")
    (root / "big.json").write_text("x" * 150_000)
    (root / "logo.png").write_bytes(b"\x89PNG\0\0\0")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "link.py").symlink_to(root / "pkg" / "a.py")


def test_lists_project_files_and_reports_what_it_skips(tmp_path: Path) -> None:
    _tree(tmp_path)

    listing = list_sources(tmp_path)

    assert listing.paths == ("README.md", "pkg/a.py")
    skipped = {s.path: s.reason for s in listing.skipped}
    assert skipped["big.json"] == "150 KB, over the 100 KB limit"
    assert skipped["logo.png"] == "binary"
    assert skipped["link.py"] == "symbolic link"
    assert not any(p.startswith(("node_modules", ".git")) for p in skipped)


def test_size_limit_is_configurable(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert "big.json" in list_sources(tmp_path, max_file_bytes=200_000).paths


def test_files_beyond_the_listing_limit_are_reported(tmp_path: Path) -> None:
    for number in range(5):
        (tmp_path / f"f{number}.py").write_text("pass\n")

    listing = list_sources(tmp_path, max_files=3)

    assert listing.paths == ("f0.py", "f1.py", "f2.py")
    assert [s.path for s in listing.skipped] == ["f3.py", "f4.py"]


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = list_sources(tmp_path).fingerprint()
    assert list_sources(tmp_path).fingerprint() == before
    (tmp_path / "pkg" / "a.py").write_text("a = 2\n")
    assert list_sources(tmp_path).fingerprint() != before

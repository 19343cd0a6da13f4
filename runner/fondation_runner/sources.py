"""The source files of a checkout, as the prompts list them.

Listing is where the runner decides what it shows the model: build output,
dependency trees and VCS metadata are left out, and so are binary files,
symbolic links (a link in an untrusted repository could point at a secret
outside it) and files too big to be read usefully. Everything left out for
a reason other than being noise is kept in `SourceListing.skipped`, so the
caller can report it: nothing disappears silently.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from fondation_runner.layout import OUTPUT_DIR_NAME

DEFAULT_MAX_FILE_BYTES = 100_000
DEFAULT_MAX_FILES = 1500

NOISE_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        OUTPUT_DIR_NAME,
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".idea",
        ".vscode",
        "dist",
        "build",
        "target",
        ".next",
        "coverage",
    }
)
"""Directories that hold generated or third-party files, never the project's
own source; pruned without being reported."""

_BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    path: str
    """Relative to the listing's root, with `/` separators."""
    size: int


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class SourceListing:
    root: Path
    files: tuple[SourceFile, ...]
    skipped: tuple[SkippedFile, ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def fingerprint(self) -> str:
        """A digest of the listed files' names and contents.

        Stands in for a commit when the source is a plain directory, so the
        step cache still notices when a file changes.
        """
        digest = hashlib.sha256()
        for source in self.files:
            digest.update(source.path.encode())
            digest.update(b"\0")
            digest.update(hashlib.sha256((self.root / source.path).read_bytes()).digest())
        return digest.hexdigest()


def list_sources(
    root: Path,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> SourceListing:
    """Every project file under `root`, sorted by path, minus what is skipped."""
    files: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        directory = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in NOISE_DIRS and not (directory / d).is_symlink()
        )
        for name in sorted(filenames):
            path = directory / name
            relative = path.relative_to(root).as_posix()
            reason = _skip_reason(path, max_file_bytes)
            if reason is not None:
                skipped.append(SkippedFile(relative, reason))
            else:
                files.append(SourceFile(relative, path.stat().st_size))
    files.sort(key=lambda f: f.path)
    skipped.sort(key=lambda f: f.path)
    if len(files) > max_files:
        over = files[max_files:]
        files = files[:max_files]
        skipped.extend(
            SkippedFile(f.path, f"beyond the first {max_files} files of the listing") for f in over
        )
    return SourceListing(root=root, files=tuple(files), skipped=tuple(skipped))


def _skip_reason(path: Path, max_file_bytes: int) -> str | None:
    if path.is_symlink():
        return "symbolic link"
    if not path.is_file():
        return "not a regular file"
    size = path.stat().st_size
    if size > max_file_bytes:
        return f"{size // 1000} KB, over the {max_file_bytes // 1000} KB limit"
    with path.open("rb") as handle:
        if b"\0" in handle.read(_BINARY_SNIFF_BYTES):
            return "binary"
    return None

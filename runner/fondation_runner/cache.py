"""Validated step answers, kept so an unchanged commit costs nothing to redo.

An answer is stored under the sha256 of everything that could change it:
the commit (or the content fingerprint of a plain directory), the prompt
version, the model, the output language, the backend, the step and the
step's inputs. Only answers that passed validation are stored, so a hit is
used as is. The directory may be a local path or a volume shared by runs;
writes are atomic (temporary file + rename), and an unreadable entry is a
miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class CacheKey:
    revision: str
    """The commit, or a content fingerprint when there is none."""
    prompt_version: str
    model: str
    language: str
    backend: str
    step: str
    inputs: dict[str, Any]

    def digest(self) -> str:
        canonical = json.dumps(
            {
                "revision": self.revision,
                "prompt_version": self.prompt_version,
                "model": self.model,
                "language": self.language,
                "backend": self.backend,
                "step": self.step,
                "inputs": self.inputs,
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class CachedAnswer(BaseModel):
    step: str
    text: str


class StepCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, key: CacheKey) -> str | None:
        path = self._path(key.digest())
        try:
            entry = CachedAnswer.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None
        return entry.text if entry.step == key.step else None

    def put(self, key: CacheKey, text: str) -> None:
        path = self._path(key.digest())
        path.parent.mkdir(parents=True, exist_ok=True)
        body = CachedAnswer(step=key.step, text=text).model_dump_json()
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(body)
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}.json"

"""Choosing a backend by name.

The claude backend is imported only when asked for: it needs the optional
`claude` extra (claude-agent-sdk), and the offline backend, the CLI and the
tests must work without it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from fondation_runner.backends.base import Backend
from fondation_runner.backends.offline import OfflineBackend

BACKEND_NAMES: tuple[str, ...] = ("claude", "offline")


class BackendUnavailable(Exception):
    """The backend named cannot be used here; the message says what to do."""


def create_backend(
    name: str,
    *,
    model: str = "",
    home: Path,
    credentials_dir: Path | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> Backend:
    """A ready backend. For `claude`, the credential is taken out of `environ`
    (so no later subprocess inherits it), else read from `credentials_dir`."""
    if name == "offline":
        return OfflineBackend()
    if name != "claude":
        raise BackendUnavailable(
            f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}"
        )
    try:
        from fondation_runner.backends.claude import (  # noqa: PLC0415
            ClaudeBackend,
            ClaudeCredentials,
        )
    except ImportError as error:
        raise BackendUnavailable(
            f"the claude backend is not available ({error}); install the `claude` extra "
            "(pip install 'fondation-operator[claude]') or use --backend offline"
        ) from None
    credentials = ClaudeCredentials.discover(environ=environ, directory=credentials_dir)
    home.mkdir(parents=True, exist_ok=True)
    return ClaudeBackend(credentials=credentials, home=home, model=model)

"""Run the real Claude Code CLI offline: the environment it needs, and one
context manager that brings up everything around it.

Why a helper: the backend tests, the pipeline tests and the benchmark all run
the CLI the same way -- a throwaway HOME (the CLI writes its config, session
transcripts and credentials there), `ANTHROPIC_BASE_URL` at the fake API, the
CLI's own background traffic switched off, and a proxy that refuses anything
else -- and that recipe belongs in one place.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from tests.fakes.anthropic_api import DEFAULT_SCRIPT, FakeAnthropicAPI, Script
from tests.fakes.sinkhole_proxy import SinkholeProxy

CLOSED_PROXY = "http://127.0.0.1:9"
"""The discard port, closed on any ordinary machine: a stray request is refused at once."""


def cli_environment(*, base_url: str, home: Path, proxy_url: str = CLOSED_PROXY) -> dict[str, str]:
    """Environment for the CLI so that it talks to `base_url` and nothing else.

    The fake's own host is exempted from the proxy; every other destination
    goes to `proxy_url`, which refuses it (a `SinkholeProxy` also records it).
    """
    fake_host = urlsplit(base_url).hostname or "127.0.0.1"
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HTTPS_PROXY": proxy_url,
        "HTTP_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "http_proxy": proxy_url,
        "NO_PROXY": fake_host,
        "no_proxy": fake_host,
    }


class OfflineClaude:
    """A fake API, a sinkhole proxy and a throwaway HOME, torn down together.

    `async with OfflineClaude(scripts) as world:` then hand `world.env` to the
    CLI (or to the claude backend as its extra environment, with
    `world.home` as its HOME) and assert on `world.api.requests` and
    `world.proxy.attempts`.
    """

    def __init__(
        self,
        scripts: Sequence[Script] = (),
        *,
        default: Script = DEFAULT_SCRIPT,
        latency: float = 0.0,
    ) -> None:
        self.api = FakeAnthropicAPI(scripts, default=default, latency=latency)
        self.proxy = SinkholeProxy()
        self._tmp: Path | None = None

    @property
    def home(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("OfflineClaude is not started")
        return self._tmp / "home"

    @property
    def env(self) -> dict[str, str]:
        return cli_environment(base_url=self.api.base_url, home=self.home, proxy_url=self.proxy.url)

    async def __aenter__(self) -> OfflineClaude:
        self._tmp = Path(tempfile.mkdtemp(prefix="offline-claude-"))
        self.home.mkdir(mode=0o700)
        await self.api.start()
        await self.proxy.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.proxy.stop()
        await self.api.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

"""An HTTP proxy that forwards nothing: it notes where a client tried to go, then refuses.

Why: besides `ANTHROPIC_BASE_URL`, the Claude Code CLI reaches for other hosts
on its own (telemetry, OAuth token refresh on platform.claude.com, account
look-ups on api.anthropic.com). With `HTTPS_PROXY`/`HTTP_PROXY` pointing here,
every such attempt fails at once on loopback instead of leaving the machine,
and a test can assert that nothing tried -- or see exactly which hosts did.
Only the request line is kept (`CONNECT host:443 HTTP/1.1`), never headers,
so a `Proxy-Authorization` or cookie cannot end up in a test report.
"""

from __future__ import annotations

import asyncio
import contextlib

_READ_TIMEOUT = 5.0
_MAX_HEADER_LINES = 200


class SinkholeProxy:
    """`async with SinkholeProxy() as proxy:` then use `proxy.url` as HTTPS_PROXY."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.attempts: list[str] = []
        self._host = host
        self._server: asyncio.Server | None = None
        self._url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._refuse, self._host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self._url = f"http://{self._host}:{port}"
        return self._url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SinkholeProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the proxy is not started")
        return self._url

    def hosts(self) -> set[str]:
        """The `host:port` targets clients tried to reach through the proxy."""
        targets = set()
        for line in self.attempts:
            parts = line.split()
            if len(parts) >= 2:
                target = parts[1]
                if "://" in target:
                    target = target.split("://", 1)[1].split("/", 1)[0]
                targets.add(target)
        return targets

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                line = await reader.readline()
                if line:
                    self.attempts.append(line.decode(errors="replace").strip())
                for _ in range(_MAX_HEADER_LINES):
                    if (await reader.readline()).strip() == b"":
                        break
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

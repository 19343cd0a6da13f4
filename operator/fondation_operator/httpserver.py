"""Serving an aiohttp application on a host and port, ephemeral ports included.

An endpoint that untrusted pods can reach also needs what aiohttp does not
give: aiohttp holds a connection that never sends a request for as long as
the peer keeps it open, and an idle keep-alive connection for an hour. With
`ConnectionLimits`, each connection is wrapped in a guard that

- refuses a peer's connection beyond `max_per_peer`, and any beyond
  `max_connections` (closed at once, nothing read);
- closes a connection that has not delivered a request's headers within
  `header_timeout` of connecting or of its previous response (slow or idle
  clients alike).

How long a body may take is the handler's business (it knows the size).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    max_per_peer: int = 32
    max_connections: int = 1024


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection; forwards everything."""

    def __init__(self, inner: asyncio.Protocol, tracker: _Tracker) -> None:
        self._inner = inner
        self._tracker = tracker
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._timer: asyncio.TimerHandle | None = None
        self.busy = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        if not self._tracker.admit(self._peer):
            transport.abort()
            return
        self._transport = transport
        self._tracker.guards[transport] = self
        self.arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self.disarm()
        self._tracker.guards.pop(self._transport, None)
        self._tracker.release(self._peer)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def arm(self) -> None:
        """Start the clock for the next request's headers."""
        self.disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._tracker.limits.header_timeout, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self.busy:
            self._transport.close()


class _Tracker:
    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.per_peer: Counter[str] = Counter()
        self.guards: dict[asyncio.BaseTransport, _Guard] = {}

    def admit(self, peer: str) -> bool:
        if self.per_peer[peer] >= self.limits.max_per_peer:
            return False
        if self.per_peer.total() >= self.limits.max_connections:
            return False
        self.per_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A request is being served: its connection is not idle until it ends."""
        guard = self.guards.get(request.transport) if request.transport else None
        if guard is None:
            return await handler(request)
        guard.busy += 1
        guard.disarm()
        try:
            return await handler(request)
        finally:
            guard.busy -= 1
            if not guard.busy:
                guard.arm()


class Server:
    """One aiohttp application bound to one address; `port` is the real one."""

    def __init__(self, app: web.Application, limits: ConnectionLimits | None = None) -> None:
        self._app = app
        self._tracker = _Tracker(limits) if limits is not None else None
        if self._tracker is not None:
            app.middlewares.append(self._tracker.middleware)
        self._runner: web.AppRunner | None = None
        self._guarded: asyncio.Server | None = None
        self.port = 0

    @property
    def connections(self) -> int:
        """Connections held open now (guarded servers only)."""
        return self._tracker.per_peer.total() if self._tracker is not None else 0

    async def start(self, host: str, port: int) -> None:
        tracker = self._tracker
        if tracker is None:
            self._runner = web.AppRunner(self._app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, port)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1] if sockets else port
            return
        # Bodies are decompressed by the handler, under its own cap.
        self._runner = web.AppRunner(
            self._app,
            access_log=None,
            auto_decompress=False,
            keepalive_timeout=tracker.limits.header_timeout,
        )
        await self._runner.setup()
        protocol = self._runner.server
        assert protocol is not None
        self._guarded = await asyncio.get_running_loop().create_server(
            lambda: _Guard(protocol(), tracker), host, port
        )
        self.port = self._guarded.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._guarded is not None:
            self._guarded.close()
            self._guarded = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

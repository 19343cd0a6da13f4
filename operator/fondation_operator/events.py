"""Kubernetes Events on AnalysisJob transitions, posted off the hot path.

An Event is for humans (`kubectl describe`); losing one must never slow or
fail a reconcile, so events are queued and posted by a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

from fondation_contracts import analysisjob as aj
from fondation_contracts.text import clean
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError
from fondation_operator.kube.resources import EVENTS

log = logging.getLogger(__name__)
COMPONENT = "fondation-operator"


@dataclass(frozen=True)
class Event:
    namespace: str
    name: str
    uid: str
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


class EventRecorder:
    def __init__(self, client: KubeClient, *, capacity: int = 10_000) -> None:
        self._client = client
        self._queue: asyncio.Queue[Event] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None

    def record(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning(
                "event queue full, dropping %s/%s %s", event.namespace, event.name, event.reason
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-poster")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def flush(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._post(event)
            except (ApiError, OSError, TimeoutError) as exc:
                log.warning(
                    "could not post event %s on %s/%s: %s",
                    event.reason,
                    event.namespace,
                    event.name,
                    exc,
                )
            finally:
                self._queue.task_done()

    async def _post(self, event: Event) -> None:
        ts = datetime.datetime.now(datetime.UTC)
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{event.name[:200]}.{secrets.token_hex(8)}",
                "namespace": event.namespace,
            },
            "involvedObject": {
                "apiVersion": aj.API_VERSION,
                "kind": aj.KIND,
                "name": event.name,
                "namespace": event.namespace,
                "uid": event.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": clean(event.message)[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self._client.create(EVENTS, body, event.namespace)

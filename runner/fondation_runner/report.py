"""Reporting a run: to the operator's ingest endpoint, and to stdout.

The runner has no Kubernetes rights; it reports to the operator over HTTP
with its per-job token (read from the mounted file, sent only in the
`Authorization` header, never printed):

    POST {url}/v1/namespaces/{ns}/analysisjobs/{name}/events   ProgressEvent
    POST {url}/v1/namespaces/{ns}/analysisjobs/{name}/course   Course

The operator may be restarting while a runner reports, so a post is retried
with exponential backoff on connection errors, 5xx, 408 and 429. The budget
is shared by all posts: once the endpoint has been failing for
`give_up_after` seconds (10 minutes by default) without a success, posts stop
waiting for it. Any other 4xx (a bad token, a job that no longer exists) is
final at once: asking again cannot succeed.

Events are posted in order by a background task, so a slow endpoint never
stalls the analysis; the course is posted last, once every event has gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

import aiohttp

from fondation_contracts.course import Course
from fondation_contracts.ingest import (
    ATTEMPT_ENV,
    ATTEMPT_HEADER,
    INGEST_URL_ENV,
    TOKEN_FILE_ENV,
    TOKEN_HEADER,
    ProgressEvent,
)
from fondation_runner.progress import CLONE_STEP_NAME, ProgressLog

logger = logging.getLogger(__name__)

DEFAULT_GIVE_UP_AFTER = 600.0
DEFAULT_FIRST_DELAY = 0.5
DEFAULT_MAX_DELAY = 30.0
DEFAULT_REQUEST_TIMEOUT = 30.0
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


class IngestError(Exception):
    """A report could not be delivered."""


class IngestRejected(IngestError):
    """The operator answered with a final refusal (a 4xx other than 408/429)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"the operator refused the report: HTTP {status} {detail}".strip())


class IngestUnavailable(IngestError):
    """The operator could not be reached within the retry budget."""


@dataclass(frozen=True)
class IngestTarget:
    url: str
    namespace: str
    name: str
    token: str = field(repr=False)
    attempt: int = 0

    @classmethod
    def from_environment(
        cls, *, namespace: str, name: str, environ: Mapping[str, str] | None = None
    ) -> IngestTarget | None:
        """The target named by the pod's environment, or None when it names none."""
        env = os.environ if environ is None else environ
        url = env.get(INGEST_URL_ENV, "").strip()
        if not url:
            return None
        token_file = env.get(TOKEN_FILE_ENV, "").strip()
        if not token_file:
            raise IngestError(f"{INGEST_URL_ENV} is set but {TOKEN_FILE_ENV} is not")
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise IngestError(
                f"cannot read the token file {token_file}: {error.strerror}"
            ) from None
        if not token:
            raise IngestError(f"the token file {token_file} is empty")
        if not namespace or not name:
            raise IngestError("reporting needs the AnalysisJob's namespace and name")
        try:
            attempt = int(env.get(ATTEMPT_ENV, "0") or 0)
        except ValueError:
            raise IngestError(f"{ATTEMPT_ENV} is not a number") from None
        return cls(
            url=url.rstrip("/"), namespace=namespace, name=name, token=token, attempt=attempt
        )

    def endpoint(self, what: str) -> str:
        return (
            f"{self.url}/v1/namespaces/{quote(self.namespace, safe='')}"
            f"/analysisjobs/{quote(self.name, safe='')}/{what}"
        )


RetryListener = Callable[[str, int, str], None]
"""Called with (what, attempt, problem) each time a post will be retried."""


class IngestClient:
    def __init__(
        self,
        target: IngestTarget,
        *,
        give_up_after: float = DEFAULT_GIVE_UP_AFTER,
        first_delay: float = DEFAULT_FIRST_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        on_retry: RetryListener | None = None,
    ) -> None:
        self.target = target
        self.give_up_after = give_up_after
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.request_timeout = request_timeout
        self.on_retry = on_retry
        self._session: aiohttp.ClientSession | None = None
        self._failing_since: float | None = None

    async def post_event(self, event: ProgressEvent) -> None:
        await self._post("events", event.model_dump_json(by_alias=True))

    async def post_course(self, course: Course) -> None:
        await self._post("course", course.model_dump_json(by_alias=True))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, what: str, body: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.request_timeout)
            )
        url = self.target.endpoint(what)
        headers = {
            TOKEN_HEADER: f"Bearer {self.target.token}",
            "Content-Type": "application/json",
            # The token proves this attempt: a late report from an earlier
            # attempt's pod is refused.
            ATTEMPT_HEADER: str(self.target.attempt),
        }
        delay = self.first_delay
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with self._session.post(url, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        self._failing_since = None
                        return
                    detail = " ".join((await response.text())[:200].split())
                    if 400 <= response.status < 500 and (
                        response.status not in RETRYABLE_CLIENT_ERRORS
                    ):
                        raise IngestRejected(response.status, detail)
                    problem = f"HTTP {response.status}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            wait = min(self.max_delay, retry_after if retry_after is not None else delay)
            if now + wait > self._failing_since + self.give_up_after:
                raise IngestUnavailable(
                    f"could not post {what} to the operator in {self.give_up_after:g}s "
                    f"({attempt} attempts; last: {problem})"
                )
            if self.on_retry is not None:
                self.on_retry(what, attempt, problem)
            logger.warning("posting %s failed (%s); retrying in %.1fs", what, problem, wait)
            await asyncio.sleep(wait)
            delay = min(self.max_delay, delay * 2)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class Reporter:
    """The event sink of a run: a line on stdout per event, and the ingest
    endpoint when there is one (posted in order, in the background)."""

    def __init__(
        self,
        client: IngestClient | None = None,
        *,
        stream: TextIO | None = None,
        log: ProgressLog | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.log = log or ProgressLog()
        self._queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self.current_step = CLONE_STEP_NAME
        """The step of the latest event: where a run-level failure is reported."""

    async def __call__(self, event: ProgressEvent) -> None:
        self.current_step = event.step_name
        stream = self.stream or sys.stdout
        print(self.log.line(event), file=stream, flush=True)
        if self.client is None:
            return
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_events(self.client))
        self._queue.put_nowait(event)

    async def finish(self, course: Course | None) -> None:
        """Deliver the queued events, then the course (when there is one).

        Raises IngestError when the course could not be delivered; a lost
        progress event is only logged.
        """
        if self.client is None:
            return
        try:
            if self._sender is not None:
                await self._queue.join()
                self._sender.cancel()
            if course is not None:
                await self.client.post_course(course)
        finally:
            await self.client.close()

    async def _send_events(self, client: IngestClient) -> None:
        while True:
            event = await self._queue.get()
            try:
                await client.post_event(event)
            except IngestError as error:
                logger.error("progress event for step %s not delivered: %s", event.step, error)
            finally:
                self._queue.task_done()

"""The ingest endpoint: where runner pods report progress and their course.

Runner pods hold no Kubernetes rights; this endpoint is their only channel,
and a runner runs a model over an untrusted repository, so it trusts
nothing:

- the token proves the AnalysisJob and the attempt (`tokens`), checked in
  constant time before any of the body is read; a report from another
  attempt or for a finished job is refused;
- the body is read whole, however the network splits it, up to a cap that
  holds after decompression too (gzip and deflate are decompressed here, in
  bounded steps, so a compression bomb costs at most the cap), and within a
  deadline;
- course uploads are bounded in number (beyond it: 503, the runner
  retries), and parsed and validated off the event loop, after a cheap
  count of the JSON's values so that no body makes the validator build
  millions of errors;
- connections are bounded per peer and must send their headers promptly
  (`httpserver.ConnectionLimits`);
- nothing is written unless all of that passes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NoReturn

from aiohttp import web
from pydantic import ValidationError

from fondation_contracts.course import Course
from fondation_contracts.ingest import ATTEMPT_HEADER, ProgressEvent
from fondation_operator import tokens
from fondation_operator.course_store import CourseTooLarge
from fondation_operator.httpserver import ConnectionLimits, Server
from fondation_operator.observed import ObservedAnalysisJob
from fondation_operator.reconcile import Reconciler

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
MAX_JSON_VALUES = 20_000
"""Strings, objects, arrays and items a course may hold: a course of 400
documents (the most `Course` allows) and 200 errors has about 5,000.
Counted before validation, which would otherwise build an error for each of
millions of `{}` (20 GB for 16 MB of them) or of unknown keys."""
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_ATTEMPT = re.compile(r"^[1-9][0-9]{0,5}$")
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_INFLATE_STEP = 1024 * 1024
_GZIP = zlib.MAX_WBITS | 16
_COMPRESSED = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class BodyRefused(Exception):
    """A body that will not be read further; `status` is the answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def _refuse(status: int, message: str) -> NoReturn:
    raise BodyRefused(status, message)


@dataclass(frozen=True)
class IngestLimits:
    max_course_bytes: int = 16 * 1024 * 1024
    max_concurrent_uploads: int = 2
    body_timeout: float = 120.0
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, decompressed, or BodyRefused with its status: 413 over `limit` (before
    or after decompression), 408 when it does not arrive whole within
    `timeout` or is cut short (the runner retries 408), 400 for a corrupt
    compressed body, 415 for an encoding other than gzip/deflate."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", *_COMPRESSED):
        _refuse(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    if request.content_length is not None and request.content_length > limit:
        _refuse(413, f"the body is {request.content_length} bytes, over the {limit} limit")
    inflate = zlib.decompressobj(_COMPRESSED[encoding]) if encoding in _COMPRESSED else None
    raw = bytearray()
    received = 0
    try:
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + timeout):
            while chunk := await request.content.readany():
                received += len(chunk)
                if received > limit:
                    _refuse(413, f"the body is over the {limit} bytes limit")
                if inflate is None:
                    raw += chunk
                    continue
                data = chunk
                while data:
                    # At most 1 MiB per step (a few ms), never past the cap.
                    raw += inflate.decompress(data, min(_INFLATE_STEP, limit + 1 - len(raw)))
                    if len(raw) > limit:
                        _refuse(413, f"the body decompresses to over the {limit} bytes limit")
                    data = inflate.unconsumed_tail
                    await asyncio.sleep(0)
    except TimeoutError:
        _refuse(408, f"the body did not arrive whole within {timeout:g}s")
    except zlib.error as exc:
        _refuse(400, f"the body is not valid {encoding}: {exc}")
    # Cut short: what arrived is not what was sent, so asking again may work.
    if inflate is not None and not inflate.eof:
        _refuse(408, f"the {encoding} body is cut short")
    if request.content_length is not None and received < request.content_length:
        _refuse(408, "the body is cut short")
    return bytes(raw)


def count_json_values(raw: bytes, limit: int) -> int:
    """An upper bound of the strings, objects, arrays and items in a JSON text,
    counted until it passes `limit`: brackets and commas between strings are
    counted in C, strings one by one, so no text costs more than `limit` steps."""
    count = 0
    last = 0
    for string in _JSON_STRING.finditer(raw):
        count += _structural(raw, last, string.start()) + 1
        last = string.end()
        if count > limit:
            return count
    return count + _structural(raw, last, len(raw))


def _structural(raw: bytes, start: int, end: int) -> int:
    return raw.count(b"{", start, end) + raw.count(b"[", start, end) + raw.count(b",", start, end)


def decode_course(raw: bytes) -> Course:
    """The Course in `raw`; ValueError for JSON that is not one, ValidationError
    for a Course that breaks the contract."""
    if count_json_values(raw, MAX_JSON_VALUES) > MAX_JSON_VALUES:
        raise ValueError(f"more than {MAX_JSON_VALUES} JSON values (strings, objects, items)")
    return Course.model_validate_json(raw)


class IngestServer:
    def __init__(
        self,
        reconciler: Reconciler,
        key: bytes,
        *,
        limits: IngestLimits,
        indexed: Callable[[], bool],
    ) -> None:
        self.reconciler = reconciler
        self._indexed = indexed
        self._key = key
        self.limits = limits
        self._uploads = asyncio.Semaphore(limits.max_concurrent_uploads)
        # One thread: parsing is CPU-bound and holds the GIL anyway; the point is
        # to keep the event loop answering between steps, and to bound memory.
        self._parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
        self._server = Server(self.app(), limits.connections)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def connections(self) -> int:
        return self._server.connections

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_course_bytes)
        base = "/v1/namespaces/{namespace}/analysisjobs/{name}"
        app.router.add_post(base + "/events", self._events)
        app.router.add_post(base + "/course", self._course)
        return app

    async def start(self, host: str, port: int) -> None:
        await self._server.start(host, port)

    async def stop(self) -> None:
        await self._server.stop()
        self._parser.shutdown(wait=False, cancel_futures=True)

    # ---- checks ------------------------------------------------------------

    def _authorise(self, request: web.Request) -> ObservedAnalysisJob | web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not (_NAME.match(namespace) and _NAME.match(name)):
            return _error(404, "no such AnalysisJob")
        if not self._indexed():
            # Just restarted: the job is probably known, just not yet listed.
            return _error(503, "starting", **{"Retry-After": "1"})
        header = request.headers.get("Authorization", "")
        presented = header[7:] if header.startswith("Bearer ") else ""
        claimed = request.headers.get(ATTEMPT_HEADER, "")
        cr = self.reconciler.current((namespace, name))
        # Same answer for an unknown job, a missing attempt and a wrong token:
        # no probing for names.
        if (
            cr is None
            or not presented
            or not _ATTEMPT.match(claimed)
            or not tokens.verify(self._key, cr.uid, int(claimed), presented)
        ):
            return _error(401, "invalid token")
        if int(claimed) > cr.status.attempt:
            # The Job exists before its attempt is in status: not yet, not never.
            return _error(503, f"attempt {claimed} is not recorded yet", **{"Retry-After": "1"})
        if int(claimed) < cr.status.attempt:
            return _error(409, f"attempt {claimed} is not the current attempt")
        if cr.status.phase.terminal:
            return _error(409, f"the AnalysisJob is {cr.status.phase.value}")
        return cr

    @staticmethod
    def _invalid(exc: ValidationError) -> web.Response:
        found = exc.errors(include_input=False, include_url=False)
        if found and found[0]["type"] == "json_invalid":
            return _error(400, f"malformed JSON: {found[0]['msg']}")
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in found[:20]
        ]
        return web.json_response({"error": "invalid body", "fields": errors}, status=422)

    # ---- handlers ----------------------------------------------------------

    async def _events(self, request: web.Request) -> web.Response:
        cr = self._authorise(request)
        if isinstance(cr, web.Response):
            return cr
        try:
            raw = await read_body(request, MAX_EVENT_BYTES, self.limits.body_timeout)
        except BodyRefused as exc:
            return _error(exc.status, str(exc))
        try:
            # At most 64 KB of a flat model: microseconds, fine on the loop.
            event = ProgressEvent.model_validate_json(raw)
        except ValidationError as exc:
            return self._invalid(exc)
        await self.reconciler.record_progress(cr, event)
        return web.json_response({"accepted": True}, status=202)

    async def _course(self, request: web.Request) -> web.Response:
        cr = self._authorise(request)
        if isinstance(cr, web.Response):
            return cr
        if self._uploads.locked():
            return _error(503, "too many course uploads at once", **{"Retry-After": "2"})
        async with self._uploads:
            try:
                raw = await read_body(
                    request, self.limits.max_course_bytes, self.limits.body_timeout
                )
            except BodyRefused as exc:
                return _error(exc.status, str(exc))
            loop = asyncio.get_running_loop()
            try:
                course = await loop.run_in_executor(self._parser, decode_course, raw)
            except ValidationError as exc:
                return self._invalid(exc)
            except ValueError as exc:
                return _error(413, str(exc))
            finally:
                del raw
            slugs = [d.slug for d in course.documents]
            if len(set(slugs)) != len(slugs):
                return _error(422, "document slugs must be unique")
            try:
                await self.reconciler.record_course(cr, course)
            except CourseTooLarge as exc:
                return _error(413, str(exc))
        return web.json_response({"accepted": True, "documents": len(course.documents)}, status=201)

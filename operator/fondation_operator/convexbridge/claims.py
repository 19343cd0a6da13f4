"""What the bridge still owes Convex, kept in one Secret so it survives a crash.

A claim carries the job's callbackToken, which `jobs:updateStatus` requires
and which Convex hands out only once, at the claim. It must outlive the
operator process (a restart continues the job), yet appear in no status,
event, annotation or log. So each claim is recorded, token included, in one
Secret of the operator's own namespace, and removed once Convex has been
told how the job ended. The Secret's name is fixed so that RBAC can grant
`get`/`patch` on it alone (deploy/rbac.yaml, `resourceNames`): the operator
still reads no other Secret, and it creates this one as it creates every
per-job token Secret.

A record holds everything needed to (re)create the AnalysisJob, so the
order "claim, record, create" leaves no window where a crash loses track of
a claim that has an AnalysisJob; a crash between claim and record costs at
most one lease period (Convex hands the job out again when it expires).

One record per entry of `data`, keyed `<namespace>.<name>` of the
AnalysisJob (namespaces have no dots): a JSON merge patch adds or removes
one entry without reading the others, so concurrent writers never conflict.
Bounds: what Convex hands out is not trusted. Each field of a record has a
maximum length and a record at most `MAX_RECORD_BYTES` once encoded, checked
when it is built from a claim, so an oversized or malformed claim is refused
alone (`RecordInvalid`, naming the field, never its value) before anything
is written. A typical record is ~0.5 KiB. A batch the API server refuses
(the Secret full, one entry it rejects) is written again entry by entry, so
one bad record fails alone (`RecordRefused`) and never the others.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from fondation_contracts import analysisjob as aj
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError, Conflict, NotFound
from fondation_operator.kube.resources import SECRETS
from fondation_operator.observed import Key

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 4096
"""Encoded (base64) size of one record at most."""
_ID = r"^[A-Za-z0-9_-]+$"
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


class RecordInvalid(ValueError):
    """A claim that cannot be recorded; the message names the fields, not their values."""


class RecordRefused(Exception):
    """The API server refused this one record (alone); the claim cannot be followed."""


class ClaimRecord(BaseModel):
    """One claimed attempt: enough to create, follow and report its AnalysisJob."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    namespace: str = Field(max_length=63)
    name: str = Field(max_length=200)
    job_id: str = Field(alias="jobId", min_length=1, max_length=128, pattern=_ID)
    attempt: int = Field(ge=1, le=1000)
    repository_id: str | None = Field(
        None, alias="repositoryId", max_length=128, pattern=_NO_CONTROL
    )
    user_id: str | None = Field(None, alias="userId", max_length=128, pattern=_NO_CONTROL)
    repository_url: str | None = Field(
        None, alias="repositoryUrl", max_length=2048, pattern=_NO_CONTROL
    )
    branch: str = Field("", max_length=255, pattern=_NO_CONTROL)
    refusal: str | None = Field(None, max_length=1024)
    """Why the job cannot run at all, known at the claim (a missing prompt)."""
    language: str = Field("en", max_length=35, pattern=_NO_CONTROL)
    callback_token: SecretStr | None = Field(None, alias="callbackToken", max_length=1024)

    @model_validator(mode="after")
    def _bounded(self) -> ClaimRecord:
        if len(self.encode()) > MAX_RECORD_BYTES:
            raise ValueError(f"the record is over {MAX_RECORD_BYTES} bytes once encoded")
        return self

    @classmethod
    def bounded(cls, **fields: object) -> ClaimRecord:
        """Build a record from a claim's fields; `RecordInvalid` if they are not fit."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise RecordInvalid(describe(exc)) from None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def encode(self) -> str:
        """The Secret's value for this record: the one place the token is revealed."""
        data = self.model_dump(mode="python", by_alias=True, exclude_none=True)
        if self.callback_token is not None:
            data["callbackToken"] = self.callback_token.get_secret_value()
        return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()

    @classmethod
    def decode(cls, value: str) -> ClaimRecord:
        return cls.model_validate_json(base64.b64decode(value))


def describe(exc: ValidationError) -> str:
    """Which fields are wrong and why, without their values (a token may be one)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "record"
        problems.append(f"{where}: {err['msg']}")
    return "claim cannot be recorded: " + "; ".join(problems)


def entry_key(key: Key) -> str:
    return f"{key[0]}.{key[1]}"


class ClaimStore:
    """The Secret, written by group commit: the changes made while one patch is
    in flight go together in the next one. Many claims and completions at
    once (a burst, a recovery) then cost a few writes of the Secret rather
    than one each, and never contend with each other for it."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        # entry -> (latest value, None to delete; who waits for it)
        self._pending: dict[str, tuple[str | None, list[asyncio.Future[None]]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0

    async def load(self, namespace: str) -> list[ClaimRecord]:
        """The records of AnalysisJobs in `namespace`, creating the Secret if missing."""
        try:
            secret = await self.client.get(SECRETS, self.name, self.namespace)
        except NotFound:
            await self._create()
            return []
        records = []
        prefix = f"{namespace}."
        for entry, value in (secret.get("data") or {}).items():
            if not entry.startswith(prefix):
                continue  # another bridge's (another namespace) records
            try:
                records.append(ClaimRecord.decode(value))
            except (ValueError, ValidationError):
                log.error("ignoring unreadable claim record %s in Secret %s", entry, self.name)
        return records

    async def _create(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    aj.LABEL_MANAGED_BY: aj.MANAGED_BY,
                    aj.LABEL_COMPONENT: "convex-bridge",
                },
            },
            "data": {},
        }
        with contextlib.suppress(Conflict):  # created meanwhile: fine
            await self.client.create(SECRETS, body, self.namespace)

    async def put(self, record: ClaimRecord) -> None:
        """Return once the record is stored; raises what the API server said."""
        await self._commit(entry_key(record.key), record.encode())

    async def remove(self, key: Key) -> None:
        await self._commit(entry_key(key), None)

    async def _commit(self, entry: str, value: str | None) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A waiter cancelled meanwhile (the bridge stopping) must not leave an
        # exception nobody retrieves.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        _, waiters = self._pending.get(entry, (None, []))
        self._pending[entry] = (value, [*waiters, done])  # the latest value wins
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="convex-claims-writer")
        await asyncio.shield(done)

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self._patch({entry: value for entry, (value, _) in batch.items()})
            except ApiError as exc:
                if len(batch) > 1 and 400 <= exc.status < 500 and exc.status not in (404, 409):
                    # One entry may be the cause: each alone, so it fails alone.
                    for entry, pending in batch.items():
                        await self._write_one(entry, pending)
                    continue
                _settle(batch, exc)
            except Exception as exc:  # every waiter gets the API server's answer
                _settle(batch, exc)
            else:
                _settle(batch, None)

    async def _write_one(
        self, entry: str, pending: tuple[str | None, list[asyncio.Future[None]]]
    ) -> None:
        value, _ = pending
        error: Exception | None = None
        try:
            await self._patch({entry: value})
        except ApiError as exc:
            transient = exc.status >= 500 or exc.status in (404, 409, 429)
            error = exc if transient else RecordRefused(f"claim record {entry}: {exc.message}")
        except Exception as exc:
            error = exc
        _settle({entry: pending}, error)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _patch(self, data: dict[str, str | None]) -> None:
        self.writes += 1
        try:
            await self.client.patch(SECRETS, self.name, {"data": data}, self.namespace)
        except NotFound:
            await self._create()
            await self.client.patch(SECRETS, self.name, {"data": data}, self.namespace)


def _settle(
    batch: dict[str, tuple[str | None, list[asyncio.Future[None]]]], error: Exception | None
) -> None:
    """Answer everyone waiting on `batch`: stored, or the error."""
    for _, waiters in batch.values():
        for done in waiters:
            if done.done():
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

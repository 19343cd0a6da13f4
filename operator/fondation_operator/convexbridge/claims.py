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
Size: a record is ~0.5 KiB, so the bridge's `max_claims` (<= 2000) keeps the
Secret under its 1 MiB limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from fondation_contracts import analysisjob as aj
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import Conflict, NotFound
from fondation_operator.kube.resources import SECRETS
from fondation_operator.observed import Key

log = logging.getLogger(__name__)


class ClaimRecord(BaseModel):
    """One claimed attempt: enough to create, follow and report its AnalysisJob."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    namespace: str
    name: str
    job_id: str = Field(alias="jobId")
    attempt: int = Field(ge=1)
    repository_id: str | None = Field(None, alias="repositoryId")
    user_id: str | None = Field(None, alias="userId")
    repository_url: str | None = Field(None, alias="repositoryUrl")
    branch: str = ""
    refusal: str | None = None
    """Why the job cannot run at all, known at the claim (a missing prompt)."""
    language: str = "en"
    callback_token: SecretStr | None = Field(None, alias="callbackToken")

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
            waiters = [done for _, entry_waiters in batch.values() for done in entry_waiters]
            try:
                await self._patch({entry: value for entry, (value, _) in batch.items()})
            except Exception as exc:  # every waiter gets the API server's answer
                for done in waiters:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for done in waiters:
                if not done.done():
                    done.set_result(None)

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

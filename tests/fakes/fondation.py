"""Seeding and reading the fake of Fondation's Convex functions.

The fake (tests/fakes/fondation_convex/, served by
`ConvexEmulator(functions="fondation")`) has no UI: these helpers stand in
for a user signing in, importing a repository and pressing "generate", and
read back what the UI would show. They call the fake's internal `seed:*`
functions, so they use the deploy key; the bridge under test should call the
public functions without it, as Fondation's worker does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from tests.cluster.convex_emulator import ConvexEmulator

DEFAULT_PROMPT = "Explain the code base"


@dataclass(frozen=True)
class SeededJob:
    """A pending job and the rows it refers to."""

    user_id: str
    github_id: str
    repository_id: str
    job_id: str


class FondationSeed:
    def __init__(self, emulator: ConvexEmulator) -> None:
        if emulator.functions != "fondation":
            raise ValueError(
                f"the emulator serves the {emulator.functions} functions, not fondation"
            )
        self.emulator = emulator

    def user(
        self, *, github_id: str | None = None, token: str | None = None, username: str | None = None
    ) -> str:
        """A user; `token` is stored as given (`enc_v1_...`, `obf_...` or plain)."""
        args: dict[str, object] = {}
        if github_id is not None:
            args["githubId"] = github_id
        if token is not None:
            args["githubAccessToken"] = token
        if username is not None:
            args["username"] = username
        user_id: str = self.emulator.call("mutation", "seed:user", args)
        return user_id

    def repository(self, user_id: str, full_name: str, *, default_branch: str | None = None) -> str:
        args: dict[str, object] = {"userId": user_id, "fullName": full_name}
        if default_branch is not None:
            args["defaultBranch"] = default_branch
        repository_id: str = self.emulator.call("mutation", "seed:repository", args)
        return repository_id

    def job(
        self,
        user_id: str,
        repository_id: str,
        *,
        prompt: str | None = DEFAULT_PROMPT,
        run_at_ms: int | None = None,
        max_attempts: int | None = None,
        attempts: int | None = None,
    ) -> str:
        """A pending job as the UI creates it; `prompt=None` leaves the prompt out."""
        args: dict[str, object] = {"userId": user_id, "repositoryId": repository_id}
        for key, value in (
            ("prompt", prompt),
            ("runAt", run_at_ms),
            ("maxAttempts", max_attempts),
            ("attempts", attempts),
        ):
            if value is not None:
                args[key] = value
        job_id: str = self.emulator.call("mutation", "seed:job", args)
        return job_id

    def pending_job(
        self,
        full_name: str = "acme/widgets",
        *,
        default_branch: str | None = None,
        token: str | None = None,
        prompt: str | None = DEFAULT_PROMPT,
        max_attempts: int | None = None,
    ) -> SeededJob:
        """A new user (a githubId of its own) with one repository and a pending job for it."""
        github_id = str(secrets.randbelow(10**12))
        user_id = self.user(github_id=github_id, token=token)
        repository_id = self.repository(user_id, full_name, default_branch=default_branch)
        job_id = self.job(user_id, repository_id, prompt=prompt, max_attempts=max_attempts)
        return SeededJob(user_id, github_id, repository_id, job_id)

    def remove(self, table: Literal["users", "repositories"], row_id: str) -> None:
        """Deletes a row, to test a worker facing a missing user or repository."""
        self.emulator.call("mutation", "seed:remove", {"table": table, "id": row_id})

    def job_row(self, job_id: str) -> dict[str, Any]:
        row: dict[str, Any] | None = self.emulator.call("query", "jobs:getJob", {"jobId": job_id})
        if row is None:
            raise LookupError(f"job {job_id} does not exist")
        return row

    def docs_of_repository(self, repository_id: str) -> list[dict[str, Any]]:
        """The repository's course as the UI lists it, chapters by chapterIndex."""
        docs: list[dict[str, Any]] = self.emulator.call(
            "query", "seed:docsOfRepository", {"repositoryId": repository_id}
        )
        return docs

    def docs_of_job(self, job_id: str) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = self.emulator.call(
            "query", "seed:docsOfJob", {"jobId": job_id}
        )
        return docs

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = self.emulator.call("query", "jobs:getLogs", {"jobId": job_id})
        return logs

    def shows_course(self, job_id: str) -> bool:
        """Whether the UI offers "Voir le cours": status completed and docsCount > 0."""
        row = self.job_row(job_id)
        return row["status"] == "completed" and int(row.get("docsCount") or 0) > 0

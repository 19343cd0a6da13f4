"""One face for the two function sets the bridge is tested against.

The contract tests (test_bridge.py) run each scenario against the fake of
Fondation's own functions and against the project's convex/, which must
behave the same for everything Fondation's worker and UI do. What differs
is only how a test stands in for the web app: how a job is created (a user
importing a repository and pressing "generate", or `jobs:enqueue`), and
how the rows are read back. This module hides that difference, and nothing
else: the bridge under test sees only the public functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.cluster.convex_emulator import ConvexEmulator
from tests.fakes.fondation import FondationSeed

REPOSITORY = "acme/widgets"
CLONE_URL = f"https://github.com/{REPOSITORY}.git"
DEFAULT_BRANCH = "develop"
PLAIN_TOKEN = "ghp_" + "Plain0" * 6
"""Every Fondation user has a GitHub token: it signed in with GitHub."""


@dataclass(frozen=True)
class Seeded:
    job_id: str
    repository_id: str


class Deployment:
    """A Convex deployment as the web app sees it."""

    def __init__(self, emulator: ConvexEmulator) -> None:
        self.emulator = emulator
        self.fondation = emulator.functions == "fondation"
        self._seed = FondationSeed(emulator) if self.fondation else None

    @property
    def name(self) -> str:
        return self.emulator.functions

    def enqueue(
        self,
        *,
        token: str | None = None,
        without_token: bool = False,
        max_attempts: int | None = None,
        prompt: str | None = "Explain the code base",
        full_name: str = REPOSITORY,
    ) -> Seeded:
        """A pending job for `full_name` at its default branch, DEFAULT_BRANCH;
        on Fondation, of a user whose GitHub token is stored as `token`
        (PLAIN_TOKEN by default, none `without_token`)."""
        if self._seed is not None:
            seeded = self._seed.pending_job(
                full_name,
                default_branch=DEFAULT_BRANCH,
                token=None if without_token else (token or PLAIN_TOKEN),
                prompt=prompt,
                max_attempts=max_attempts,
            )
            return Seeded(seeded.job_id, seeded.repository_id)
        if token is not None:
            raise NotImplementedError("users are seeded in the Fondation fake only")
        args: dict[str, object] = {
            "repositoryUrl": f"https://github.com/{full_name}.git",
            "branch": DEFAULT_BRANCH,
        }
        if max_attempts is not None:
            args["maxAttempts"] = max_attempts
        if prompt is not None:
            args["prompt"] = prompt
        job_id = self.emulator.call("mutation", "jobs:enqueue", args)
        assert isinstance(job_id, str)
        return Seeded(job_id, self.job(job_id)["repositoryId"])

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's row, as the UI's `jobs:getJob` returns it."""
        row = self.emulator.call("query", "jobs:getJob", {"jobId": job_id})
        assert isinstance(row, dict), f"job {job_id} does not exist"
        return row

    def docs_of_job(self, job_id: str) -> list[dict[str, Any]]:
        if self._seed is not None:
            return self._seed.docs_of_job(job_id)
        rows = self.emulator.call("query", "docs:listByJob", {"jobId": job_id})
        assert isinstance(rows, list)
        return rows

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        rows = self.emulator.call("query", "jobs:getLogs", {"jobId": job_id})
        assert isinstance(rows, list)
        return rows

    def request_cancel(self, job_id: str) -> None:
        """The UI's cancel button."""
        self.emulator.call("mutation", "jobs:requestCancel", {"jobId": job_id})

    def regenerate(self, job_id: str) -> str:
        """The UI's "regenerate" button: a new job for the same repository."""
        answer = self.emulator.call("mutation", "jobs:regenerate", {"jobId": job_id})
        new = answer["jobId"] if isinstance(answer, dict) else answer
        assert isinstance(new, str)
        return new

    def course_shown(self, job_id: str) -> bool:
        """The UI's "Voir le cours" conditions: completed, with documents."""
        row = self.job(job_id)
        return row["status"] == "completed" and (row.get("docsCount") or 0) > 0

"""Fondation's job vocabulary: what its Convex `jobs` table and its UI expect.

These literals are a contract with code this project does not own (the
Fondation web app, DESIGN section 6) and with the project's own convex/,
whose validators must list the same values (tests/contracts checks both).
The UI is in French whatever language a course is written in, so the
progress words below are French and only French.
"""

from __future__ import annotations

from typing import Literal, get_args

JobStatus = Literal[
    "pending",
    "claimed",
    "running",
    "cloning",
    "analyzing",
    "gathering",
    "completed",
    "failed",
    "canceled",
    "dead",
]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)

HeartbeatStatus = Literal["cloning", "analyzing", "gathering", "running"]
"""The statuses `queue:heartbeat` accepts: the worker's progress through a run."""

FinalStatus = Literal["failed", "canceled"]
"""Statuses the worker may end a job with through `jobs:updateStatus`."""

STOPPED_STATUSES: frozenset[str] = frozenset({"canceled", "failed", "dead", "completed"})
"""A job in one of these is over: nothing may be written over it, its run stops."""

LogLevel = Literal["info", "error"]
"""`jobLogs.level`."""

TOTAL_STEPS = 6

# The worker's words, exactly (DESIGN section 6), in the order it writes them.
PROGRESS_INITIALIZING = "Initializing..."
PROGRESS_CLONING = "Clonage du dépôt..."
PROGRESS_ANALYZING = "Analyse du code..."
PROGRESS_GATHERING = "Sauvegarde des résultats..."
STEP_WORDS: tuple[str, str, str, str, str, str] = (
    "Extraction des abstractions principales",
    "Analyse des relations entre composants",
    "Détermination de l'ordre optimal des chapitres",
    "Génération du contenu des chapitres",
    "Révision et amélioration des chapitres",
    "Génération de tutoriels interactifs",
)
"""The six steps' words, in pipeline order (ingest.STEP_NAMES)."""


def step_progress(step: int) -> str:
    """`Étape 4/6: Génération du contenu des chapitres` for step 4."""
    if not 1 <= step <= TOTAL_STEPS:
        raise ValueError(f"step {step} is not between 1 and {TOTAL_STEPS}")
    return f"Étape {step}/{TOTAL_STEPS}: {STEP_WORDS[step - 1]}"


# Why a job cannot run, in the words Fondation's worker fails it with.
MISSING_USER = "User not found"
MISSING_GITHUB_TOKEN = "GitHub token not found for user"
MISSING_PROMPT = "Job has no prompt"
SUPERSEDED = "Superseded by a newer job for the same repository"

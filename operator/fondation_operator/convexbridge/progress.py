"""From an AnalysisJob's status to what the Fondation UI shows for its job.

The UI reads a Convex job's `status`, `currentStep`/`totalSteps` and a
`progress` string, all written by the worker through `queue:heartbeat`, in
Fondation's words (French, whatever language the course is written in:
fondation_contracts.fondation). The statuses follow the order Fondation's
own worker reports them in:

    claimed -> running (`Initializing...`) -> cloning (`Clonage du dépôt...`)
    -> analyzing (`Analyse du code...` once cloned, then `Étape N/6: ...`)
    -> gathering (`Sauvegarde des résultats...`) -> completed

An AnalysisJob waiting for a free slot (Queued) shows nothing new: the job
stays `claimed`, as it would while Fondation's single worker is busy.

This module is pure: the same AnalysisJob status always gives the same
`Progress`, so the bridge can compare what it last sent with what it would
send now and call Convex only when they differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from fondation_contracts import fondation
from fondation_contracts.analysisjob import Phase
from fondation_contracts.fondation import HeartbeatStatus
from fondation_contracts.ingest import STEP_NAMES
from fondation_operator.observed import ObservedAnalysisJob

CLONE_STEP_NAME = "clone"
TOTAL_STEPS = fondation.TOTAL_STEPS
assert len(STEP_NAMES) == len(fondation.STEP_WORDS) == TOTAL_STEPS


@dataclass(frozen=True)
class Progress:
    """One `queue:heartbeat` worth of UI state."""

    status: HeartbeatStatus
    progress: str
    current_step: int
    total_steps: int = TOTAL_STEPS


def normalise_language(language: str | None, default: str) -> str:
    """`fr-FR`, `FR`, `fr_FR` -> `fr`; empty -> `default`. (The course's
    language: the UI's words do not depend on it.)"""
    if not language or not language.strip():
        return default
    return language.strip().replace("_", "-").split("-", 1)[0].lower()


STARTING = Progress("running", fondation.PROGRESS_INITIALIZING, 0)
CLONING = Progress("cloning", fondation.PROGRESS_CLONING, 0)
ANALYZING = Progress("analyzing", fondation.PROGRESS_ANALYZING, 0)
SAVING = Progress("gathering", fondation.PROGRESS_GATHERING, TOTAL_STEPS)


def step(n: int) -> Progress:
    n = min(max(n, 1), TOTAL_STEPS)
    return Progress("analyzing", fondation.step_progress(n), n)


def of(cr: ObservedAnalysisJob) -> Progress | None:
    """What the UI should show while `cr` runs; None when there is nothing
    new to show: just created or waiting for a slot (Convex says `claimed`
    already), or finished (the outcome is reported by complete/retryOrFail,
    not by a status)."""
    phase = cr.status.phase
    if phase.terminal or phase in (Phase.PENDING, Phase.QUEUED):
        return None
    progress = cr.status.progress
    if progress is None or (progress.step == 0 and progress.step_name != CLONE_STEP_NAME):
        return STARTING
    if progress.step == 0:
        # The clone's end records the commit: the analysis is about to start.
        cloned = cr.status.result is not None and bool(cr.status.result.commit)
        return ANALYZING if cloned else CLONING
    return step(progress.step)

"""From an AnalysisJob's status to what the Fondation UI shows for its job.

The UI reads a Convex job's `status`, `currentStep`/`totalSteps` and a
`progress` string in the job's language (`Étape 4/6: Génération des
chapitres`). The statuses follow the order Fondation's own worker reported
them in:

    claimed (queued for a slot) -> running (runner starting) -> cloning
    -> analyzing (steps 1..6) -> gathering (storing the course) -> completed

This module is pure: the same AnalysisJob status always gives the same
`Progress`, so the bridge can compare what it last sent with what it would
send now and call Convex only when they differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from fondation_contracts.analysisjob import TOTAL_STEPS, Phase
from fondation_contracts.ingest import STEP_NAMES
from fondation_operator.convexbridge.models import JobStatus
from fondation_operator.observed import ObservedAnalysisJob

CLONE_STEP_NAME = "clone"


@dataclass(frozen=True)
class Phrases:
    step: str
    """`{n}`/`{total}`/`{label}` placeholders."""
    steps: tuple[str, str, str, str, str, str]
    """Labels of the six steps, in STEP_NAMES order."""
    queued: str
    starting: str
    cloning: str
    saving: str


PHRASES: dict[str, Phrases] = {
    "en": Phrases(
        step="Step {n}/{total}: {label}",
        steps=(
            "Identifying abstractions",
            "Analyzing relationships",
            "Ordering chapters",
            "Writing chapters",
            "Reviewing chapters",
            "Writing the tutorial",
        ),
        queued="Waiting for a free runner",
        starting="Starting the analysis",
        cloning="Cloning the repository",
        saving="Saving the course",
    ),
    "fr": Phrases(
        step="Étape {n}/{total}: {label}",
        steps=(
            "Identification des abstractions",
            "Analyse des relations",
            "Ordonnancement des chapitres",
            "Génération des chapitres",
            "Relecture des chapitres",
            "Rédaction du tutoriel",
        ),
        queued="En attente d'un exécuteur libre",
        starting="Démarrage de l'analyse",
        cloning="Clonage du dépôt",
        saving="Enregistrement du cours",
    ),
}
DEFAULT_LANGUAGE = "en"
assert len(STEP_NAMES) == TOTAL_STEPS == 6


@dataclass(frozen=True)
class Progress:
    """One `jobs:updateStatus` worth of UI state."""

    status: JobStatus
    progress: str
    current_step: int
    total_steps: int = TOTAL_STEPS


def normalise_language(language: str | None, default: str) -> str:
    """`fr-FR`, `FR`, `fr_FR` -> `fr`; empty -> `default`."""
    if not language or not language.strip():
        return default
    return language.strip().replace("_", "-").split("-", 1)[0].lower()


def phrases(language: str) -> Phrases:
    return PHRASES.get(normalise_language(language, DEFAULT_LANGUAGE), PHRASES[DEFAULT_LANGUAGE])


def step_text(step: int, language: str) -> str:
    """`Étape 4/6: Génération des chapitres` for step 4 in French."""
    words = phrases(language)
    return words.step.format(n=step, total=TOTAL_STEPS, label=words.steps[step - 1])


def saving(language: str) -> Progress:
    return Progress("gathering", phrases(language).saving, TOTAL_STEPS)


def of(cr: ObservedAnalysisJob, language: str) -> Progress | None:
    """What the UI should show while `cr` runs; None when there is nothing
    new to show: just created (Convex says `claimed` already), or finished
    (the outcome is reported by complete/retryOrFail, not by a status)."""
    phase = cr.status.phase
    words = phrases(language)
    if phase.terminal or phase is Phase.PENDING:
        # Pending: not reconciled yet, and the job is `claimed` in Convex already.
        return None
    if phase is Phase.QUEUED:
        return Progress("claimed", words.queued, 0)
    progress = cr.status.progress
    if progress is None or (progress.step == 0 and progress.step_name != CLONE_STEP_NAME):
        return Progress("running", words.starting, 0)
    if progress.step == 0:
        return Progress("cloning", words.cloning, 0)
    step = min(max(progress.step, 1), TOTAL_STEPS)
    return Progress("analyzing", step_text(step, language), step)

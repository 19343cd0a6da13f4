"""What the Fondation UI shows for each state of an AnalysisJob."""

from __future__ import annotations

from typing import Any

import pytest

from fondation_contracts.ingest import STEP_NAMES
from fondation_operator.convexbridge import progress
from fondation_operator.convexbridge.progress import Progress
from fondation_operator.observed import ObservedAnalysisJob


def cr(status: dict[str, Any] | None = None) -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(
        {
            "metadata": {"namespace": "ns", "name": "j", "uid": "u", "resourceVersion": "1"},
            "spec": {"source": {"repository": "https://example.com/a/b.git"}},
            "status": status or {},
        }
    )


def running(step: int, step_name: str) -> ObservedAnalysisJob:
    return cr({"phase": "Running", "progress": {"step": step, "stepName": step_name}})


def test_the_six_steps_in_french_as_the_ui_shows_them() -> None:
    shown = [progress.of(running(i + 1, name), "fr") for i, name in enumerate(STEP_NAMES)]
    assert shown == [
        Progress("analyzing", "Étape 1/6: Identification des abstractions", 1),
        Progress("analyzing", "Étape 2/6: Analyse des relations", 2),
        Progress("analyzing", "Étape 3/6: Ordonnancement des chapitres", 3),
        Progress("analyzing", "Étape 4/6: Génération des chapitres", 4),
        Progress("analyzing", "Étape 5/6: Relecture des chapitres", 5),
        Progress("analyzing", "Étape 6/6: Rédaction du tutoriel", 6),
    ]
    assert all(p is not None and p.total_steps == 6 for p in shown)


def test_english_and_unknown_languages() -> None:
    assert progress.of(running(4, "chapters"), "en") == Progress(
        "analyzing", "Step 4/6: Writing chapters", 4
    )
    # A language without phrases falls back to English rather than showing nothing.
    assert progress.step_text(4, "ja") == "Step 4/6: Writing chapters"
    assert progress.step_text(4, "fr-FR") == "Étape 4/6: Génération des chapitres"


def test_statuses_follow_fondations_worker_order() -> None:
    assert progress.of(cr(), "en") is None  # just created: Convex says "claimed" already
    assert progress.of(cr({"phase": "Queued"}), "fr") == Progress(
        "claimed", "En attente d'un exécuteur libre", 0
    )
    assert progress.of(cr({"phase": "Running"}), "en") == Progress(
        "running", "Starting the analysis", 0
    )
    assert progress.of(running(0, "clone"), "fr") == Progress("cloning", "Clonage du dépôt", 0)
    assert progress.saving("fr") == Progress("gathering", "Enregistrement du cours", 6)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_a_finished_analysis_is_reported_by_its_outcome_not_a_status(phase: str) -> None:
    assert progress.of(cr({"phase": phase, "progress": {"step": 6}}), "en") is None


def test_equal_states_compare_equal_so_nothing_is_sent_twice() -> None:
    assert progress.of(running(3, "order"), "en") == progress.of(running(3, "order"), "en")
    assert progress.of(running(3, "order"), "en") != progress.of(running(4, "chapters"), "en")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, "en"), ("", "en"), ("fr", "fr"), ("FR", "fr"), ("fr-CA", "fr"), ("pt_BR", "pt")],
)
def test_language_normalisation(given: str | None, expected: str) -> None:
    assert progress.normalise_language(given, "en") == expected

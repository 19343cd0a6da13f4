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


def test_the_six_steps_in_fondations_words() -> None:
    shown = [progress.of(running(i + 1, name)) for i, name in enumerate(STEP_NAMES)]
    assert shown == [
        Progress("analyzing", "Étape 1/6: Extraction des abstractions principales", 1),
        Progress("analyzing", "Étape 2/6: Analyse des relations entre composants", 2),
        Progress("analyzing", "Étape 3/6: Détermination de l'ordre optimal des chapitres", 3),
        Progress("analyzing", "Étape 4/6: Génération du contenu des chapitres", 4),
        Progress("analyzing", "Étape 5/6: Révision et amélioration des chapitres", 5),
        Progress("analyzing", "Étape 6/6: Génération de tutoriels interactifs", 6),
    ]
    assert all(p is not None and p.total_steps == 6 for p in shown)


@pytest.mark.parametrize("language", ["en", "fr", "ja", "pt-BR"])
def test_the_words_do_not_depend_on_the_course_language(language: str) -> None:
    """The UI is French whatever language the course is written in."""
    body = {
        "metadata": {"namespace": "ns", "name": "j", "uid": "u", "resourceVersion": "1"},
        "spec": {"source": {"repository": "https://example.com/a/b.git"}, "language": language},
        "status": {"phase": "Running", "progress": {"step": 4, "stepName": "chapters"}},
    }
    shown = progress.of(ObservedAnalysisJob.from_body(body))
    assert shown == Progress("analyzing", "Étape 4/6: Génération du contenu des chapitres", 4)


def test_statuses_follow_fondations_worker_order() -> None:
    assert progress.of(cr()) is None  # just created: Convex says "claimed" already
    # Waiting for a slot: the job stays "claimed", as behind Fondation's busy worker.
    assert progress.of(cr({"phase": "Queued"})) is None
    assert progress.of(cr({"phase": "Running"})) == Progress("running", "Initializing...", 0)
    assert progress.of(running(0, "clone")) == Progress("cloning", "Clonage du dépôt...", 0)
    cloned = cr(
        {
            "phase": "Running",
            "progress": {"step": 0, "stepName": "clone"},
            "result": {"commit": "a" * 40},
        }
    )
    assert progress.of(cloned) == Progress("analyzing", "Analyse du code...", 0)
    assert Progress("gathering", "Sauvegarde des résultats...", 6) == progress.SAVING


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_a_finished_analysis_is_reported_by_its_outcome_not_a_status(phase: str) -> None:
    assert progress.of(cr({"phase": phase, "progress": {"step": 6}})) is None


def test_equal_states_compare_equal_so_nothing_is_sent_twice() -> None:
    assert progress.of(running(3, "order")) == progress.of(running(3, "order"))
    assert progress.of(running(3, "order")) != progress.of(running(4, "chapters"))


def test_a_step_out_of_range_is_clamped_not_shown_as_nonsense() -> None:
    assert progress.of(running(9, "extra")) == progress.step(6)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, "en"), ("", "en"), ("fr", "fr"), ("FR", "fr"), ("fr-CA", "fr"), ("pt_BR", "pt")],
)
def test_language_normalisation(given: str | None, expected: str) -> None:
    assert progress.normalise_language(given, "en") == expected

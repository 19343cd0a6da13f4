"""The bridge claims only what the operator can start."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from pydantic import SecretStr

from fondation_operator.convexbridge.bridge import ConvexBridge, Tracked
from fondation_operator.convexbridge.claims import ClaimRecord
from fondation_operator.convexbridge.settings import ConvexSettings
from fondation_operator.kube.client import KubeClient
from fondation_operator.observed import Key, ObservedAnalysisJob, ObservedJob


def cr(name: str, phase: str = "") -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(
        {
            "metadata": {"namespace": "ns", "name": name, "uid": name, "resourceVersion": "1"},
            "spec": {"source": {"repository": "https://example.com/a/b.git"}},
            "status": {"phase": phase} if phase else {},
        }
    )


class View:
    def __init__(self, crs: list[ObservedAnalysisJob], jobs: list[ObservedJob]) -> None:
        self.crs, self.job_list = crs, jobs

    def analysisjob(self, key: Key) -> ObservedAnalysisJob | None:
        return next((c for c in self.crs if c.key == key), None)

    def analysisjobs(self) -> Iterable[ObservedAnalysisJob]:
        return self.crs

    def jobs_of(self, key: Key) -> Iterable[ObservedJob]:
        return [j for j in self.job_list if j.key == key]

    def jobs(self) -> Iterable[ObservedJob]:
        return self.job_list


def bridge(cap: int, view: View | None, max_claims: int = 1000) -> ConvexBridge:
    settings = ConvexSettings(
        url="http://127.0.0.1:1",
        deploy_key=SecretStr("k"),
        namespace="ns",
        worker_id="w",
        claims_namespace="fondation-system",
        max_claims=max_claims,
    )
    return ConvexBridge(
        settings, cast(KubeClient, object()), max_concurrent_jobs=cap, view=lambda: view
    )


def track(b: ConvexBridge, name: str, analysisjob: ObservedAnalysisJob | None = None) -> None:
    record = ClaimRecord(namespace="ns", name=name, job_id=name, attempt=1)
    b.tracked[record.key] = Tracked(record, cr=analysisjob)


def test_running_and_waiting_analysisjobs_hold_slots() -> None:
    running = ObservedJob("ns", "aj-a-1", "a", 1, "", "", "", 1)
    view = View([cr("a", "Running"), cr("b", "Queued"), cr("done", "Succeeded")], [running])
    assert bridge(cap=2, view=view).busy_slots() == 2
    assert not bridge(cap=2, view=view).has_capacity()
    assert bridge(cap=3, view=view).has_capacity()
    assert bridge(cap=0, view=view).has_capacity()  # no cap


def test_a_claim_holds_a_slot_before_the_operator_sees_its_analysisjob() -> None:
    b = bridge(cap=2, view=View([cr("a", "Running")], []))
    track(b, "new")  # created a moment ago, not in the view yet
    assert b.busy_slots() == 2
    assert not b.has_capacity()
    # Seen in the view too: still one slot, not two.
    b2 = bridge(cap=3, view=View([cr("a", "Running"), cr("new")], []))
    track(b2, "new", cr("new"))
    assert b2.busy_slots() == 2
    # Finished, it only waits for its report to Convex: the slot is free.
    track(b2, "old", cr("old", "Succeeded"))
    assert b2.busy_slots() == 2


def test_without_a_view_and_without_a_cap_the_bridge_bounds_its_own_claims() -> None:
    b = bridge(cap=0, view=None, max_claims=2)
    track(b, "one")
    assert b.has_capacity()
    track(b, "two")
    assert not b.has_capacity()

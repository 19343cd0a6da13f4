from __future__ import annotations

from fondation_operator.admission import Admission
from fondation_operator.observed import ObservedAnalysisJob


def _cr(name: str, created: str, rv: str) -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": name,
                "resourceVersion": rv,
                "creationTimestamp": created,
            },
            "spec": {"source": {"repository": "https://example.com/a/b"}},
        }
    )


def test_only_the_head_of_the_queue_is_admitted() -> None:
    a = _cr("zeta", "2026-01-01T00:00:00Z", "10")
    b = _cr("alpha", "2026-01-01T00:00:00Z", "11")  # same second, created later
    c = _cr("beta", "2026-01-01T00:00:01Z", "5")
    admission = Admission(max_concurrent=2)
    waiting = [c, b, a]
    running = {("ns", "other")}
    assert not admission.admit(b, running, waiting)  # one slot, and `a` is first
    assert admission.admit(a, running, waiting)
    # `a` holds a reservation now: no slot left for anyone.
    assert not admission.admit(b, running, [c, b])
    admission.observed(a.key)
    assert admission.admit(b, running, [c, b])


def test_reservations_count_until_observed() -> None:
    admission = Admission(max_concurrent=1)
    x = _cr("x", "2026-01-01T00:00:00Z", "1")
    y = _cr("y", "2026-01-01T00:00:01Z", "2")
    assert admission.admit(x, set(), [x, y])
    assert admission.free_slots(set()) == 0
    assert not admission.admit(y, set(), [y])
    admission.observed(x.key)  # its Job finished or vanished
    assert admission.admit(y, set(), [y])


def test_unlimited_admits_everyone() -> None:
    admission = Admission(max_concurrent=0)
    crs = [_cr(f"n{i}", "2026-01-01T00:00:00Z", str(i)) for i in range(50)]
    assert all(admission.admit(cr, set(), crs) for cr in crs)

"""The cap and who goes next: FIFO within a namespace, round-robin between them."""

from __future__ import annotations

from fondation_operator.admission import Admission, fair_order
from fondation_operator.observed import ObservedAnalysisJob


def _cr(name: str, created: str, rv: str, namespace: str = "ns") -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
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


def _flood(namespace: str, count: int, second: int = 0) -> list[ObservedAnalysisJob]:
    return [
        _cr(f"{namespace}-{i:04d}", f"2026-01-01T00:{second:02d}:00Z", str(i), namespace)
        for i in range(count)
    ]


def test_a_namespace_with_many_queued_jobs_does_not_starve_another() -> None:
    # `big` queued 1,000 AnalysisJobs a minute before `small` queued one,
    # and holds every slot but one.
    big = _flood("big", 1000)
    small = _cr("late", "2026-01-01T00:01:00Z", "5000", "small")
    running = {("big", f"running-{i}") for i in range(3)}
    admission = Admission(max_concurrent=4)
    assert [cr.key for cr in admission.next_up(running, [*big, small])] == [small.key]
    assert not admission.admit(big[0], running, [*big, small])
    assert admission.admit(small, running, [*big, small])


def test_free_slots_are_dealt_round_robin_and_fifo_within_a_namespace() -> None:
    a = _flood("a", 5, second=0)
    b = _flood("b", 5, second=1)
    c = _flood("c", 1, second=2)
    order = fair_order([*c, *b, *a], in_flight=set(), limit=8)
    assert [cr.name for cr in order] == [
        "a-0000", "b-0000", "c-0000", "a-0001", "b-0001", "a-0002", "b-0002", "a-0003"
    ]  # fmt: skip


def test_the_namespace_with_fewer_jobs_in_flight_goes_first() -> None:
    a = _flood("a", 3, second=0)
    b = _flood("b", 3, second=1)
    in_flight = {("a", "x"), ("a", "y")}
    order = fair_order([*a, *b], in_flight, limit=4)
    assert [cr.name for cr in order] == ["b-0000", "b-0001", "a-0000", "b-0002"]


def test_with_one_namespace_the_order_is_fifo() -> None:
    crs = _flood("only", 50)
    assert fair_order(list(reversed(crs)), set(), limit=50) == crs
    assert fair_order(crs, set(), limit=0) == []

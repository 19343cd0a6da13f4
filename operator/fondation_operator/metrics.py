"""Prometheus metrics in the text exposition format.

A handful of series does not justify a client library: counters and one
histogram are kept here and rendered by hand; gauges are computed from the
cluster view at scrape time, so they can never drift from it.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable

from fondation_contracts.analysisjob import Phase
from fondation_operator.cache import ClusterView, running_keys

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str) -> list[str]:
        lines = [f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.sum:.6f}")
        lines.append(f"{name}_count {self.count}")
        return lines


class Metrics:
    def __init__(self) -> None:
        self.reconcile_latency = Histogram(LATENCY_BUCKETS)
        self.reconcile_errors = 0
        self.finished_total: Counter[Phase] = Counter()

    def reconciled(self, seconds: float, ok: bool) -> None:
        self.reconcile_latency.observe(seconds)
        if not ok:
            self.reconcile_errors += 1

    def finished(self, phase: Phase) -> None:
        self.finished_total[phase] += 1

    def render(self, view: ClusterView | None) -> str:
        lines: list[str] = []
        phases: Counter[Phase] = Counter()
        in_flight = 0
        if view is not None:
            phases.update(cr.status.phase for cr in view.analysisjobs())
            in_flight = len(running_keys(view))
        lines.append("# HELP fondation_analysisjobs AnalysisJobs by phase.")
        lines.append("# TYPE fondation_analysisjobs gauge")
        for phase in Phase:
            lines.append(f'fondation_analysisjobs{{phase="{phase.value}"}} {phases[phase]}')
        for name, phase in (
            ("queued", Phase.QUEUED),
            ("running", Phase.RUNNING),
            ("succeeded", Phase.SUCCEEDED),
            ("failed", Phase.FAILED),
        ):
            lines.append(f"# TYPE fondation_analysisjobs_{name} gauge")
            lines.append(f"fondation_analysisjobs_{name} {phases[phase]}")
        lines.append("# HELP fondation_jobs_in_flight Unfinished runner Jobs (pending pods count).")
        lines.append("# TYPE fondation_jobs_in_flight gauge")
        lines.append(f"fondation_jobs_in_flight {in_flight}")
        lines.append("# TYPE fondation_analysisjobs_finished_total counter")
        for phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED):
            lines.append(
                f'fondation_analysisjobs_finished_total{{phase="{phase.value}"}} '
                f"{self.finished_total[phase]}"
            )
        lines.append("# TYPE fondation_reconcile_errors_total counter")
        lines.append(f"fondation_reconcile_errors_total {self.reconcile_errors}")
        lines.append("# HELP fondation_reconcile_duration_seconds Time of one reconcile.")
        lines.extend(self.reconcile_latency.render("fondation_reconcile_duration_seconds"))
        return "\n".join(lines) + "\n"

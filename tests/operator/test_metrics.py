from __future__ import annotations

from fondation_contracts.analysisjob import Phase
from fondation_operator.metrics import Histogram, Metrics


def test_histogram_is_cumulative() -> None:
    h = Histogram([0.1, 1.0])
    for v in (0.05, 0.5, 0.5, 5.0):
        h.observe(v)
    lines = h.render("x")
    assert 'x_bucket{le="0.1"} 1' in lines
    assert 'x_bucket{le="1.0"} 3' in lines
    assert 'x_bucket{le="+Inf"} 4' in lines
    assert "x_count 4" in lines


def test_render_without_a_view_is_valid_exposition() -> None:
    m = Metrics()
    m.finished(Phase.FAILED)
    m.reconciled(0.02, ok=False)
    text = m.render(None)
    assert 'fondation_analysisjobs_finished_total{phase="Failed"} 1' in text
    assert "fondation_reconcile_errors_total 1" in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.split(" ")) == 2, line

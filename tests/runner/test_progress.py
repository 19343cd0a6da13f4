from __future__ import annotations

from fondation_contracts.course import StepUsage
from fondation_contracts.ingest import StepState
from fondation_runner.progress import ProgressLog, make_event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_read_like_a_progress_log() -> None:
    clock = Clock()
    log = ProgressLog(clock)

    assert log.line(make_event("order", StepState.STARTED)) == "[3/6 order] started"
    clock.now += 1.24
    cached = StepUsage(step="order", cached=True)
    assert (
        log.line(make_event("order", StepState.FINISHED, "7 chapters", usage=cached))
        == "[3/6 order] finished in 1.2s (0 LLM calls, cached): 7 chapters"
    )


def test_costs_retries_and_failures() -> None:
    clock = Clock()
    log = ProgressLog(clock)
    log.line(make_event("chapters", StepState.STARTED, "5 chapters"))
    assert (
        log.line(make_event("chapters", StepState.RETRYING, "chapter 2: bad\nmore detail"))
        == "[4/6 chapters] retrying: chapter 2: bad"
    )
    clock.now += 30
    usage = StepUsage(
        step="chapters", input_tokens=1200, output_tokens=800, cost_usd=0.042, llm_calls=6
    )
    assert log.line(make_event("chapters", StepState.FINISHED, usage=usage)) == (
        "[4/6 chapters] finished in 30.0s (6 LLM calls, 1200 in / 800 out tokens, $0.0420)"
    )
    log.line(make_event("clone", StepState.CLONING, "https://h/r.git at main"))
    clock.now += 2
    assert log.line(make_event("clone", StepState.FAILED, "no such ref")) == (
        "[0/6 clone] failed after 2.0s: no such ref"
    )


def test_messages_are_cut_to_the_contract() -> None:
    event = make_event("review", StepState.RETRYING, "x" * 5000)
    assert len(event.message) == 2000
    assert event.step == 5

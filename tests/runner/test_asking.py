from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fondation_contracts.course import StepUsage
from fondation_runner.asking import Asker, Meter, StepFailed
from fondation_runner.backends.base import Answer, BackendError, StepRequest
from fondation_runner.cache import StepCache
from fondation_runner.validate import ValidationFailed


@dataclass
class FailingBackend:
    error: BackendError
    name: str = "failing"
    calls: int = 0

    async def answer(self, request: StepRequest) -> Answer:
        self.calls += 1
        raise self.error


@dataclass
class EchoBackend:
    texts: list[str]
    name: str = "echo"
    prompts: list[str] = field(default_factory=list)

    async def answer(self, request: StepRequest) -> Answer:
        self.prompts.append(request.prompt)
        usage = StepUsage(step=request.step, input_tokens=10, output_tokens=5, llm_calls=2)
        return Answer(text=self.texts[len(self.prompts) - 1], usage=usage)


def must_be_ok(text: str) -> str:
    if text != "ok":
        raise ValidationFailed([f"{text!r} is not ok"])
    return text


async def no_notice(message: str) -> None:
    return None


async def test_a_refused_credential_is_not_asked_again(tmp_path: Path) -> None:
    spent = StepUsage(step="order", input_tokens=100, cost_usd=0.01, llm_calls=1)
    backend = FailingBackend(BackendError("credentials refused", reason="auth", usage=spent))
    meter = Meter("order")
    asker = Asker(backend=backend, source_dir=tmp_path, revision="r", max_attempts=3)

    with pytest.raises(StepFailed, match=r"the backend failed \(auth\): credentials refused"):
        await asker.ask(
            "order", prompt="p", inputs={}, validate=must_be_ok, meter=meter, on_retry=no_notice
        )

    assert backend.calls == 1
    assert meter.usage().input_tokens == 100  # what the failed attempt cost is still counted
    assert meter.usage().cost_usd == 0.01


async def test_a_timeout_is_retried(tmp_path: Path) -> None:
    backend = FailingBackend(BackendError("no answer within 60 s", reason="timeout"))
    notices: list[str] = []

    async def notice(message: str) -> None:
        notices.append(message)

    asker = Asker(backend=backend, source_dir=tmp_path, revision="r", max_attempts=2)
    with pytest.raises(StepFailed):
        await asker.ask(
            "order",
            prompt="p",
            inputs={},
            validate=must_be_ok,
            meter=Meter("order"),
            on_retry=notice,
        )
    assert backend.calls == 2
    assert notices == [
        "order: attempt 1/2 refused: the backend failed (timeout): no answer within 60 s"
    ]


async def test_usage_sums_every_attempt_and_only_valid_answers_are_cached(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "cache")
    backend = EchoBackend(["nope", "ok"])
    meter = Meter("order")
    asker = Asker(backend=backend, source_dir=tmp_path, revision="r", cache=cache)

    valid = await asker.ask(
        "order", prompt="p", inputs={"a": 1}, validate=must_be_ok, meter=meter, on_retry=no_notice
    )

    assert valid.value == "ok"
    usage = meter.usage()
    assert (usage.input_tokens, usage.output_tokens, usage.llm_calls, usage.cached) == (
        20,
        10,
        4,
        False,
    )
    entries = list((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == 1
    assert '"text":"ok"' in entries[0].read_text()

    again = Meter("order")
    await asker.ask(
        "order", prompt="p", inputs={"a": 1}, validate=must_be_ok, meter=again, on_retry=no_notice
    )
    assert len(backend.prompts) == 2  # served from the cache
    assert again.usage().cached
    assert again.usage().llm_calls == 0


async def test_a_cached_answer_that_no_longer_validates_is_asked_again(tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "cache")
    asker = Asker(backend=EchoBackend(["ok"]), source_dir=tmp_path, revision="r", cache=cache)
    await asker.ask(
        "order",
        prompt="p",
        inputs={},
        validate=must_be_ok,
        meter=Meter("order"),
        on_retry=no_notice,
    )

    def stricter(text: str) -> str:
        raise ValidationFailed(["new rule"])

    strict_backend = EchoBackend(["still refused"])
    strict = Asker(
        backend=strict_backend, source_dir=tmp_path, revision="r", cache=cache, max_attempts=1
    )
    with pytest.raises(StepFailed):
        await strict.ask(
            "order",
            prompt="p",
            inputs={},
            validate=stricter,
            meter=Meter("order"),
            on_retry=no_notice,
        )
    assert strict_backend.prompts == ["p"]

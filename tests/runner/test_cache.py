from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from fondation_runner.backends.offline import OfflineBackend
from fondation_runner.cache import CacheKey, StepCache
from fondation_runner.pipeline import Pipeline, PipelineSettings
from tests.runner.helpers import CountingBackend, EventLog

KEY = CacheKey(
    revision="a" * 40,
    prompt_version="v1",
    model="claude-sonnet",
    language="en",
    backend="claude",
    step="chapters",
    inputs={"position": 0, "abstraction": {"name": "Router"}},
)


@pytest.mark.parametrize(
    "change",
    [
        {"revision": "b" * 40},
        {"prompt_version": "v2"},
        {"model": "claude-opus"},
        {"language": "fr"},
        {"backend": "offline"},
        {"step": "review"},
        {"inputs": {"position": 1, "abstraction": {"name": "Router"}}},
    ],
)
def test_every_part_of_the_key_matters(change: dict[str, object]) -> None:
    assert dataclasses.replace(KEY, **change).digest() != KEY.digest()  # type: ignore[arg-type]


def test_key_does_not_depend_on_dict_order() -> None:
    reordered = dataclasses.replace(KEY, inputs={"abstraction": {"name": "Router"}, "position": 0})
    assert reordered.digest() == KEY.digest()


def test_round_trip_and_misses(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    assert cache.get(KEY) is None
    cache.put(KEY, "# Chapter 1\n")
    assert cache.get(KEY) == "# Chapter 1\n"
    assert cache.get(dataclasses.replace(KEY, language="fr")) is None


def test_a_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = StepCache(tmp_path)
    cache.put(KEY, "text")
    [entry] = tmp_path.rglob("*.json")
    entry.write_text("{not json")
    assert cache.get(KEY) is None
    cache.put(KEY, "text again")
    assert cache.get(KEY) == "text again"


async def test_rerun_on_an_unchanged_commit_makes_no_backend_call(
    sample_repo: Path, tmp_path: Path
) -> None:
    cache = StepCache(tmp_path / "cache")

    async def run(out: str, **settings: object) -> tuple[CountingBackend, EventLog]:
        backend = CountingBackend(OfflineBackend())
        events = EventLog()
        await Pipeline(
            backend,  # type: ignore[arg-type]
            source_dir=sample_repo,
            output_base=tmp_path / out,
            revision="c" * 40,
            settings=PipelineSettings(**settings),  # type: ignore[arg-type]
            cache=cache,
            sink=events,
        ).run()
        return backend, events

    first, _ = await run("first")
    assert first.calls == 1 + 1 + 1 + 7 + 7 + (7 + 1)  # step 6: 7 tutorials, the overview

    second, events = await run("second")
    assert second.calls == 0
    finished = [e for e in events.events if e.state.value == "finished"]
    assert all(e.usage is not None and e.usage.cached for e in finished)
    for path in (tmp_path / "first").rglob("*.md"):
        twin = tmp_path / "second" / path.relative_to(tmp_path / "first")
        assert twin.read_text() == path.read_text()

    in_french, _ = await run("third", language="fr")
    assert in_french.calls == first.calls


async def test_without_a_commit_the_content_is_the_key(sample_repo: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(sample_repo, source)
    cache = StepCache(tmp_path / "cache")

    async def calls() -> int:
        backend = CountingBackend(OfflineBackend())
        await Pipeline(
            backend,  # type: ignore[arg-type]
            source_dir=source,
            output_base=tmp_path / "out",
            cache=cache,
        ).run()
        return backend.calls

    assert await calls() == 25
    assert await calls() == 0
    (source / "taskq" / "retry.py").write_text(
        (source / "taskq" / "retry.py").read_text() + "\n\nJITTER = 0.1\n"
    )
    assert await calls() == 25

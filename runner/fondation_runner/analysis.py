"""One analysis, from a source directory to a `Course`: the pipeline writes
the output directory, the parser reads it back, and what the pipeline knows
that the files do not (costs, steps that failed, files left out) is added.

Reading back the files rather than trusting the pipeline's memory means the
course always matches what is on disk, the same way it would for a
directory written by another tool.
"""

from __future__ import annotations

from pathlib import Path

from fondation_contracts.course import Course, StepUsage, bounded_errors
from fondation_runner.backends.base import Backend
from fondation_runner.cache import StepCache
from fondation_runner.parser import parse_output
from fondation_runner.pipeline import Pipeline, PipelineSettings
from fondation_runner.progress import EventSink, describe_usage, discard


async def analyze(
    backend: Backend,
    *,
    source_dir: Path,
    output_base: Path,
    commit: str = "",
    project_name: str = "",
    analysis: str = "",
    settings: PipelineSettings | None = None,
    cache: StepCache | None = None,
    sink: EventSink = discard,
) -> Course:
    """Raises pipeline.AnalysisFailed when nothing could be analysed."""
    settings = settings or PipelineSettings()
    result = await Pipeline(
        backend,
        source_dir=source_dir,
        output_base=output_base,
        revision=commit,
        project_name=project_name,
        settings=settings,
        cache=cache,
        sink=sink,
    ).run()
    course = parse_output(
        result.output_dir, analysis=analysis, commit=commit, language=settings.language
    )
    return course.model_copy(
        update={
            "errors": bounded_errors([*result.errors, *course.errors]),
            "usage": result.usage,
            "partial": course.partial or result.partial,
        }
    )


def project_name(repository: str, sub_path: str = "") -> str:
    """`https://host/org/app.git` + `pkg/core` -> `app/pkg/core`."""
    base = repository.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    base = base or Path(repository).resolve().name
    return f"{base}/{sub_path.strip('/')}" if sub_path.strip("/") else base


def course_summary(course: Course) -> str:
    """One line about a finished course: the last line of a run's log."""
    usage = course.usage
    total = StepUsage(
        step="total",
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        llm_calls=usage.llm_calls,
        cached=bool(usage.steps) and all(s.cached for s in usage.steps),
    )
    return (
        f"course: {len(course.documents)} documents ({len(course.chapters)} chapters)"
        f"{', partial' if course.partial else ''}, {len(course.errors)} problems reported; "
        f"{describe_usage(total)}"
    )

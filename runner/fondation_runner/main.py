"""The runner pod's entry point: clone, analyse, parse, report.

    python -m fondation_runner [--repository URL] [--ref REF] ...

The job comes from the environment the operator sets (see `job`), flags
override it. For a private repository the pod clones in an init container
(`--clone-only`), the only one that mounts the Git credentials, so the
analysis, which runs an LLM agent over the untrusted repository, has no way
to read them; the main container then finds the clone and analyses it.

Exit status: 0 when a course was produced and delivered, even a partial
one (or, with `--clone-only`, the clone is made); 1 when the analysis failed
(after a `failed` event says why) or the course could not be delivered; 2
when the job description itself is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import MutableMapping, Sequence

from pydantic import ValidationError

from fondation_contracts.course import Course
from fondation_contracts.ingest import StepState
from fondation_runner.analysis import analyze, course_summary, project_name
from fondation_runner.backends.base import BackendError
from fondation_runner.backends.factory import BACKEND_NAMES, BackendUnavailable, create_backend
from fondation_runner.cache import StepCache
from fondation_runner.clone import Checkout, CloneError, clone, redact, reopen
from fondation_runner.job import RunnerJob
from fondation_runner.pipeline import AnalysisFailed, PipelineSettings
from fondation_runner.progress import CLONE_STEP_NAME, make_event
from fondation_runner.report import IngestClient, IngestError, IngestTarget, Reporter

logger = logging.getLogger("fondation_runner")

EXIT_OK, EXIT_FAILED, EXIT_BAD_JOB = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    try:
        job = RunnerJob.from_sources(os.environ, vars(args))
    except ValidationError as error:
        print(f"invalid job description: {error}", file=sys.stderr)
        return EXIT_BAD_JOB
    return asyncio.run(run(job, environ=os.environ))


async def run(job: RunnerJob, *, environ: MutableMapping[str, str]) -> int:
    try:
        target = IngestTarget.from_environment(
            namespace=job.namespace, name=job.analysis, environ=environ
        )
    except IngestError as error:
        print(f"cannot report: {error}", file=sys.stderr)
        return EXIT_BAD_JOB
    reporter = Reporter(IngestClient(target) if target else None)
    if job.clone_only:
        return await _clone_only(job, reporter)
    course: Course | None = None
    try:
        course = await _analyze(job, reporter, environ)
    except AnalysisFailed as error:
        logger.error("%s", error)  # the pipeline has already reported the failed step
    except (CloneError, BackendError, BackendUnavailable) as error:
        await reporter(make_event(reporter.current_step, StepState.FAILED, str(error)))
    except Exception as error:
        logger.exception("the analysis crashed")
        await reporter(
            make_event(
                reporter.current_step,
                StepState.FAILED,
                f"internal error: {type(error).__name__}: {error}",
            )
        )
    try:
        await reporter.finish(course)
    except IngestError as error:
        print(f"the course was not delivered: {error}", file=sys.stderr)
        return EXIT_FAILED
    if course is None:
        return EXIT_FAILED
    print(course_summary(course), flush=True)
    return EXIT_OK


async def _analyze(job: RunnerJob, reporter: Reporter, environ: MutableMapping[str, str]) -> Course:
    # The backend takes its credential out of the environment first, so the
    # clone's git never inherits it.
    backend = create_backend(
        job.backend,
        model=job.model,
        home=job.claude_home,
        credentials_dir=job.claude_credentials_dir,
        environ=environ,
    )
    checkout = await _checkout(job, reporter)
    return await analyze(
        backend,
        source_dir=checkout.source_dir,
        output_base=job.output_base,
        commit=checkout.commit,
        project_name=project_name(job.repository, job.sub_path),
        analysis=job.analysis,
        settings=PipelineSettings(
            language=job.language,
            model=job.model,
            max_chapters=job.max_chapters,
            parallelism=job.parallelism,
        ),
        cache=StepCache(job.cache_dir) if job.cache_dir else None,
        sink=reporter,
    )


async def _checkout(job: RunnerJob, reporter: Reporter) -> Checkout:
    """Clone, reporting it; or the clone the pod's init container made."""
    if (job.clone_dir / ".git").is_dir():
        return await asyncio.to_thread(reopen, job.clone_dir, sub_path=job.sub_path)
    where = f"{redact(job.repository)} at {job.ref or 'the default branch'}"
    await reporter(make_event(CLONE_STEP_NAME, StepState.CLONING, where))
    checkout = await asyncio.to_thread(
        clone,
        job.repository,
        job.clone_dir,
        ref=job.ref,
        sub_path=job.sub_path,
        max_bytes=job.max_repository_bytes,
        allowed_hosts=job.allowed_hosts,
        credentials_dir=job.git_credentials_dir,
    )
    await reporter(
        make_event(
            CLONE_STEP_NAME,
            StepState.FINISHED,
            f"commit {checkout.commit}",
            commit=checkout.commit,
        )
    )
    return checkout


async def _clone_only(job: RunnerJob, reporter: Reporter) -> int:
    """The clone and its events, delivered; no course (the next container's)."""
    code = EXIT_OK
    try:
        await _checkout(job, reporter)
    except CloneError as error:
        await reporter(make_event(reporter.current_step, StepState.FAILED, str(error)))
        code = EXIT_FAILED
    await reporter.finish(None)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fondation_runner",
        description="Analyse one repository into a course and report it to the operator.",
    )
    parser.add_argument("--repository")
    parser.add_argument("--ref")
    parser.add_argument("--sub-path", dest="sub_path")
    parser.add_argument("--language")
    parser.add_argument("--model")
    parser.add_argument("--max-chapters", dest="max_chapters", type=int)
    parser.add_argument("--backend", choices=BACKEND_NAMES)
    parser.add_argument("--workspace")
    parser.add_argument("--cache-dir", dest="cache_dir")
    parser.add_argument("--parallelism", type=int)
    parser.add_argument("--namespace")
    parser.add_argument("--analysis")
    parser.add_argument(
        "--clone-only",
        dest="clone_only",
        action="store_true",
        default=None,
        help="clone the repository into the workspace and stop (a pod's init container)",
    )
    return parser

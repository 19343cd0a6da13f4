"""The `fondation` command line.

    fondation analyze <path-or-git-url> [--ref REF] [--out DIR] [--backend claude|offline] ...
    fondation course parse <output-dir>
    fondation course get <analysisjob> [--namespace NS] [--out DIR]
    fondation operator [--kubeconfig FILE] [settings...]

Each subcommand is declared by its own small `add_*` function and imports
the runner only when it runs, so `fondation --help` starts at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from fondation_contracts.course import Course
    from fondation_contracts.ingest import ProgressEvent

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["operator"]:
        # Every flag (including --help) belongs to the operator's own parser.
        from fondation_operator.main import main as operator_main  # noqa: PLC0415

        return operator_main(argv[1:])
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fondation", description="Turn a Git repository into a course of ordered chapters."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_analyze(commands)
    course_commands = add_course(commands)
    add_course_parse(course_commands)
    add_course_get(course_commands)
    add_operator(commands)
    return parser


# fondation analyze -----------------------------------------------------------


def add_analyze(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "analyze",
        help="analyse a repository into a course",
        description=(
            "Analyse a local directory (in place) or a Git repository (cloned at --ref) and "
            "write the course to OUT/.claude-tutorial-output/."
        ),
    )
    parser.add_argument("source", help="a local directory, or a Git URL (https, git@, file://)")
    parser.add_argument("--ref", default="", help="branch, tag or commit to clone")
    parser.add_argument("--sub-path", default="", help="analyse only this directory of it")
    parser.add_argument("--out", type=Path, default=Path(), help="where to write (default: .)")
    parser.add_argument("--backend", choices=("claude", "offline"), default="claude")
    parser.add_argument("--model", default="", help="model for the claude backend")
    parser.add_argument("--language", default="en", help="output language (BCP 47, e.g. fr)")
    parser.add_argument("--max-chapters", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=5, help="concurrent chapter calls")
    parser.add_argument("--cache-dir", type=Path, help="reuse step answers stored here")
    parser.set_defaults(handler=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from fondation_contracts.analysisjob import ALLOWED_HOSTS_ENV, host_list  # noqa: PLC0415
    from fondation_runner.analysis import analyze, course_summary, project_name  # noqa: PLC0415
    from fondation_runner.backends.base import BackendError  # noqa: PLC0415
    from fondation_runner.backends.factory import (  # noqa: PLC0415
        BackendUnavailable,
        create_backend,
    )
    from fondation_runner.cache import StepCache  # noqa: PLC0415
    from fondation_runner.clone import CloneError, clone  # noqa: PLC0415
    from fondation_runner.layout import output_dir  # noqa: PLC0415
    from fondation_runner.pipeline import AnalysisFailed, PipelineSettings  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="fondation-") as scratch:
        try:
            backend = create_backend(
                args.backend,
                model=args.model,
                home=Path(scratch) / "claude-home",
                credentials_dir=Path.home() / ".claude",
                environ=os.environ,
            )
            local = Path(args.source)
            if local.is_dir() and not args.ref:
                source_dir, commit = (local / args.sub_path).resolve(), ""
                if not source_dir.is_dir():
                    raise CloneError(f"{source_dir} is not a directory")
            else:
                checkout = clone(
                    args.source,
                    Path(scratch) / "repository",
                    ref=args.ref,
                    sub_path=args.sub_path,
                    allowed_hosts=host_list(os.environ.get(ALLOWED_HOSTS_ENV, "")),
                )
                source_dir, commit = checkout.source_dir, checkout.commit
            course = asyncio.run(
                analyze(
                    backend,
                    source_dir=source_dir,
                    output_base=args.out,
                    commit=commit,
                    project_name=project_name(
                        str(local.resolve()) if local.is_dir() else args.source, args.sub_path
                    ),
                    settings=PipelineSettings(
                        language=args.language,
                        model=args.model,
                        max_chapters=args.max_chapters,
                        parallelism=args.parallelism,
                    ),
                    cache=StepCache(args.cache_dir) if args.cache_dir else None,
                    sink=TerminalProgress(sys.stdout),
                )
            )
        except (CloneError, AnalysisFailed, BackendError, BackendUnavailable) as error:
            print(f"fondation analyze: {error}", file=sys.stderr)
            return 1
    print(course_summary(course))
    for problem in course.errors:
        where = f"{problem.path}: " if problem.path else ""
        print(f"  - {problem.step or 'parse'}: {where}{problem.message}")
    print(f"written to {output_dir(args.out)}")
    return 0


class TerminalProgress:
    """Progress on a terminal: one line per step, rewritten in place as the step
    moves on (started, retrying, finished); plain lines when not a terminal."""

    def __init__(self, stream: TextIO) -> None:
        from fondation_runner.progress import ProgressLog  # noqa: PLC0415

        self.stream = stream
        self.log = ProgressLog()
        self.tty = stream.isatty()

    async def __call__(self, event: ProgressEvent) -> None:
        from fondation_contracts.ingest import StepState  # noqa: PLC0415

        line = self.log.line(event)
        if not self.tty:
            print(line, file=self.stream, flush=True)
            return
        width = shutil.get_terminal_size().columns - 1
        done = event.state in (StepState.FINISHED, StepState.FAILED)
        self.stream.write("\r\x1b[2K" + line[:width] + ("\n" if done else ""))
        self.stream.flush()


# fondation course ------------------------------------------------------------


def add_course(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The `course` group; returns its subcommands for `add_course_*` to extend."""
    parser = commands.add_parser("course", help="read a course")
    return parser.add_subparsers(dest="course_command", required=True, metavar="COMMAND")


def add_course_parse(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "parse",
        help="print the course in an output directory as JSON",
        description=(
            "Read a .claude-tutorial-output directory (ours or the original Fondation CLI's) "
            "and print the Course as JSON. Problems are listed in `errors`."
        ),
    )
    parser.add_argument("output_dir", type=Path, help="the output directory, or its parent")
    parser.add_argument("--commit", default="")
    parser.add_argument("--language", default="en")
    parser.add_argument("--analysis", default="")
    parser.set_defaults(handler=run_course_parse)


def run_course_parse(args: argparse.Namespace) -> int:
    from fondation_runner.parser import parse_output  # noqa: PLC0415

    course = parse_output(
        args.output_dir, analysis=args.analysis, commit=args.commit, language=args.language
    )
    print(course.model_dump_json(by_alias=True, indent=2))
    return 0 if course.documents else 1


def add_course_get(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "get",
        help="rebuild a finished AnalysisJob's course files from the cluster",
        description=(
            "Read the course of an AnalysisJob from its ConfigMaps, check every document's "
            "sha256, and write Fondation's layout under OUT/.claude-tutorial-output/."
        ),
    )
    parser.add_argument("analysisjob", help="the AnalysisJob's name")
    parser.add_argument("-n", "--namespace", default="", help="default: the context's")
    parser.add_argument("--out", type=Path, default=Path(), help="where to write (default: .)")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, in-cluster, ~/.kube/config")
    parser.add_argument("--json", action="store_true", help="print the Course as JSON instead")
    parser.set_defaults(handler=run_course_get)


def run_course_get(args: argparse.Namespace) -> int:
    from fondation_operator import course_store  # noqa: PLC0415
    from fondation_operator.kube import config as kube_config  # noqa: PLC0415
    from fondation_operator.kube.client import KubeClient  # noqa: PLC0415
    from fondation_operator.kube.errors import ApiError  # noqa: PLC0415
    from fondation_runner.layout import write_documents  # noqa: PLC0415

    try:
        connection = kube_config.load(args.kubeconfig)
    except kube_config.ConfigError as exc:
        print(f"fondation course get: {exc}", file=sys.stderr)
        return 2
    namespace = args.namespace or connection.namespace

    async def fetch() -> Course:
        async with KubeClient(connection) as client:
            return await course_store.load(client, namespace, args.analysisjob)

    try:
        course = asyncio.run(fetch())
    except (ApiError, course_store.CourseUnavailable, KeyError) as exc:
        print(
            f"fondation course get: no course for {namespace}/{args.analysisjob}: {exc}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(course.model_dump_json(by_alias=True, indent=2))
        return 0
    written = write_documents(course.documents, args.out)
    print(
        f"{len(written)} files of {namespace}/{args.analysisjob} (commit {course.commit[:12]}"
        f"{', partial' if course.partial else ''}) written under "
        f"{args.out / '.claude-tutorial-output'}"
    )
    return 0


# fondation operator ----------------------------------------------------------


def add_operator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "operator",
        help="run the operator (reconciles AnalysisJobs into Jobs)",
        description="Run the operator until SIGTERM; `fondation operator --help` lists settings.",
        add_help=False,
    )
    # Listed here for `fondation --help`; `main()` hands its arguments to the
    # operator's own parser, so that `fondation --help` does not import kopf.
    del parser

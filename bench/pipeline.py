"""Pipeline benchmark: `.venv/bin/python -m bench.pipeline [--latency 1.0]`.

The `claude` backend (real claude-agent-sdk, real bundled Claude Code CLI) is
pointed at the local fake Anthropic API, which answers every step of a
10-chapter course on the sample project after a fixed latency L, with valid
answers computed from the sample project itself (ten abstractions, one per
top-level class or function, relationships cited where the code names another
abstraction). Nothing leaves the machine: the CLI's base URL is the fake and
every other destination goes to a refusing proxy.

Each measurement runs the pipeline (`analyze`: the six steps, then the
parser) in its own runner subprocess, so its peak RSS is the runner's alone:

- wall time with the default parallelism, then with parallelism 1 (34 model
  calls: 3 + 10 chapters + 10 reviews + 10 tutorials + 1 overview; at
  parallelism 5 at least 3 + 2 + 2 + 3 = 10 sequential waits, vs 34 L);
- a re-run on the same commit with the step cache (goal: 0 model calls, < 5 s);
- peak RSS: the runner's own (`ru_maxrss` of RUSAGE_SELF, goal <= 200 MB), the
  largest CLI child (RUSAGE_CHILDREN), and the sum over the runner's process
  tree sampled from /proc while it runs;
- the overhead with L = 0, with the fake `claude` and with the `offline`
  backend (goal < 2 s).

Prints the figures and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bench.common import write_results
from fondation_runner.pipeline import DEFAULT_PARALLELISM

if TYPE_CHECKING:  # the runner process must not load the fakes: it is measured
    from tests.fakes.anthropic_api import Script
    from tests.fakes.claude_env import OfflineClaude

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pipeline.json"
SAMPLE_REPO = ROOT / "tests" / "fixtures" / "sample-repo"
COMMAND = ".venv/bin/python -m bench.pipeline"
MODEL = "claude-sonnet-4-5"
CHAPTERS = 10
FAKE_API_KEY = "sk-ant-api03-bench-fake-key-for-the-local-fake-api"
"""Only ever sent to the local fake; handed to the runner in its environment."""

MARKERS: dict[str, str] = {
    "abstractions": "Identify the core abstractions of the project",
    "relationships": "List how the abstractions relate to each other",
    "order": "Choose the order in which the course presents the abstractions",
    "chapters": "## This chapter: ",
    "review": "## The chapter as written",
    "tutorial": "## The chapter it practises",
    "overview": "The course, in reading order: each chapter, then the hands-on tutorial",
}
"""A phrase of each prompt template, found in no other template (step 6 has two:
a chapter's tutorial and the overview page)."""

SAMPLE_INTERVAL_S = 0.05
"""How often the runner's process tree is measured (RSS sum)."""


# -- The scripted model: valid answers derived from the sample project ---------


@dataclass(frozen=True)
class Symbol:
    """A top-level class or function of the sample project: one abstraction."""

    name: str
    path: str
    start: int
    end: int
    summary: str

    @property
    def citation(self) -> str:
        return f"{self.path}:{self.start}-{self.end}"


def project_symbols(source: Path, count: int) -> list[Symbol]:
    """The first `count` top-level classes and functions, by file then line."""
    found: list[Symbol] = []
    for file in sorted(source.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                doc = (ast.get_docstring(node) or f"The `{node.name}` of the project.").split("\n")[
                    0
                ]
                found.append(
                    Symbol(
                        name=node.name,
                        path=file.relative_to(source).as_posix(),
                        start=node.lineno,
                        end=node.end_lineno or node.lineno,
                        summary=doc,
                    )
                )
    if len(found) < count:
        raise SystemExit(f"the sample project defines {len(found)} symbols, {count} needed")
    return found[:count]


@dataclass(frozen=True)
class Course:
    """What the fake model answers for the sample project."""

    symbols: list[Symbol]
    relationships: list[tuple[int, int, str]]
    """(from, to, `path:line`) where `from`'s code names `to`."""
    order: list[int]

    @classmethod
    def of(cls, source: Path, count: int) -> Course:
        symbols = project_symbols(source, count)
        relationships: list[tuple[int, int, str]] = []
        for i, user in enumerate(symbols):
            lines = (source / user.path).read_text(encoding="utf-8").splitlines()
            for j, used in enumerate(symbols):
                if i == j:
                    continue
                word = re.compile(rf"\b{re.escape(used.name)}\b")
                for number in range(user.start + 1, user.end + 1):
                    if word.search(lines[number - 1]):
                        relationships.append((i, j, f"{user.path}:{number}"))
                        break
        return cls(symbols, relationships, _dependencies_first(len(symbols), relationships))

    def by_name(self, name: str) -> tuple[int, Symbol]:
        for i, symbol in enumerate(self.symbols):
            if symbol.name == name:
                return i, symbol
        raise KeyError(name)

    def abstractions(self) -> str:
        return yaml.safe_dump(
            [
                {"name": s.name, "description": s.summary, "file_paths": [s.path]}
                for s in self.symbols
            ],
            sort_keys=False,
        )

    def relationships_yaml(self) -> str:
        return yaml.safe_dump(
            {
                "summary": "taskq is a small in-process task queue with retries and storage.",
                "relationships": [
                    {
                        "from_abstraction": i,
                        "to_abstraction": j,
                        "label": "uses",
                        "evidence": evidence,
                    }
                    for i, j, evidence in self.relationships
                ],
            },
            sort_keys=False,
        )

    def order_yaml(self) -> str:
        return yaml.safe_dump(
            {
                "order": [
                    {
                        "index": i,
                        "name": self.symbols[i].name,
                        "reasoning": "What it uses is taught before it.",
                    }
                    for i in self.order
                ]
            },
            sort_keys=False,
        )

    def chapter(self, prompt: str, *, reviewed: bool) -> str:
        if reviewed:
            number = _search(r"You are reviewing chapter (\d+) of", prompt)
            name = _search(r"The chapter is about \*\*(.+?)\*\*", prompt)
        else:
            number = _search(r"You are writing chapter (\d+) of", prompt)
            name = _search(r"^## This chapter: (.+)$", prompt)
        index, symbol = self.by_name(name)
        files = re.findall(r"^(\d+)\. .+?: `(\d\d_[\w-]+\.md)`$", prompt, re.MULTILINE)
        links = " ".join(f"[chapter {n}]({file})" for n, file in files if n != number)
        neighbours = [
            (j if i == index else i, evidence)
            for i, j, evidence in self.relationships
            if index in (i, j)
        ]
        edges = (
            "".join(
                f'  N{index}["{symbol.name}"] --- N{other}["{self.symbols[other].name}"]\n'
                for other, _ in neighbours
            )
            or f'  N{index}["{symbol.name}"]\n'
        )
        cited = "".join(f"- `{evidence}`\n" for _, evidence in neighbours)
        return (
            f"# Chapter {number}: {symbol.name}\n\n"
            f"{symbol.summary}\n\n"
            f"It is defined at `{symbol.citation}`.\n\n"
            f"{cited}\n"
            f"```mermaid\nflowchart LR\n{edges}```\n\n"
            f"Other chapters: {links}\n" + ("\nChecked against the code.\n" if reviewed else "")
        )

    def tutorial(self, prompt: str) -> str:
        heading = _search(r"Start with exactly this heading: `# (.+)`\.", prompt)
        _, symbol = self.by_name(_search(r"^## This tutorial: (.+)$", prompt))
        return (
            f"# {heading}\n\n"
            f"Read `{symbol.citation}`, then complete the scaffold.\n\n"
            f"```python\nfrom taskq import {symbol.name}  # call it\n```\n\n"
            "Check it with `python -m pytest`.\n"
        )

    def overview(self, prompt: str) -> str:
        entries = re.findall(r"^(\d+)\. (.+?); its tutorial: (.+)$", prompt, re.MULTILINE)
        links = "".join(
            f"{n}. **{chapter}**, then **{tutorial}**\n" for n, chapter, tutorial in entries
        )
        nodes = "".join(f'  A{i}["{s.name}"]\n' for i, s in enumerate(self.symbols))
        edges = "".join(f"  A{i} --> A{j}\n" for i, j, _ in self.relationships)
        return (
            "# Learning taskq\n\n"
            "taskq queues named tasks, runs them in workers and retries failures.\n\n"
            f"```mermaid\nflowchart LR\n{nodes}{edges}```\n\n"
            f"{links}"
        )

    def answer(self, step: str, prompt: str) -> str:
        if step == "abstractions":
            return self.abstractions()
        if step == "relationships":
            return self.relationships_yaml()
        if step == "order":
            return self.order_yaml()
        if step in ("chapters", "review"):
            return self.chapter(prompt, reviewed=step == "review")
        if step == "tutorial":
            return self.tutorial(prompt)
        return self.overview(prompt)


def _dependencies_first(count: int, relationships: list[tuple[int, int, str]]) -> list[int]:
    """A topological order (what is used before its users), ids breaking ties
    and cycles."""
    uses = {i: {j for a, j, _ in relationships if a == i} for i in range(count)}
    order: list[int] = []
    while len(order) < count:
        left = [i for i in range(count) if i not in order]
        ready = [i for i in left if uses[i] <= set(order)] or left[:1]
        order.append(ready[0])
    return order


def _search(pattern: str, prompt: str) -> str:
    match = re.search(pattern, prompt, re.MULTILINE)
    if match is None:
        raise ValueError(f"the prompt does not match {pattern!r}")
    return match.group(1)


# -- The runner side: one measurement in its own process -----------------------


async def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one analysis as the runner would, and report what it cost."""
    # Imported here: the parent never loads the SDK, the child always does.
    from fondation_runner.analysis import analyze  # noqa: PLC0415
    from fondation_runner.backends.base import Backend  # noqa: PLC0415
    from fondation_runner.backends.offline import OfflineBackend  # noqa: PLC0415
    from fondation_runner.cache import StepCache  # noqa: PLC0415
    from fondation_runner.pipeline import PipelineSettings  # noqa: PLC0415

    backend: Backend
    if spec["backend"] == "claude":
        from fondation_runner.backends.claude import (  # noqa: PLC0415
            ClaudeBackend,
            ClaudeCredentials,
        )

        credentials = ClaudeCredentials.take_from_environment(os.environ)
        if credentials is None:
            raise SystemExit("no credential for the CLI in the environment")
        backend = ClaudeBackend(
            credentials=credentials, home=Path(spec["home"]), model=MODEL, env=spec["cli_env"]
        )
    else:
        backend = OfflineBackend()
    started = time.monotonic()
    course = await analyze(
        backend,
        source_dir=Path(spec["source"]),
        output_base=Path(spec["output"]),
        commit=spec["commit"],
        project_name="taskq",
        settings=PipelineSettings(
            model=MODEL if spec["backend"] == "claude" else "",
            max_chapters=spec["max_chapters"],
            parallelism=spec["parallelism"],
        ),
        cache=StepCache(Path(spec["cache"])) if spec["cache"] else None,
    )
    wall = time.monotonic() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": wall,
        "chapters": len(course.chapters),
        "documents": len(course.documents),
        "partial": course.partial,
        "errors": [e.model_dump() for e in course.errors],
        "llm_calls": course.usage.llm_calls,
        "cached_steps": sum(1 for s in course.usage.steps if s.cached),
        "self_peak_rss_mb": own.ru_maxrss / 1024,  # ru_maxrss is in KiB on Linux
        "children_peak_rss_mb": children.ru_maxrss / 1024,
        "self_cpu_s": own.ru_utime + own.ru_stime,
        "children_cpu_s": children.ru_utime + children.ru_stime,
    }


# -- The bench side ------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    wall_s: float
    process_s: float
    """From spawning the runner process to its exit (imports included)."""
    report: dict[str, Any]
    tree_peak_rss_mb: float
    model_calls: int
    """Conversation requests the fake answered during the run."""


class Bench:
    def __init__(
        self, world: OfflineClaude, source: Path, commit: str, work: Path, max_chapters: int
    ) -> None:
        self.world = world
        self.source = source
        self.commit = commit
        self.work = work
        self.max_chapters = max_chapters
        self.runs = 0

    async def measure(
        self,
        name: str,
        *,
        backend: str = "claude",
        parallelism: int = DEFAULT_PARALLELISM,
        cache: Path | None = None,
        expect_chapters: int | None = None,
    ) -> Measurement:
        self.runs += 1
        spec = {
            "backend": backend,
            "source": str(self.source),
            "commit": self.commit,
            "output": str(self.work / f"out-{self.runs}"),
            "cache": str(cache) if cache else "",
            "parallelism": parallelism,
            "max_chapters": self.max_chapters,
            "home": str(self.world.home),
            "cli_env": self.world.env,
        }
        calls_before = len(self.world.api.conversation_requests())
        env = {**os.environ, "ANTHROPIC_API_KEY": FAKE_API_KEY}
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.pipeline",
            "--child",
            json.dumps(spec),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        sampler = TreeSampler(process.pid)
        sampling = asyncio.create_task(sampler.run())
        try:
            stdout, stderr = await process.communicate()
        finally:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
            if process.returncode is None:  # interrupted: stop the runner (its CLIs see EOF)
                process.kill()
                await process.wait()
        process_s = time.monotonic() - started
        if process.returncode != 0:
            raise SystemExit(
                f"{name}: the runner failed ({process.returncode}):\n{stderr.decode()[-3000:]}"
            )
        report: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
        if report["partial"] or report["errors"]:
            raise SystemExit(f"{name}: the course is not complete: {report['errors']}")
        if expect_chapters is not None and report["chapters"] != expect_chapters:
            raise SystemExit(f"{name}: {report['chapters']} chapters, {expect_chapters} expected")
        measurement = Measurement(
            name=name,
            wall_s=report["wall_s"],
            process_s=process_s,
            report=report,
            tree_peak_rss_mb=sampler.peak_kib / 1024,
            model_calls=len(self.world.api.conversation_requests()) - calls_before,
        )
        print(
            f"{name:<28} {measurement.wall_s:7.2f} s in the pipeline,"
            f" {process_s:6.2f} s for the process, {measurement.model_calls:3d} model calls,"
            f" runner {report['self_peak_rss_mb']:.0f} MB,"
            f" largest child {report['children_peak_rss_mb']:.0f} MB,"
            f" tree {measurement.tree_peak_rss_mb:.0f} MB",
            flush=True,
        )
        return measurement


class TreeSampler:
    """The highest sum of RSS over a process and its descendants, sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0

    async def run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))
            await asyncio.sleep(SAMPLE_INTERVAL_S)


def tree_rss_kib(root: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    tree, frontier = {root}, [root]
    while frontier:
        for pid in children.get(frontier.pop(), []):
            if pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    total = 0
    for pid in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_pressure() -> str:
    """The kernel's CPU pressure line (`some avg10=...`): other work competing for the CPUs."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""


def git(cwd: Path, *args: str) -> str:
    import subprocess  # noqa: PLC0415

    done = subprocess.run(
        ["git", "-c", "user.email=bench@example.invalid", "-c", "user.name=bench", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def sample_clone(work: Path) -> tuple[Path, str]:
    clone = work / "clone"
    shutil.copytree(SAMPLE_REPO, clone)
    git(clone, "init", "--quiet")
    git(clone, "add", "--all")
    git(clone, "commit", "--quiet", "--message", "sample project")
    return clone, git(clone, "rev-parse", "HEAD")


def scripts(course: Course) -> list[Script]:
    from tests.fakes.anthropic_api import RecordedRequest, Script, TextTurn  # noqa: PLC0415

    def script(step: str) -> Script:
        def respond(request: RecordedRequest, _turn: int) -> TextTurn:
            return TextTurn(text=course.answer(step, request.first_user_text))

        return Script(name=step, marker=MARKERS[step], responder=respond)

    return [script(step) for step in MARKERS]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.fakes.claude_env import OfflineClaude  # noqa: PLC0415

    latency = args.latency
    load = os.getloadavg()  # the figures are CPU-bound: a busy machine shows in them
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        clone, commit = sample_clone(work)
        course = Course.of(clone, args.chapters)
        calls = 3 + 3 * args.chapters + 1
        print(
            f"sample project: {len(course.symbols)} abstractions,"
            f" {len(course.relationships)} relationships; {calls} model calls per course;"
            f" L = {latency:g} s",
            flush=True,
        )
        async with OfflineClaude(scripts(course), latency=latency) as world:
            world.api.keep_messages = False
            bench = Bench(world, clone, commit, work, args.chapters)
            cache = work / "cache"
            parallel = await bench.measure(
                f"parallelism {DEFAULT_PARALLELISM}", cache=cache, expect_chapters=args.chapters
            )
            serial = await bench.measure(
                "parallelism 1", parallelism=1, expect_chapters=args.chapters
            )
            rerun = await bench.measure(
                "re-run, same commit", cache=cache, expect_chapters=args.chapters
            )
            world.api.latency = 0.0
            claude_l0 = await bench.measure("claude, L = 0", expect_chapters=args.chapters)
            offline = await bench.measure("offline backend", backend="offline")
            unexpected = [r.path for r in world.api.unknown_requests()]
            outside = list(world.proxy.attempts)
        if parallel.model_calls != calls or serial.model_calls != calls:
            raise SystemExit(
                f"expected {calls} model calls per course, saw "
                f"{parallel.model_calls} and {serial.model_calls}"
            )
        if outside:
            raise SystemExit(f"the CLI tried to leave the machine: {outside}")

    claude_runs = [parallel, serial, rerun, claude_l0]
    cli_runs = serial.model_calls  # one CLI process per call: no tool turns here
    return {
        "latency_s": latency,
        "chapters": args.chapters,
        "model_calls_per_course": calls,
        "parallelism": DEFAULT_PARALLELISM,
        "wall_parallel_s": round(parallel.wall_s, 2),
        "wall_parallel_in_L": round(parallel.wall_s / latency, 2),
        "parallel_floor_in_L": 3 + 2 * math.ceil(args.chapters / DEFAULT_PARALLELISM) + 1,
        "wall_serial_s": round(serial.wall_s, 2),
        "wall_serial_in_L": round(serial.wall_s / latency, 2),
        "per_call_overhead_serial_s": round((serial.wall_s - calls * latency) / calls, 3),
        "cli_cpu_s_per_run": round(serial.report["children_cpu_s"] / cli_runs, 3),
        "runner_cpu_s_serial": round(serial.report["self_cpu_s"], 2),
        "rerun_llm_calls": rerun.model_calls,
        "rerun_s": round(rerun.wall_s, 2),
        "rerun_process_s": round(rerun.process_s, 2),
        "peak_rss_mb": round(max(m.report["self_peak_rss_mb"] for m in claude_runs), 1),
        "children_peak_rss_mb": round(
            max(m.report["children_peak_rss_mb"] for m in claude_runs), 1
        ),
        "tree_peak_rss_mb": round(max(m.tree_peak_rss_mb for m in claude_runs), 1),
        "overhead_s": round(claude_l0.wall_s, 2),
        "overhead_claude_l0_s": round(claude_l0.wall_s, 2),
        "overhead_offline_s": round(offline.wall_s, 2),
        "offline_chapters": offline.report["chapters"],
        "unknown_requests_at_the_fake": len(unexpected),
        "definitions": {
            "wall_*_s": "analyze() in the runner process: six steps and the parser",
            "parallel_floor_in_L": "model waits one after the other at the default parallelism",
            "rerun_*": "same commit and step cache as the parallel run; calls seen at the fake",
            "peak_rss_mb": "the runner's own peak (RUSAGE_SELF ru_maxrss), over the claude runs",
            "children_peak_rss_mb": "the largest single CLI child (RUSAGE_CHILDREN ru_maxrss)",
            "tree_peak_rss_mb": (
                f"runner + CLI children, summed, sampled from /proc every {SAMPLE_INTERVAL_S} s"
            ),
            "per_call_overhead_serial_s": "(wall_serial_s - calls x L) / calls: CLI start-up etc.",
            "cli_cpu_s_per_run": "user + system CPU of one CLI process (serial run)",
            "overhead_s": "the fake claude at L = 0 (SDK + CLI processes + pipeline)",
            "overhead_offline_s": "the offline backend: the pipeline's own cost, no CLI",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in load],
            "cpu_pressure_at_end": cpu_pressure(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "command": COMMAND + (f" --latency {latency:g}" if latency != 1.0 else ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per model answer")
    parser.add_argument("--chapters", type=int, default=CHAPTERS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report = asyncio.run(child_main(json.loads(args.child)))
        print(json.dumps(report), flush=True)
        return 0
    if args.latency <= 0:
        parser.error("--latency must be positive (L = 0 is measured anyway)")
    result = asyncio.run(run(args))
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

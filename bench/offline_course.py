"""Offline course benchmark: `.venv/bin/python -m bench.offline_course`.

The offline backend is the course every new user sees first (`make demo`,
`fondation analyze --backend offline`). This measures, for the sample project
and for real third-party source trees (standard-library packages, `json` with
its own tests from `test/test_json`, and `email`): how many chapters and
tutorials it writes, how big the course is, whether every `path:line` it cites
exists, whether two runs give the same bytes, and how long the pipeline takes
(in process, median of a few runs, process start excluded).

Prints the figures and writes bench/results/offline_course.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_results
from fondation_contracts.course import Course, DocumentKind
from fondation_runner import layout
from fondation_runner.analysis import analyze
from fondation_runner.backends.offline import OfflineBackend
from fondation_runner.validate import SourceTree

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "offline_course.json"
SAMPLE_REPO = ROOT / "tests" / "fixtures" / "sample-repo"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
CITED = re.compile(r"`([\w./-]+\.\w+):(\d+)(?:-(\d+))?`")


def trees(work: Path) -> dict[str, Path]:
    """The measured source trees, copied where the standard library's are."""
    ignore = shutil.ignore_patterns("__pycache__")
    json_tree = work / "json"
    shutil.copytree(STDLIB / "json", json_tree / "json", ignore=ignore)
    shutil.copytree(STDLIB / "test" / "test_json", json_tree / "test" / "test_json", ignore=ignore)
    (json_tree / "test" / "__init__.py").write_text("")
    email_tree = work / "email"
    shutil.copytree(STDLIB / "email", email_tree / "email", ignore=ignore)
    return {
        "sample-repo": SAMPLE_REPO,
        "stdlib json + test_json": json_tree,
        "stdlib email": email_tree,
    }


async def measure(source: Path, work: Path, runs: int) -> dict[str, Any]:
    walls: list[float] = []
    course = Course()
    for run in range(runs):
        started = time.perf_counter()
        course = await analyze(OfflineBackend(), source_dir=source, output_base=work / str(run))
        walls.append(time.perf_counter() - started)
    return figures_of(source, course, [work / str(run) for run in range(runs)], walls)


def figures_of(
    source: Path, course: Course, outputs: list[Path], walls: list[float]
) -> dict[str, Any]:
    tree = SourceTree(source)
    citations = [m for d in course.documents for m in CITED.finditer(d.content)]
    broken = [
        m.group()
        for m in citations
        if tree.check_citation(m[1], int(m[2]), int(m[3] or m[2])) is not None
    ]
    python = [p for p in source.rglob("*.py") if "__pycache__" not in p.parts]
    return {
        "python_files": len(python),
        "chapters": len(course.chapters),
        "tutorials": sum(1 for d in course.documents if d.kind is DocumentKind.TUTORIAL),
        "documents": len(course.documents),
        "course_bytes": sum(len(d.content.encode()) for d in course.documents),
        "citations": len(citations),
        "citations_not_found": broken,
        "partial": course.partial,
        "same_bytes_every_run": len({_digest(out) for out in outputs}) == 1,
        "wall_s_median": round(statistics.median(walls), 3),
        "wall_s_max": round(max(walls), 3),
    }


def _digest(out: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(layout.output_dir(out).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(out).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


async def run(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        work = Path(tmp)
        for name, source in trees(work).items():
            results[name] = figures = await measure(source, work / "runs" / name, runs)
            print(
                f"{name}: {figures['chapters']} chapters, {figures['tutorials']} tutorials,"
                f" {figures['course_bytes'] / 1000:.0f} kB, {figures['citations']} citations"
                f" ({len(figures['citations_not_found'])} not found),"
                f" {figures['wall_s_median']:.2f} s",
                flush=True,
            )
    return {
        "runs": runs,
        "max_chapters": 10,
        "load_average_1m": round(os.getloadavg()[0], 2),  # a busy machine shows in wall_s
        "trees": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="pipeline runs per tree")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    write_results(args.out, asyncio.run(run(args.runs)))


if __name__ == "__main__":
    main()

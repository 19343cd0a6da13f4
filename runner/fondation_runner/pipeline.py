"""The six analysis steps, from a checkout to Fondation's output directory.

    abstractions ─▶ relationships ─▶ order ─▶ chapters ─▶ review ─▶ tutorial
     step1_*.yaml    step2_*.yaml    step3_*   chapters/  reviewed-  tutorials/
                                     .yaml     NN_*.md    chapters/  tutorial_N_*.md
                                                          NN_*.md    index.md

Each step renders its prompt, gets a valid answer through `Asker` (cache,
backend, validation, retries with feedback) and writes its file. Chapters,
reviews and tutorials are independent of each other within their step, so
they run concurrently, at most `parallelism` backend calls at a time.

Step 6 is Fondation's: one hands-on tutorial per written chapter (from its
reviewed text when there is one), titled `Interactive Tutorial: <name>`,
and an overview page, asked beside them. Both are read inside Fondation's
UI, which resolves no link between documents, so they may only link to a
heading or a full URL, and name the other documents by their titles.

A step that cannot get a valid answer does not stop the run when the
others can do without it: without relationships the order is built from
the abstractions alone; without an order, chapters follow the abstractions'
ids; a chapter that fails is left out of the review, the tutorials and the
overview. Each such loss is a `CourseError` and makes the result partial.
Only a failed first step leaves nothing to teach, and ends the run.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import fondation_prompts
from fondation_contracts.course import CourseError, StepUsage, Usage
from fondation_contracts.ingest import StepState
from fondation_contracts.text import path as printable_path
from fondation_runner import layout
from fondation_runner.answers import (
    Abstraction,
    ChapterOrder,
    MarkdownAnswer,
    OrderEntry,
    Relationship,
    Relationships,
)
from fondation_runner.asking import DEFAULT_MAX_ATTEMPTS, Asker, Meter, StepFailed, Valid
from fondation_runner.backends.base import Backend
from fondation_runner.cache import StepCache
from fondation_runner.progress import EventSink, discard, make_event
from fondation_runner.safety import code_span
from fondation_runner.sources import DEFAULT_MAX_FILE_BYTES, SourceListing, list_sources
from fondation_runner.validate import (
    MarkdownContext,
    SourceTree,
    validate_abstractions,
    validate_markdown,
    validate_order,
    validate_relationships,
)

T = TypeVar("T")

DEFAULT_MAX_CHAPTERS = 10
DEFAULT_PARALLELISM = 5
MAX_REPORTED_SKIPS = 20


@dataclass(frozen=True)
class PipelineSettings:
    language: str = "en"
    model: str = ""
    max_chapters: int = DEFAULT_MAX_CHAPTERS
    parallelism: int = DEFAULT_PARALLELISM
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


class AnalysisFailed(Exception):
    """Nothing could be taught: the first step produced no abstractions."""


@dataclass
class PipelineResult:
    output_dir: Path
    revision: str
    errors: list[CourseError] = field(default_factory=list)
    steps: list[StepUsage] = field(default_factory=list)
    partial: bool = False

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=sum(s.input_tokens for s in self.steps),
            output_tokens=sum(s.output_tokens for s in self.steps),
            cost_usd=round(sum(s.cost_usd for s in self.steps), 6),
            llm_calls=sum(s.llm_calls for s in self.steps),
            steps=list(self.steps),
        )


@dataclass(frozen=True)
class Chapter:
    """One planned chapter: an abstraction at a position of the order."""

    position: int
    abstraction_id: int
    abstraction: Abstraction
    file_name: str

    @property
    def number(self) -> int:
        return self.position + 1

    @property
    def tutorial_file(self) -> str:
        return layout.tutorial_file_name(self.position, self.abstraction.name)


class Pipeline:
    """One analysis of `source_dir`, written under `output_base`.

    `revision` is the commit being analysed (the cache key's first part);
    without one, a fingerprint of the files' content stands in for it.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        source_dir: Path,
        output_base: Path,
        revision: str = "",
        project_name: str = "",
        settings: PipelineSettings | None = None,
        cache: StepCache | None = None,
        sink: EventSink = discard,
    ) -> None:
        self.backend = backend
        self.source_dir = source_dir
        self.output_dir = layout.output_dir(output_base)
        self.revision = revision
        self.project_name = project_name or source_dir.resolve().name
        self.settings = settings or PipelineSettings()
        self.cache = cache
        self.sink = sink
        self.tree = SourceTree(source_dir)

    async def run(self) -> PipelineResult:
        """Run the six steps; raises AnalysisFailed only when step 1 fails."""
        if self.output_dir.exists():
            shutil.rmtree(self.output_dir)
        self.output_dir.mkdir(parents=True)
        listing = list_sources(self.source_dir, max_file_bytes=self.settings.max_file_bytes)
        result = PipelineResult(
            output_dir=self.output_dir, revision=self.revision or f"tree-{listing.fingerprint()}"
        )
        result.errors.extend(_skipped_errors(listing))
        asker = Asker(
            backend=self.backend,
            source_dir=self.source_dir,
            revision=result.revision,
            language=self.settings.language,
            model=self.settings.model,
            max_attempts=self.settings.max_attempts,
            cache=self.cache,
        )
        run = _Run(self, asker, listing, result)
        abstractions = await run.abstractions()
        if abstractions is None:
            raise AnalysisFailed(f"no abstractions could be extracted: {result.errors[-1].message}")
        relationships = await run.relationships(abstractions)
        order = await run.order(abstractions, relationships)
        plan = _plan(abstractions, order)
        chapters = await run.chapters(plan, abstractions, relationships)
        reviewed = await run.review(plan, chapters)
        await run.tutorials(abstractions, relationships, plan, chapters, reviewed)
        return result


class _Run:
    """The state of one run: what the steps produced so far, and its costs."""

    def __init__(
        self, pipeline: Pipeline, asker: Asker, listing: SourceListing, result: PipelineResult
    ) -> None:
        self.p = pipeline
        self.asker = asker
        self.listing = listing
        self.result = result
        settings = pipeline.settings
        self.semaphore = asyncio.Semaphore(max(1, settings.parallelism))
        """Bounds the backend calls of the chapters and review steps."""
        self.common = {
            "language": fondation_prompts.language_name(settings.language),
            "project_name": self.p.project_name,
        }

    # Step 1 ----------------------------------------------------------------

    async def abstractions(self) -> list[Abstraction] | None:
        max_count = self.p.settings.max_chapters
        inputs = {
            "project_name": self.p.project_name,
            "files": list(self.listing.paths),
            "max_abstractions": max_count,
        }
        prompt = fondation_prompts.render(
            "abstractions",
            **self.common,
            max_abstractions=str(max_count),
            file_list=_file_list(self.listing),
            skipped_files=_skipped_list(self.listing),
        )

        async def ask(meter: Meter) -> list[Abstraction]:
            valid = await self.asker.ask(
                "abstractions",
                prompt=prompt,
                inputs=inputs,
                validate=lambda text: validate_abstractions(text, self.p.tree, max_count=max_count),
                meter=meter,
                on_retry=self._retry_notice("abstractions"),
            )
            self._write_yaml(layout.ABSTRACTIONS_FILE, [a.model_dump() for a in valid.value])
            return valid.value

        return await self._step(
            "abstractions",
            ask,
            started=f"{len(self.listing.files)} source files",
            finished=lambda value: f"{len(value)} abstractions",
        )

    # Step 2 ----------------------------------------------------------------

    async def relationships(self, abstractions: list[Abstraction]) -> Relationships:
        count = len(abstractions)
        inputs = {
            "abstractions": [a.model_dump() for a in abstractions],
            "files": list(self.listing.paths),
        }
        prompt = fondation_prompts.render(
            "relationships",
            **self.common,
            abstractions=_abstraction_list(abstractions),
            file_list=_file_list(self.listing),
        )

        async def ask(meter: Meter) -> Relationships:
            valid = await self.asker.ask(
                "relationships",
                prompt=prompt,
                inputs=inputs,
                validate=lambda text: validate_relationships(
                    text, self.p.tree, abstraction_count=count
                ),
                meter=meter,
                on_retry=self._retry_notice("relationships"),
            )
            self._write_yaml(layout.RELATIONSHIPS_FILE, valid.value.model_dump())
            return valid.value

        found = await self._step(
            "relationships",
            ask,
            finished=lambda value: f"{len(value.relationships)} relationships",
        )
        if found is not None:
            return found
        # Not an answer, so not validated: the later steps simply see no relationships.
        return Relationships.model_construct(summary="", relationships=[])

    # Step 3 ----------------------------------------------------------------

    async def order(
        self, abstractions: list[Abstraction], relationships: Relationships
    ) -> ChapterOrder:
        count = len(abstractions)
        inputs = {
            "abstractions": [a.model_dump() for a in abstractions],
            "relationships": relationships.model_dump(),
        }
        prompt = fondation_prompts.render(
            "order",
            **self.common,
            abstractions=_abstraction_list(abstractions),
            relationships=_relationship_list(relationships.relationships, abstractions),
        )

        async def ask(meter: Meter) -> ChapterOrder:
            valid = await self.asker.ask(
                "order",
                prompt=prompt,
                inputs=inputs,
                validate=lambda text: validate_order(text, abstraction_count=count),
                meter=meter,
                on_retry=self._retry_notice("order"),
            )
            self._write_yaml(layout.ORDER_FILE, valid.value.model_dump())
            return valid.value

        found = await self._step("order", ask, finished=lambda v: f"{len(v.order)} chapters")
        if found is not None:
            return found
        return ChapterOrder(
            order=[
                OrderEntry(index=i, name=a.name, reasoning="in the order of the abstractions")
                for i, a in enumerate(abstractions)
            ]
        )

    # Step 4 ----------------------------------------------------------------

    async def chapters(
        self, plan: list[Chapter], abstractions: list[Abstraction], relationships: Relationships
    ) -> dict[int, MarkdownAnswer]:
        """Write every chapter; returns the valid ones by position."""
        chapter_list = _chapter_list(plan)
        known = _known_documents(plan)

        async def write(chapter: Chapter, meter: Meter) -> MarkdownAnswer:
            related = [
                r
                for r in relationships.relationships
                if chapter.abstraction_id in (r.from_abstraction, r.to_abstraction)
            ]
            inputs = {
                "position": chapter.position,
                "abstraction_id": chapter.abstraction_id,
                "abstraction": chapter.abstraction.model_dump(),
                "file_name": chapter.file_name,
                "chapters": _chapter_inputs(plan),
                "related": [r.model_dump() for r in related],
                "abstraction_names": [a.name for a in abstractions],
            }
            prompt = fondation_prompts.render(
                "chapters",
                **self.common,
                chapter_number=str(chapter.number),
                chapter_count=str(len(plan)),
                abstraction_name=chapter.abstraction.name,
                abstraction_description=chapter.abstraction.description,
                abstraction_files=_bullets(chapter.abstraction.file_paths),
                related=_relationship_list(related, abstractions) or "(none recorded)",
                neighbours=_neighbours(plan, chapter),
                chapter_list=chapter_list,
            )
            path = f"{layout.CHAPTERS_DIR}/{chapter.file_name}"
            valid = await self._ask_markdown(
                "chapters",
                chapter,
                prompt=prompt,
                inputs=inputs,
                path=path,
                known=known,
                meter=meter,
            )
            self._write_text(path, valid.value.text)
            return valid.value

        return await self._per_chapter("chapters", plan, write)

    # Step 5 ----------------------------------------------------------------

    async def review(
        self, plan: list[Chapter], chapters: dict[int, MarkdownAnswer]
    ) -> dict[int, MarkdownAnswer]:
        written = [c for c in plan if c.position in chapters]
        chapter_list = _chapter_list(plan)
        known = _known_documents(plan)

        async def revise(chapter: Chapter, meter: Meter) -> MarkdownAnswer:
            draft = chapters[chapter.position].text
            inputs = {
                "position": chapter.position,
                "abstraction": chapter.abstraction.model_dump(),
                "file_name": chapter.file_name,
                "chapters": _chapter_inputs(plan),
                "chapter_markdown": draft,
            }
            prompt = fondation_prompts.render(
                "review",
                **self.common,
                chapter_number=str(chapter.number),
                abstraction_name=chapter.abstraction.name,
                abstraction_files=_bullets(chapter.abstraction.file_paths),
                chapter_list=chapter_list,
                chapter_markdown=draft,
            )
            path = f"{layout.REVIEWED_DIR}/{chapter.file_name}"
            valid = await self._ask_markdown(
                "review", chapter, prompt=prompt, inputs=inputs, path=path, known=known, meter=meter
            )
            self._write_text(path, valid.value.text)
            return valid.value

        return await self._per_chapter("review", written, revise)

    # Step 6 ----------------------------------------------------------------

    async def tutorials(
        self,
        abstractions: list[Abstraction],
        relationships: Relationships,
        plan: list[Chapter],
        chapters: dict[int, MarkdownAnswer],
        reviewed: dict[int, MarkdownAnswer],
    ) -> None:
        """One tutorial per written chapter, and the overview page, concurrently."""
        written = [c for c in plan if c.position in chapters]
        known = _known_documents(plan)
        final = {c.position: reviewed.get(c.position, chapters[c.position]) for c in written}
        entries = [
            {
                "number": c.number,
                "name": c.abstraction.name,
                "chapter_title": final[c.position].title,
                "tutorial_title": layout.tutorial_title(c.abstraction.name),
            }
            for c in written
        ]
        chapter_list = "\n".join(
            f"{e['number']}. {e['chapter_title']}; its tutorial: {e['tutorial_title']}"
            for e in entries
        )

        async def teach(chapter: Chapter, meter: Meter) -> MarkdownAnswer:
            markdown = final[chapter.position].text
            title = layout.tutorial_title(chapter.abstraction.name)
            related = [
                r
                for r in relationships.relationships
                if chapter.abstraction_id in (r.from_abstraction, r.to_abstraction)
            ]
            inputs = {
                "page": "tutorial",
                "position": chapter.position,
                "abstraction_id": chapter.abstraction_id,
                "abstraction": chapter.abstraction.model_dump(),
                "title": title,
                "chapter_title": final[chapter.position].title,
                "chapter_markdown": markdown,
                "chapters": entries,
                "related": [r.model_dump() for r in related],
                "abstraction_names": [a.name for a in abstractions],
            }
            prompt = fondation_prompts.render(
                "tutorial",
                **self.common,
                chapter_number=str(chapter.number),
                abstraction_name=chapter.abstraction.name,
                abstraction_description=chapter.abstraction.description,
                abstraction_files=_bullets(chapter.abstraction.file_paths),
                chapter_list=chapter_list,
                chapter_markdown=markdown,
                tutorial_title=title,
            )
            path = f"{layout.TUTORIALS_DIR}/{chapter.tutorial_file}"
            valid = await self._ask_markdown(
                "tutorial",
                chapter,
                prompt=prompt,
                inputs=inputs,
                path=path,
                known=known,
                meter=meter,
                title=title,
                hands_on=True,
            )
            self._write_text(path, valid.value.text)
            return valid.value

        async def overview(meter: Meter) -> MarkdownAnswer:
            inputs = {
                "page": "overview",
                "project_name": self.p.project_name,
                "summary": relationships.summary,
                "abstractions": [a.model_dump() for a in abstractions],
                "relationships": [r.model_dump() for r in relationships.relationships],
                "chapters": entries,
            }
            prompt = fondation_prompts.render(
                "overview",
                **self.common,
                summary=relationships.summary or "(no summary available)",
                abstractions=_abstraction_list(abstractions),
                relationships=_relationship_list(relationships.relationships, abstractions)
                or "(none recorded)",
                chapter_list=chapter_list,
            )
            path = f"{layout.TUTORIALS_DIR}/{layout.TUTORIAL_INDEX_FILE}"
            context = MarkdownContext(self.p.tree, path, known, portable_links=True)
            async with self.semaphore:
                valid = await self.asker.ask(
                    "tutorial",
                    prompt=prompt,
                    inputs=inputs,
                    validate=lambda text: validate_markdown(text, context),
                    meter=meter,
                    on_retry=self._retry_notice("tutorial"),
                    what="overview",
                )
            self._write_text(path, valid.value.text)
            return valid.value

        await self._per_chapter("tutorial", written, teach, overview=overview)

    # Shared ----------------------------------------------------------------

    async def _step(
        self,
        step: str,
        work: Callable[[Meter], Awaitable[T]],
        *,
        started: str = "",
        finished: Callable[[T], str],
    ) -> T | None:
        """Run one whole-step piece of work, reporting it; None when it failed."""
        meter = Meter(step)
        await self.p.sink(make_event(step, StepState.STARTED, started))
        try:
            value = await work(meter)
        except StepFailed as failure:
            self.result.steps.append(meter.usage())
            self._fail(step, failure)
            await self.p.sink(make_event(step, StepState.FAILED, str(failure), usage=meter.usage()))
            return None
        self.result.steps.append(meter.usage())
        await self.p.sink(
            make_event(step, StepState.FINISHED, finished(value), usage=meter.usage())
        )
        return value

    async def _per_chapter(
        self,
        step: str,
        plan: Sequence[Chapter],
        work: Callable[[Chapter, Meter], Awaitable[MarkdownAnswer]],
        *,
        overview: Callable[[Meter], Awaitable[MarkdownAnswer]] | None = None,
    ) -> dict[int, MarkdownAnswer]:
        """Run `work` for each chapter concurrently (bounded), and `overview` beside
        them when given; collect the valid chapters' answers."""
        meter = Meter(step)
        await self.p.sink(make_event(step, StepState.STARTED, f"{len(plan)} chapters"))
        done: dict[int, MarkdownAnswer] = {}
        failures: list[StepFailed] = []
        overview_written = False

        async def one(chapter: Chapter) -> None:
            try:
                done[chapter.position] = await work(chapter, meter)
            except StepFailed as failure:
                failures.append(failure)

        async def front(write: Callable[[Meter], Awaitable[MarkdownAnswer]]) -> None:
            nonlocal overview_written
            try:
                await write(meter)
                overview_written = True
            except StepFailed as failure:
                failures.append(failure)

        async with asyncio.TaskGroup() as group:
            if overview is not None:
                group.create_task(front(overview))
            for chapter in plan:
                group.create_task(one(chapter))
        self.result.steps.append(meter.usage())
        for failure in failures:
            self._fail(step, failure)
        message = f"{len(done)} of {len(plan)} chapters"
        if overview_written:
            message += " and the overview"
        if failures:
            message += f"; failed: {', '.join(f.what for f in failures)}"
        if plan and not done:
            await self.p.sink(make_event(step, StepState.FAILED, message, usage=meter.usage()))
        else:
            await self.p.sink(make_event(step, StepState.FINISHED, message, usage=meter.usage()))
        return done

    async def _ask_markdown(
        self,
        step: str,
        chapter: Chapter,
        *,
        prompt: str,
        inputs: dict[str, Any],
        path: str,
        known: frozenset[str],
        meter: Meter,
        title: str = "",
        hands_on: bool = False,
    ) -> Valid[MarkdownAnswer]:
        """One chapter's document; a tutorial (`hands_on`) must have `title` and is
        read in Fondation's UI, so links only to a heading or a URL."""
        context = MarkdownContext(
            self.p.tree,
            path,
            known,
            title=title,
            hands_on=hands_on,
            portable_links=hands_on,
        )
        async with self.semaphore:
            return await self.asker.ask(
                step,
                prompt=prompt,
                inputs=inputs,
                validate=lambda text: validate_markdown(text, context),
                meter=meter,
                on_retry=self._retry_notice(step),
                what=f"chapter {chapter.number} ({chapter.abstraction.name})",
            )

    def _retry_notice(self, step: str) -> Callable[[str], Awaitable[None]]:
        async def notice(message: str) -> None:
            await self.p.sink(make_event(step, StepState.RETRYING, message))

        return notice

    def _fail(self, step: str, failure: StepFailed) -> None:
        self.result.partial = True
        self.result.errors.append(
            CourseError(
                step=step,
                message=f"{failure.what}: no valid answer after "
                f"{self.p.settings.max_attempts} attempts: {'; '.join(failure.problems)}",
            )
        )

    def _write_yaml(self, name: str, data: Any) -> None:
        self._write_text(name, layout.dump_yaml(data))

    def _write_text(self, relative: str, text: str) -> None:
        path = self.p.output_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# Planning and prompt text ----------------------------------------------------


def _plan(abstractions: list[Abstraction], order: ChapterOrder) -> list[Chapter]:
    return [
        Chapter(
            position=position,
            abstraction_id=entry.index,
            abstraction=abstractions[entry.index],
            file_name=layout.chapter_file_name(position, abstractions[entry.index].name),
        )
        for position, entry in enumerate(order.order)
    ]


def _known_documents(plan: list[Chapter]) -> frozenset[str]:
    files = {f"{layout.TUTORIALS_DIR}/{layout.TUTORIAL_INDEX_FILE}"}
    for chapter in plan:
        files.add(f"{layout.CHAPTERS_DIR}/{chapter.file_name}")
        files.add(f"{layout.REVIEWED_DIR}/{chapter.file_name}")
        files.add(f"{layout.TUTORIALS_DIR}/{chapter.tutorial_file}")
    return frozenset(files)


def _chapter_inputs(plan: list[Chapter]) -> list[dict[str, Any]]:
    return [
        {
            "number": c.number,
            "abstraction_id": c.abstraction_id,
            "name": c.abstraction.name,
            "file_name": c.file_name,
        }
        for c in plan
    ]


def _chapter_list(plan: list[Chapter]) -> str:
    return "\n".join(f"{c.number}. {c.abstraction.name}: `{c.file_name}`" for c in plan)


def _neighbours(plan: list[Chapter], chapter: Chapter) -> str:
    lines = []
    if chapter.position > 0:
        previous = plan[chapter.position - 1]
        lines.append(
            f"The previous chapter is {previous.abstraction.name} (`{previous.file_name}`)."
        )
    if chapter.position + 1 < len(plan):
        following = plan[chapter.position + 1]
        lines.append(f"The next chapter is {following.abstraction.name} (`{following.file_name}`).")
    return " ".join(lines) or "This is the only chapter."


def _abstraction_list(abstractions: list[Abstraction]) -> str:
    return "\n".join(
        f"{i}. **{a.name}**: {' '.join(a.description.split())}\n"
        f"   Files: {', '.join(code_span(p) for p in a.file_paths)}"
        for i, a in enumerate(abstractions)
    )


def _relationship_list(relationships: list[Relationship], abstractions: list[Abstraction]) -> str:
    """One line per relationship; ids were validated against `abstractions`."""
    return "\n".join(
        f"- {abstractions[r.from_abstraction].name} ({r.from_abstraction}) {r.label} "
        f"{abstractions[r.to_abstraction].name} ({r.to_abstraction}), see `{r.evidence}`"
        for r in relationships
    )


def _file_list(listing: SourceListing) -> str:
    return "\n".join(f"- {code_span(f.path)} ({f.size} bytes)" for f in listing.files) or (
        "(no files)"
    )


def _skipped_list(listing: SourceListing) -> str:
    noted = [s for s in listing.skipped if s.reason != "binary"]
    if not noted:
        return ""
    shown = "\n".join(f"- {code_span(s.path)}: {s.reason}" for s in noted[:MAX_REPORTED_SKIPS])
    more = len(noted) - MAX_REPORTED_SKIPS
    tail = f"\n- and {more} more" if more > 0 else ""
    return f"These files were left out of the list:\n{shown}{tail}"


def _skipped_errors(listing: SourceListing) -> list[CourseError]:
    """Files the listing left out, other than binaries, reported (first ones by name)."""
    noted = [s for s in listing.skipped if s.reason != "binary"]
    errors = [
        CourseError(
            step="abstractions",
            path=printable_path(s.path),
            message=f"not shown to the model: {s.reason}",
        )
        for s in noted[:MAX_REPORTED_SKIPS]
    ]
    if len(noted) > MAX_REPORTED_SKIPS:
        errors.append(
            CourseError(
                step="abstractions",
                message=f"{len(noted) - MAX_REPORTED_SKIPS} more files not shown to the model",
            )
        )
    return errors


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {code_span(item)}" for item in items)

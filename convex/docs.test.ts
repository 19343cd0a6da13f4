import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import type { Id } from "./_generated/dataModel";
import { api } from "./_generated/api";
import { MAX_DOC_CONTENT_BYTES, MAX_FILES_PER_CALL } from "./lib/limits";
import { T0, enqueue, expectRefusal, job, newBackend, setNow, type Backend } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

type Kind = "yaml" | "chapter" | "tutorial" | "toc";
function file(
  slug: string,
  content = `# ${slug}\n`,
  kind: Kind = "chapter",
  chapterIndex?: number,
) {
  return {
    slug,
    title: slug,
    kind,
    content,
    ...(chapterIndex !== undefined ? { chapterIndex } : {}),
  };
}
const summary = { chaptersCount: 2, tutorialsCount: 1, generatedAt: T0 };

async function claimed(
  t: Backend,
): Promise<{ jobId: Id<"jobs">; repositoryId: Id<"repositories"> }> {
  const jobId = await enqueue(t);
  await t.mutation(api.queue.claimOne, { workerId: "A" });
  return { jobId, repositoryId: (await job(t, jobId)).repositoryId };
}

async function slugs(t: Backend, jobId: Id<"jobs">): Promise<string[]> {
  return (await t.query(api.docs.listByJob, { jobId })).map((d) => d.slug);
}

describe("upsertFromJob", () => {
  test("replaces the job's whole document set", async () => {
    const t = newBackend();
    const { jobId, repositoryId } = await claimed(t);
    await t.mutation(api.docs.upsertFromJob, {
      jobId,
      repositoryId,
      summary,
      files: [
        file("step1_abstractions", "{}", "yaml"),
        file("01_intro", "a", "chapter", 0),
        file("02_core", "b", "chapter", 1),
      ],
    });
    expect(await slugs(t, jobId)).toEqual(["step1_abstractions", "01_intro", "02_core"]);

    await t.mutation(api.docs.upsertFromJob, {
      jobId,
      repositoryId,
      runId: "second",
      summary,
      files: [file("01_intro", "a2", "chapter", 0), file("index", "t", "tutorial", 1)],
    });
    const docs = await t.query(api.docs.listByJob, { jobId });
    expect(docs.map((d) => [d.slug, d.content, d.runId])).toEqual([
      ["01_intro", "a2", "second"],
      ["index", "t", "second"],
    ]);
    // Nothing of the first set is left behind, visible or not.
    const rows = await t.run(async (ctx) => await ctx.db.query("docs").collect());
    expect(rows).toHaveLength(2);
    expect(await job(t, jobId)).toMatchObject({
      docsCount: 2,
      docsRunId: "second",
      docsSummary: summary,
    });
  });

  test("stores documents without chapterIndex as non-chapters (-1)", async () => {
    const t = newBackend();
    const { jobId, repositoryId } = await claimed(t);
    await t.mutation(api.docs.upsertFromJob, {
      jobId,
      repositoryId,
      summary,
      files: [file("step2_relationships", "{}", "yaml")],
    });
    expect((await t.query(api.docs.listByJob, { jobId }))[0]?.chapterIndex).toBe(-1);
  });

  test("a re-delivered call leaves one copy", async () => {
    const t = newBackend();
    const { jobId, repositoryId } = await claimed(t);
    const call = { jobId, repositoryId, runId: "r1", summary, files: [file("a"), file("b")] };
    await t.mutation(api.docs.upsertFromJob, call);
    await t.mutation(api.docs.upsertFromJob, call);
    expect(await slugs(t, jobId)).toEqual(["a", "b"]);
    expect(await t.run(async (ctx) => (await ctx.db.query("docs").collect()).length)).toBe(2);
  });

  test("refuses another repository's id", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    const other = await enqueue(t, { repositoryUrl: "https://example.test/acme/other.git" });
    const otherRepo = (await job(t, other)).repositoryId;
    await expectRefusal(
      t.mutation(api.docs.upsertFromJob, {
        jobId,
        repositoryId: otherRepo,
        summary,
        files: [file("a")],
      }),
      "INVALID_ARGUMENT",
    );
  });
});

describe("generations of a repository's course", () => {
  test("publishing deletes the course an older job of the repository wrote", async () => {
    const t = newBackend();
    const first = await claimed(t);
    const other = await enqueue(t, { repositoryUrl: "https://example.test/acme/other.git" });
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.docs.upsertFromJob, {
      jobId: other,
      repositoryId: (await job(t, other)).repositoryId,
      summary,
      files: [file("01_other", "x", "chapter", 0)],
    });
    await t.mutation(api.docs.upsertFromJob, {
      ...first,
      summary,
      files: [file("01_old", "old", "chapter", 0)],
    });
    await t.mutation(api.queue.complete, { jobId: first.jobId, workerId: "A", docsCount: 1 });
    const { jobId: second } = await t.mutation(api.jobs.regenerate, { jobId: first.jobId });
    expect((await t.mutation(api.queue.claimOne, { workerId: "B" }))?.id).toBe(second);
    const result = await t.mutation(api.docs.upsertFromJob, {
      jobId: second,
      repositoryId: first.repositoryId,
      summary,
      files: [file("01_new", "new", "chapter", 0), file("02_new", "new", "chapter", 1)],
    });
    expect(result).toMatchObject({ docsCount: 2, deleted: 1 });
    const rows = await t.run(async (ctx) => await ctx.db.query("docs").collect());
    expect(rows.map((r) => r.slug).sort()).toEqual(["01_new", "02_new", "01_other"].sort());
    expect(await slugs(t, first.jobId)).toEqual([]);
  });

  test("an older job finishing late never deletes a newer job's course", async () => {
    const t = newBackend();
    const older = await claimed(t);
    const newer = await claimed(t);
    expect(newer.repositoryId).toBe(older.repositoryId);
    await t.mutation(api.docs.upsertFromJob, {
      ...newer,
      summary,
      files: [file("01_new", "new", "chapter", 0)],
    });
    const late = await t.mutation(api.docs.upsertFromJob, {
      ...older,
      summary,
      files: [file("01_old", "old", "chapter", 0)],
    });
    expect(late.deleted).toBe(0);
    expect(await slugs(t, newer.jobId)).toEqual(["01_new"]);
  });

  test("publishing leaves an older job's upload in progress alone", async () => {
    const t = newBackend();
    const older = await claimed(t);
    const newer = await claimed(t);
    const staged = { jobId: older.jobId, workerId: "A", attempt: 1, runId: "run-old" };
    await t.mutation(api.docs.putBatch, {
      ...staged,
      files: [file("01_old", "old", "chapter", 0)],
    });
    await t.mutation(api.docs.upsertFromJob, {
      ...newer,
      summary,
      files: [file("01_new", "new", "chapter", 0)],
    });
    const committed = await t.mutation(api.docs.commitRun, {
      ...staged,
      summary,
      expectedCount: 1,
    });
    expect(committed.docsCount).toBe(1);
    expect(await slugs(t, older.jobId)).toEqual(["01_old"]);
    expect(await slugs(t, newer.jobId)).toEqual(["01_new"]);
  });

  test("a regenerated job's course is refused unless its replacement failed", async () => {
    const t = newBackend();
    const old = await claimed(t);
    const { jobId: fresh } = await t.mutation(api.jobs.regenerate, { jobId: old.jobId });
    const upload = () =>
      t.mutation(api.docs.upsertFromJob, {
        ...old,
        summary,
        files: [file("01_old", "old", "chapter", 0)],
      });
    await expectRefusal(upload(), "SUPERSEDED");
    await t.mutation(api.jobs.requestCancel, { jobId: fresh });
    expect((await upload()).docsCount).toBe(1);
  });

  test("Fondation's call without workerId works while the job runs, not after a cancel", async () => {
    const t = newBackend();
    const { jobId, repositoryId } = await claimed(t);
    const upload = () =>
      t.mutation(api.docs.upsertFromJob, {
        jobId,
        repositoryId,
        summary,
        files: [file("01_intro", "a", "chapter", 0)],
      });
    expect((await upload()).docsCount).toBe(1);
    await t.mutation(api.jobs.requestCancel, { jobId });
    await expectRefusal(upload(), "JOB_CANCELED");
  });
});

describe("putBatch + commitRun", () => {
  const holder = { workerId: "A", attempt: 1 };

  test("a re-delivered batch does not duplicate, and nothing shows before the commit", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    const batch1 = {
      jobId,
      ...holder,
      runId: "run-1",
      files: [file("01_a", "a", "chapter", 0), file("02_b", "b", "chapter", 1)],
    };
    const batch2 = { jobId, ...holder, runId: "run-1", files: [file("index", "i", "tutorial", 2)] };
    expect(await t.mutation(api.docs.putBatch, batch1)).toEqual({
      inserted: 2,
      updated: 0,
      unchanged: 0,
    });
    expect(await t.mutation(api.docs.putBatch, batch1)).toEqual({
      inserted: 0,
      updated: 0,
      unchanged: 2,
    });
    await t.mutation(api.docs.putBatch, batch2);
    expect(await slugs(t, jobId)).toEqual([]);

    const committed = await t.mutation(api.docs.commitRun, {
      jobId,
      ...holder,
      runId: "run-1",
      summary,
      expectedCount: 3,
    });
    expect(committed).toEqual({ success: true, docsCount: 3, deleted: 0 });
    expect(await slugs(t, jobId)).toEqual(["01_a", "02_b", "index"]);
    // The commit and a batch of the committed run can be re-delivered.
    expect(
      await t.mutation(api.docs.commitRun, {
        jobId,
        ...holder,
        runId: "run-1",
        summary,
        expectedCount: 3,
      }),
    ).toEqual({
      success: true,
      docsCount: 3,
      deleted: 0,
    });
    expect((await t.mutation(api.docs.putBatch, batch2)).unchanged).toBe(1);
  });

  test("a changed document in a re-sent batch replaces the staged one", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    await t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files: [file("a", "v1")] });
    expect(
      await t.mutation(api.docs.putBatch, {
        jobId,
        ...holder,
        runId: "r",
        files: [file("a", "v2")],
      }),
    ).toEqual({
      inserted: 0,
      updated: 1,
      unchanged: 0,
    });
    await t.mutation(api.docs.commitRun, {
      jobId,
      ...holder,
      runId: "r",
      summary,
      expectedCount: 1,
    });
    expect((await t.query(api.docs.listByJob, { jobId })).map((d) => d.content)).toEqual(["v2"]);
  });

  test("commitRun refuses a count that does not match and changes nothing", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    await t.mutation(api.docs.putBatch, {
      jobId,
      ...holder,
      runId: "r",
      files: [file("a"), file("b")],
    });
    await expectRefusal(
      t.mutation(api.docs.commitRun, { jobId, ...holder, runId: "r", summary, expectedCount: 3 }),
      "COUNT_MISMATCH",
    );
    expect(await slugs(t, jobId)).toEqual([]);
    expect((await job(t, jobId)).docsRunId).toBeUndefined();
  });

  test("committing a run deletes the job's other runs, staged or committed", async () => {
    const t = newBackend();
    const { jobId, repositoryId } = await claimed(t);
    await t.mutation(api.docs.upsertFromJob, {
      jobId,
      repositoryId,
      runId: "old",
      summary,
      files: [file("x"), file("y")],
    });
    await t.mutation(api.docs.putBatch, {
      jobId,
      ...holder,
      runId: "abandoned",
      files: [file("z")],
    });
    await t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "new", files: [file("a")] });
    expect(await slugs(t, jobId)).toEqual(["x", "y"]);

    expect(
      await t.mutation(api.docs.commitRun, {
        jobId,
        ...holder,
        runId: "new",
        summary,
        expectedCount: 1,
      }),
    ).toEqual({
      success: true,
      docsCount: 1,
      deleted: 3,
    });
    expect(await slugs(t, jobId)).toEqual(["a"]);
    expect(
      await t.run(async (ctx) => (await ctx.db.query("docs").collect()).map((d) => d.runId)),
    ).toEqual(["new"]);
  });

  test("a committed run cannot change", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    await t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files: [file("a", "v1")] });
    await t.mutation(api.docs.commitRun, {
      jobId,
      ...holder,
      runId: "r",
      summary,
      expectedCount: 1,
    });
    await expectRefusal(
      t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files: [file("a", "v2")] }),
      "RUN_COMMITTED",
    );
    await expectRefusal(
      t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files: [file("b")] }),
      "RUN_COMMITTED",
    );
  });

  test("a stale worker can neither stage nor commit", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });
    await t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "from-A", files: [file("a")] });
    setNow(T0 + 2_000);
    await t.mutation(api.queue.claimOne, { workerId: "B", leaseMs: 60_000 });

    await expectRefusal(
      t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "from-A", files: [file("b")] }),
      "LEASE_LOST",
    );
    await expectRefusal(
      t.mutation(api.docs.commitRun, {
        jobId,
        ...holder,
        runId: "from-A",
        summary,
        expectedCount: 1,
      }),
      "LEASE_LOST",
    );
    await expectRefusal(
      t.mutation(api.docs.putBatch, {
        jobId,
        workerId: "B",
        attempt: 1,
        runId: "from-B",
        files: [file("b")],
      }),
      "STALE_ATTEMPT",
    );
    expect(await slugs(t, jobId)).toEqual([]);
  });

  test("nothing can be uploaded to a finished job", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    await t.mutation(api.jobs.complete, { jobId, ...holder, result: { success: true } });
    await expectRefusal(
      t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files: [file("a")] }),
      "JOB_FINISHED",
    );
  });
});

describe("limits", () => {
  const holder = { workerId: "A", attempt: 1 };

  test("a document over the content limit is refused by name", async () => {
    const t = newBackend();
    const { jobId, repositoryId } = await claimed(t);
    // Multi-byte characters: the limit is on UTF-8 bytes, not characters.
    const big = "é".repeat(MAX_DOC_CONTENT_BYTES / 2 + 1);
    const error = await t
      .mutation(api.docs.putBatch, {
        jobId,
        ...holder,
        runId: "r",
        files: [file("ok"), file("huge", big)],
      })
      .then(
        () => null,
        (e: { data?: Record<string, unknown> }) => e.data,
      );
    expect(error).toMatchObject({
      code: "LIMIT_EXCEEDED",
      limit: "docContentBytes",
      slug: "huge",
      actual: MAX_DOC_CONTENT_BYTES + 2,
    });
    await expectRefusal(
      t.mutation(api.docs.upsertFromJob, {
        jobId,
        repositoryId,
        summary,
        files: [file("huge", big)],
      }),
      "LIMIT_EXCEEDED",
    );
    // The refused batch wrote nothing, not even its valid file.
    expect(await t.run(async (ctx) => (await ctx.db.query("docs").collect()).length)).toBe(0);
    // Exactly at the limit is accepted.
    const atLimit = "a".repeat(MAX_DOC_CONTENT_BYTES);
    expect(
      (
        await t.mutation(api.docs.putBatch, {
          jobId,
          ...holder,
          runId: "r",
          files: [file("edge", atLimit)],
        })
      ).inserted,
    ).toBe(1);
  });

  test("too many files in one call are refused", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    const files = Array.from({ length: MAX_FILES_PER_CALL + 1 }, (_, i) => file(`f${i}`, "x"));
    await expectRefusal(
      t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files }),
      "LIMIT_EXCEEDED",
    );
    expect(
      (await t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files: files.slice(1) }))
        .inserted,
    ).toBe(MAX_FILES_PER_CALL);
  });

  test("bad slugs, duplicate slugs and bad run ids are refused", async () => {
    const t = newBackend();
    const { jobId } = await claimed(t);
    for (const files of [[file("../etc")], [file("")], [file("a"), file("a")]]) {
      await expectRefusal(
        t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "r", files }),
        "INVALID_ARGUMENT",
      );
    }
    await expectRefusal(
      t.mutation(api.docs.putBatch, { jobId, ...holder, runId: "a b", files: [file("a")] }),
      "INVALID_ARGUMENT",
    );
  });
});

import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api, internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { T0, jobRow, newFondation, seedJob, setNow, type Fondation } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

const summary = { chaptersCount: 1, tutorialsCount: 1, generatedAt: T0 };

async function upload(
  t: Fondation,
  jobId: Id<"jobs">,
  repositoryId: Id<"repositories">,
  label: string,
) {
  return await t.mutation(api.docs.upsertFromJob, {
    jobId,
    repositoryId,
    runId: `run-${label}`,
    summary,
    files: [
      {
        slug: "tutorial_1",
        title: `Interactive Tutorial: ${label}`,
        kind: "tutorial",
        content: "t",
      },
      { slug: "chapter_2", title: `Two ${label}`, kind: "chapter", chapterIndex: 2, content: "b" },
      { slug: "chapter_1", title: `One ${label}`, kind: "chapter", chapterIndex: 1, content: "a" },
    ],
  });
}

describe("upsertFromJob", () => {
  test("stores the files and sets the job's docsCount", async () => {
    const t = newFondation();
    const { jobId, repositoryId } = await seedJob(t);
    expect(await upload(t, jobId, repositoryId, "v1")).toMatchObject({ docsCount: 3 });
    expect((await jobRow(t, jobId)).docsCount).toBe(3);
    const docs = await t.query(internal.seed.docsOfRepository, { repositoryId });
    expect(docs.map((d) => [d.slug, d.chapterIndex, d.runId])).toEqual([
      ["tutorial_1", 0, "run-v1"],
      ["chapter_1", 1, "run-v1"],
      ["chapter_2", 2, "run-v1"],
    ]);
  });

  test("a superseded job uploading late deletes the newer course", async () => {
    const t = newFondation();
    const first = await seedJob(t);
    const { jobId: newer } = await t.mutation(api.jobs.regenerate, { jobId: first.jobId });
    await upload(t, newer, first.repositoryId, "new");
    await upload(t, first.jobId, first.repositoryId, "old");
    const docs = await t.query(internal.seed.docsOfRepository, {
      repositoryId: first.repositoryId,
    });
    expect(docs.map((d) => d.title)).toEqual(["Interactive Tutorial: old", "One old", "Two old"]);
    expect(await t.query(internal.seed.docsOfJob, { jobId: newer })).toEqual([]);
    // The newer job still claims documents it no longer has.
    expect((await jobRow(t, newer)).docsCount).toBe(3);
  });

  test("leaves other repositories' courses alone", async () => {
    const t = newFondation();
    const a = await seedJob(t);
    const b = await seedJob(t, { fullName: "acme/b" });
    await upload(t, a.jobId, a.repositoryId, "a");
    await upload(t, b.jobId, b.repositoryId, "b");
    await upload(t, a.jobId, a.repositoryId, "a2");
    expect(await t.query(internal.seed.docsOfJob, { jobId: b.jobId })).toHaveLength(3);
  });
});

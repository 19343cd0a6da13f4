// @vitest-environment node
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api, internal } from "../../../convex/_generated/api";
import { newBackend, type Backend } from "./backend";
import { restoreSnapshot, SnapshotFile, takeSnapshot } from "./persistence";

const T0 = Date.UTC(2025, 0, 1);

async function everything(t: Backend) {
  return await t.run(async (ctx) => ({
    jobs: await ctx.db.query("jobs").collect(),
    docs: await ctx.db.query("docs").collect(),
    jobLogs: await ctx.db.query("jobLogs").collect(),
    repositories: await ctx.db.query("repositories").collect(),
  }));
}

/** A backend with deletions behind it: replaced documents and trimmed logs leave id gaps. */
async function busyBackend(): Promise<Backend> {
  const t = newBackend();
  const jobId = await t.mutation(internal.jobs.enqueue, {
    repositoryUrl: "https://example.test/a/b.git",
  });
  await t.mutation(internal.jobs.enqueue, { repositoryUrl: "https://example.test/a/c.git" });
  await t.mutation(api.queue.claimOne, { workerId: "w" });
  const job = await t.query(internal.jobs.get, { jobId });
  const summary = { chaptersCount: 1, tutorialsCount: 0, generatedAt: T0 };
  for (const round of [1, 2, 3]) {
    vi.setSystemTime(T0 + round);
    await t.mutation(api.docs.upsertFromJob, {
      jobId,
      repositoryId: job!.repositoryId,
      runId: `r${round}`,
      workerId: "w",
      summary,
      files: [{ slug: "a", title: "A", kind: "chapter", chapterIndex: 0, content: `v${round}` }],
    });
  }
  // Several writes in the same millisecond get sub-millisecond creation times.
  for (let i = 0; i < 5; i++) {
    await t.mutation(api.jobs.appendLog, { jobId, level: "info", msg: `m${i}` });
  }
  return t;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
});
afterEach(() => vi.useRealTimers());

describe("snapshots", () => {
  test("restore brings back every document with its id and creation time", async () => {
    const original = await busyBackend();
    const snapshot = await takeSnapshot(original);

    const restored = newBackend();
    const saved = Object.values(snapshot.tables).flat().length;
    // Through JSON, as the file holds it.
    expect(await restoreSnapshot(restored, JSON.parse(JSON.stringify(snapshot)))).toBe(saved);
    expect(await everything(restored)).toEqual(await everything(original));
  });

  test("ids handed out after a restore are new ones", async () => {
    const original = await busyBackend();
    const snapshot = await takeSnapshot(original);
    const restored = newBackend();
    await restoreSnapshot(restored, snapshot);

    const fresh = await restored.mutation(internal.jobs.enqueue, {
      repositoryUrl: "https://example.test/a/b.git",
    });
    const counter = (id: string): number => Number(/^[0-9]+/.exec(id)![0]);
    // Past every id the original handed out, those of deleted documents included.
    expect(counter(fresh)).toBe(snapshot.nextIdCounter);
    const everIssued = Object.values(snapshot.tables)
      .flat()
      .map((doc) => counter((doc as { _id: string })._id));
    expect(Math.max(...everIssued)).toBeLessThan(snapshot.nextIdCounter);
  });

  test("the file is rewritten only when the tables change", async () => {
    const dir = mkdtempSync(join(tmpdir(), "snapshots-"));
    try {
      const t = await busyBackend();
      const file = new SnapshotFile(join(dir, "db.json"));
      expect(file.write(await takeSnapshot(t))).toBe(true);
      expect(file.write(await takeSnapshot(t))).toBe(false);
      await t.mutation(internal.jobs.enqueue, { repositoryUrl: "https://example.test/x/y.git" });
      expect(file.write(await takeSnapshot(t))).toBe(true);

      const reread = new SnapshotFile(file.path).read();
      expect(reread?.tables).toEqual((await takeSnapshot(t)).tables);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a snapshot whose ids cannot be reproduced is refused", async () => {
    const snapshot = await takeSnapshot(await busyBackend());
    const restored = newBackend();
    // Something already took the first ids.
    await restored.mutation(internal.jobs.enqueue, {
      repositoryUrl: "https://example.test/a/b.git",
    });
    await expect(restoreSnapshot(restored, snapshot)).rejects.toThrow(/restored .* as /);
  });
});

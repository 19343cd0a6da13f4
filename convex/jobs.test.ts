import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { CANCELED_BY_USER } from "./jobs";
import { MAX_LOG_ENTRIES_PER_JOB, MAX_LOG_MESSAGE_CHARS } from "./lib/limits";
import { T0, enqueue, expectRefusal, job, newBackend, setNow, type Backend } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

async function user(t: Backend, githubId: string): Promise<Id<"users">> {
  return await t.run(
    async (ctx) => await ctx.db.insert("users", { githubId, username: githubId, createdAt: T0 }),
  );
}

describe("getJob, getById and getJobByRepository", () => {
  test("return the row, or the repository's newest job", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const row = await job(t, jobId);
    expect(await t.query(api.jobs.getJob, { jobId })).toEqual(row);
    expect(await t.query(api.jobs.getById, { id: jobId })).toEqual(row);
    const { jobId: newer } = await t.mutation(api.jobs.regenerate, { jobId });
    const latest = await t.query(api.jobs.getJobByRepository, { repositoryId: row.repositoryId });
    expect(latest?._id).toBe(newer);
  });
});

describe("updateStatus", () => {
  test("needs the job's callback token", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, { jobId, status: "running", callbackToken: "nope" }),
      "INVALID_TOKEN",
    );
  });

  test("keeps the token-only calls working, until the job is finished", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.queue.claimOne, { workerId: "A" });
    const token = claimed!.callbackToken;
    await t.mutation(api.jobs.updateStatus, {
      jobId,
      status: "running",
      callbackToken: token,
      progress: "Initializing...",
    });
    expect((await job(t, jobId)).progress).toBe("Initializing...");
    await t.mutation(api.jobs.updateStatus, {
      jobId,
      status: "failed",
      callbackToken: token,
      error: "User not found",
    });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, { jobId, status: "running", callbackToken: token }),
      "JOB_FINISHED",
    );
    // Re-delivering the finishing status is harmless.
    expect(
      await t.mutation(api.jobs.updateStatus, { jobId, status: "failed", callbackToken: token }),
    ).toEqual({ success: true, status: "failed" });
    expect(await job(t, jobId)).toMatchObject({ status: "failed", error: "User not found" });
  });

  test("a canceled job tells its worker so", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.jobs.requestCancel, { jobId });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, {
        jobId,
        status: "running",
        callbackToken: claimed!.callbackToken,
        workerId: "A",
        attempt: 1,
      }),
      "JOB_CANCELED",
    );
  });
});

describe("cancel", () => {
  test("requestCancel: canceled, cancelRequested, lockedBy kept; not twice", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    expect(await t.mutation(api.jobs.requestCancel, { jobId })).toEqual({ success: true });
    expect(await job(t, jobId)).toMatchObject({
      status: "canceled",
      cancelRequested: true,
      lockedBy: "A",
      error: CANCELED_BY_USER,
      canceledAt: T0,
    });
    await expectRefusal(t.mutation(api.jobs.requestCancel, { jobId }), "JOB_FINISHED");
    // Never taken back by a claim.
    setNow(T0 + 3_600_000);
    expect(await t.mutation(api.queue.claimOne, { workerId: "B" })).toBeNull();
  });

  test("cancelJob: failed, by the job's owner only", async () => {
    const t = newBackend();
    const owner = await user(t, "1");
    const stranger = await user(t, "2");
    const jobId = await enqueue(t, { userId: owner });
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await expectRefusal(
      t.mutation(api.jobs.cancelJob, { jobId, userId: stranger }),
      "INVALID_ARGUMENT",
    );
    expect(await t.mutation(api.jobs.cancelJob, { jobId, userId: owner })).toEqual({
      success: true,
      jobId,
    });
    expect(await job(t, jobId)).toMatchObject({ status: "failed", error: CANCELED_BY_USER });
    await expectRefusal(
      t.mutation(api.queue.heartbeat, { jobId, workerId: "A", status: "analyzing" }),
      "JOB_FINISHED",
    );
  });
});

describe("regenerate", () => {
  test("queues a new job for the repository and supersedes the running one", async () => {
    const t = newBackend();
    const old = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    setNow(T0 + 100);
    const { jobId: fresh } = await t.mutation(api.jobs.regenerate, { jobId: old });
    const oldRow = await job(t, old);
    expect(await job(t, fresh)).toMatchObject({
      status: "pending",
      repositoryId: oldRow.repositoryId,
      prompt: oldRow.prompt,
      language: "fr",
      attempts: 0,
      runAt: T0 + 100,
    });
    expect((await job(t, fresh)).callbackToken).not.toBe(oldRow.callbackToken);
    await expectRefusal(
      t.mutation(api.docs.upsertFromJob, {
        jobId: old,
        repositoryId: oldRow.repositoryId,
        files: [{ slug: "a", title: "A", kind: "chapter", chapterIndex: 0, content: "late" }],
        summary: { chaptersCount: 1, tutorialsCount: 0, generatedAt: T0 },
      }),
      "SUPERSEDED",
    );
  });
});

describe("logs", () => {
  test("appendLog numbers lines per job and keeps only the newest", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const other = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.jobs.appendLog, { jobId: other, level: "info", msg: "other job" });
    const total = MAX_LOG_ENTRIES_PER_JOB + 30;
    for (let i = 0; i < total; i++) {
      await t.mutation(api.jobs.appendLog, {
        jobId,
        workerId: "A",
        attempt: 1,
        level: i % 2 === 0 ? "info" : "error",
        msg: `line ${i}`,
      });
    }
    const kept = await t.query(api.jobs.getLogs, { jobId });
    expect(kept).toHaveLength(MAX_LOG_ENTRIES_PER_JOB);
    expect(kept[0]).toMatchObject({ seq: 31, msg: "line 30", ts: T0, attempt: 1 });
    expect(kept.at(-1)).toMatchObject({ seq: total, msg: `line ${total - 1}` });
    // Another job's log is not trimmed by this one.
    expect(await t.query(api.jobs.getLogs, { jobId: other })).toHaveLength(1);
  });

  test("truncates long lines", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.appendLog, {
      jobId,
      level: "error",
      msg: "x".repeat(MAX_LOG_MESSAGE_CHARS * 2),
    });
    const [entry] = await t.query(api.jobs.getLogs, { jobId });
    expect(entry?.msg).toHaveLength(MAX_LOG_MESSAGE_CHARS);
    expect(entry?.msg.endsWith("…")).toBe(true);
  });

  test("a stale worker's lines are refused", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 2_000);
    await t.mutation(api.queue.claimOne, { workerId: "B" });
    await expectRefusal(
      t.mutation(api.jobs.appendLog, {
        jobId,
        workerId: "A",
        attempt: 1,
        level: "info",
        msg: "late",
      }),
      "LEASE_LOST",
    );
    expect(await t.query(api.jobs.getLogs, { jobId })).toHaveLength(0);
  });
});

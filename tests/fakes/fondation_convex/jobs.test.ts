import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api } from "./_generated/api";
import { CANCELED_BY_USER } from "./jobs";
import { T0, expectError, jobRow, newFondation, seedJob, setNow } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

describe("getJob and getById", () => {
  test("return the whole row, or null", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    const row = await jobRow(t, jobId);
    expect(await t.query(api.jobs.getJob, { jobId })).toEqual(row);
    expect(await t.query(api.jobs.getById, { id: jobId })).toEqual(row);
    await t.run(async (ctx) => await ctx.db.delete(jobId));
    expect(await t.query(api.jobs.getJob, { jobId })).toBeNull();
  });
});

describe("getJobByRepository", () => {
  test("returns the repository's newest job", async () => {
    const t = newFondation();
    const { jobId, repositoryId } = await seedJob(t);
    await seedJob(t, { fullName: "other/repo" });
    expect((await t.query(api.jobs.getJobByRepository, { repositoryId }))?._id).toBe(jobId);
    const { jobId: newer } = await t.mutation(api.jobs.regenerate, { jobId });
    expect((await t.query(api.jobs.getJobByRepository, { repositoryId }))?._id).toBe(newer);
  });
});

describe("updateStatus", () => {
  test("needs the callback token, and then writes over anything", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    const { callbackToken } = await jobRow(t, jobId);
    await expectError(
      t.mutation(api.jobs.updateStatus, { jobId, status: "failed", callbackToken: "nope" }),
      "Invalid callback token",
    );
    await t.mutation(api.jobs.requestCancel, { jobId });
    expect(
      await t.mutation(api.jobs.updateStatus, {
        jobId,
        status: "analyzing",
        callbackToken,
        progress: "Analyse du code...",
      }),
    ).toEqual({ success: true });
    expect(await jobRow(t, jobId)).toMatchObject({
      status: "analyzing",
      progress: "Analyse du code...",
    });
  });
});

describe("cancel", () => {
  test("requestCancel marks the job canceled and keeps lockedBy, so heartbeats go on", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    expect(await t.mutation(api.jobs.requestCancel, { jobId })).toEqual({ success: true });
    expect(await jobRow(t, jobId)).toMatchObject({
      status: "canceled",
      cancelRequested: true,
      lockedBy: "w",
      error: CANCELED_BY_USER,
    });
    expect(await t.mutation(api.queue.heartbeat, { jobId, workerId: "w" })).toEqual({
      success: true,
    });
    await expectError(t.mutation(api.jobs.requestCancel, { jobId }), "cannot be cancelled");
  });

  test("cancelJob marks the job failed, for its owner only, and keeps lockedBy", async () => {
    const t = newFondation();
    const { jobId, userId } = await seedJob(t);
    const stranger = await seedJob(t, { fullName: "other/repo" });
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await expectError(
      t.mutation(api.jobs.cancelJob, { jobId, userId: stranger.userId }),
      "Unauthorized",
    );
    expect(await t.mutation(api.jobs.cancelJob, { jobId, userId })).toEqual({
      success: true,
      jobId,
    });
    const row = await jobRow(t, jobId);
    expect(row).toMatchObject({ status: "failed", lockedBy: "w", error: CANCELED_BY_USER });
    expect(row.cancelRequested).toBeUndefined();
    await expectError(t.mutation(api.jobs.cancelJob, { jobId, userId }), "not currently running");
  });
});

describe("regenerate", () => {
  test("creates a new pending job for the same repository and leaves the old one running", async () => {
    const t = newFondation();
    const { jobId, repositoryId, userId } = await seedJob(t);
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    setNow(T0 + 100);
    const answer = await t.mutation(api.jobs.regenerate, { jobId });
    expect(answer.jobId).not.toBe(jobId);
    expect(await jobRow(t, answer.jobId)).toMatchObject({
      status: "pending",
      repositoryId,
      userId,
      prompt: "Explain the code base",
      attempts: 0,
      runAt: T0 + 100,
    });
    expect((await jobRow(t, jobId)).status).toBe("claimed");
    expect((await t.mutation(api.queue.claimOne, { workerId: "w2" }))?.id).toBe(answer.jobId);
  });
});

describe("logs", () => {
  test("appendLog numbers the entries per job and getLogs returns them in order", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    const other = await seedJob(t, { fullName: "x/y" });
    await t.mutation(api.jobs.appendLog, { jobId, level: "info", msg: "Clonage du dépôt..." });
    await t.mutation(api.jobs.appendLog, { jobId: other.jobId, level: "info", msg: "other" });
    setNow(T0 + 1);
    await t.mutation(api.jobs.appendLog, { jobId, level: "error", msg: "boom" });
    const logs = await t.query(api.jobs.getLogs, { jobId });
    expect(logs.map(({ ts, seq, level, msg }) => ({ ts, seq, level, msg }))).toEqual([
      { ts: T0, seq: 1, level: "info", msg: "Clonage du dépôt..." },
      { ts: T0 + 1, seq: 2, level: "error", msg: "boom" },
    ]);
  });

  test("only info and error levels exist", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    await expectError(
      // @ts-expect-error: "warn" is not one of Fondation's levels.
      t.mutation(api.jobs.appendLog, { jobId, level: "warn", msg: "x" }),
      "Validator",
    );
  });
});

import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api } from "./_generated/api";
import { BACKOFF_JITTER_MS, BACKOFF_MAX_MS, DEFAULT_LEASE_MS, NOT_OWNED, backoffMs } from "./queue";
import { T0, expectError, jobRow, newFondation, seedJob, setNow } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

describe("claimOne", () => {
  test("hands out the oldest ready job, in Fondation's shape, once", async () => {
    const t = newFondation();
    const later = await seedJob(t, { runAt: T0 - 10 });
    const oldest = await seedJob(t, { runAt: T0 - 20, fullName: "acme/old" });

    const claimed = await t.mutation(api.queue.claimOne, { workerId: "w1" });
    expect(claimed).toEqual({
      id: oldest.jobId,
      repositoryId: oldest.repositoryId,
      userId: oldest.userId,
      prompt: "Explain the code base",
      callbackToken: (await jobRow(t, oldest.jobId)).callbackToken,
      attempts: 0,
    });
    const row = await jobRow(t, oldest.jobId);
    expect(row).toMatchObject({
      status: "claimed",
      lockedBy: "w1",
      leaseUntil: T0 + DEFAULT_LEASE_MS,
    });
    expect((await t.mutation(api.queue.claimOne, { workerId: "w2" }))?.id).toBe(later.jobId);
    expect(await t.mutation(api.queue.claimOne, { workerId: "w3" })).toBeNull();
  });

  test("leaves a job alone until its runAt and honours leaseMs", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t, { runAt: T0 + 1000 });
    expect(await t.mutation(api.queue.claimOne, { workerId: "w" })).toBeNull();
    setNow(T0 + 1000);
    expect((await t.mutation(api.queue.claimOne, { workerId: "w", leaseMs: 42 }))?.id).toBe(jobId);
    expect((await jobRow(t, jobId)).leaseUntil).toBe(T0 + 1000 + 42);
  });

  test("never takes back a job whose lease expired", async () => {
    const t = newFondation();
    await seedJob(t);
    await t.mutation(api.queue.claimOne, { workerId: "gone", leaseMs: 10 });
    setNow(T0 + DEFAULT_LEASE_MS * 10);
    expect(await t.mutation(api.queue.claimOne, { workerId: "w2" })).toBeNull();
  });
});

describe("heartbeat", () => {
  test("reports status and progress and renews the lease", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    setNow(T0 + 5000);
    const answer = await t.mutation(api.queue.heartbeat, {
      jobId,
      workerId: "w",
      status: "analyzing",
      progress: "Étape 2/6: Analyse des relations entre composants",
      currentStep: 2,
      totalSteps: 6,
    });
    expect(answer).toEqual({ success: true });
    expect(await jobRow(t, jobId)).toMatchObject({
      status: "analyzing",
      progress: "Étape 2/6: Analyse des relations entre composants",
      currentStep: 2,
      totalSteps: 6,
      leaseUntil: T0 + 5000 + DEFAULT_LEASE_MS,
    });
  });

  test("refuses another worker and a missing job with Fondation's message", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    await expectError(t.mutation(api.queue.heartbeat, { jobId, workerId: "w" }), NOT_OWNED);
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await expectError(t.mutation(api.queue.heartbeat, { jobId, workerId: "intruder" }), NOT_OWNED);
    await t.run(async (ctx) => await ctx.db.delete(jobId));
    await expectError(t.mutation(api.queue.heartbeat, { jobId, workerId: "w" }), NOT_OWNED);
  });

  test("writes its status over a job the UI canceled, as Fondation does", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await t.mutation(api.jobs.requestCancel, { jobId });
    await t.mutation(api.queue.heartbeat, { jobId, workerId: "w", status: "analyzing" });
    expect(await jobRow(t, jobId)).toMatchObject({ status: "analyzing", cancelRequested: true });
  });
});

describe("complete", () => {
  test("finishes the job with its result and docsCount and releases it", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await expectError(
      t.mutation(api.queue.complete, { jobId, workerId: "other", docsCount: 3 }),
      NOT_OWNED,
    );
    setNow(T0 + 9);
    expect(
      await t.mutation(api.queue.complete, {
        jobId,
        workerId: "w",
        result: { success: true, message: "done" },
        docsCount: 3,
      }),
    ).toEqual({ success: true });
    const row = await jobRow(t, jobId);
    expect(row).toMatchObject({
      status: "completed",
      docsCount: 3,
      completedAt: T0 + 9,
      result: { success: true, message: "done" },
    });
    expect(row.lockedBy).toBeUndefined();
    expect(row.leaseUntil).toBeUndefined();
    // Released: a late second call is refused like any stranger's.
    await expectError(t.mutation(api.queue.complete, { jobId, workerId: "w" }), NOT_OWNED);
  });

  test("takes a string or null result too", async () => {
    const t = newFondation();
    const a = await seedJob(t);
    const b = await seedJob(t, { fullName: "acme/b" });
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await t.mutation(api.queue.complete, { jobId: a.jobId, workerId: "w", result: "ok" });
    await t.mutation(api.queue.complete, { jobId: b.jobId, workerId: "w", result: null });
    expect((await jobRow(t, a.jobId)).result).toBe("ok");
    expect((await jobRow(t, b.jobId)).result).toBeNull();
  });
});

describe("retryOrFail", () => {
  test("backs off 5 s·2^(n-1) plus jitter, then is dead at the fifth failure", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t);
    let now = T0;
    for (let failure = 1; failure <= 4; failure++) {
      const claimed = await t.mutation(api.queue.claimOne, { workerId: "w" });
      expect(claimed?.attempts).toBe(failure - 1);
      const answer = await t.mutation(api.queue.retryOrFail, {
        jobId,
        workerId: "w",
        error: `boom ${failure}`,
      });
      if (answer.status !== "retrying") throw new Error(`retry ${failure} was ${answer.status}`);
      expect(answer.attempts).toBe(failure);
      const delay = answer.nextRunAt - now;
      const base = 5000 * 2 ** (failure - 1);
      expect(delay).toBeGreaterThanOrEqual(base);
      expect(delay).toBeLessThanOrEqual(base + BACKOFF_JITTER_MS);
      const row = await jobRow(t, jobId);
      expect(row).toMatchObject({ status: "pending", attempts: failure, runAt: answer.nextRunAt });
      expect(row.lastError).toBe(`boom ${failure}`);
      expect(row.lockedBy).toBeUndefined();
      // Not claimable before nextRunAt.
      setNow(answer.nextRunAt - 1);
      expect(await t.mutation(api.queue.claimOne, { workerId: "w" })).toBeNull();
      now = answer.nextRunAt;
      setNow(now);
    }
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    expect(
      await t.mutation(api.queue.retryOrFail, { jobId, workerId: "w", error: "last" }),
    ).toEqual({ status: "dead", attempts: 5 });
    expect(await jobRow(t, jobId)).toMatchObject({ status: "dead", error: "last", attempts: 5 });
    setNow(now + BACKOFF_MAX_MS * 2);
    expect(await t.mutation(api.queue.claimOne, { workerId: "w" })).toBeNull();
  });

  test("honours a job's own maxAttempts and refuses strangers", async () => {
    const t = newFondation();
    const { jobId } = await seedJob(t, { maxAttempts: 1 });
    await t.mutation(api.queue.claimOne, { workerId: "w" });
    await expectError(
      t.mutation(api.queue.retryOrFail, { jobId, workerId: "x", error: "e" }),
      NOT_OWNED,
    );
    expect(
      (await t.mutation(api.queue.retryOrFail, { jobId, workerId: "w", error: "e" })).status,
    ).toBe("dead");
  });

  test("the backoff never exceeds ten minutes", () => {
    expect(backoffMs(1, 0)).toBe(5000);
    expect(backoffMs(3, 1)).toBe(20000 + BACKOFF_JITTER_MS);
    expect(backoffMs(30, 1)).toBe(BACKOFF_MAX_MS);
  });
});

import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api } from "./_generated/api";
import { NOT_OWNED } from "./lib/lease";
import {
  DEFAULT_LEASE_MS,
  DEFAULT_MAX_ATTEMPTS,
  RETRY_BASE_MS,
  RETRY_JITTER_MS,
} from "./lib/limits";
import { retryDelayMs } from "./queue";
import { T0, enqueue, expectRefusal, job, newBackend, setNow } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

describe("claimOne", () => {
  test("hands out the oldest ready job once, in Fondation's shape plus ours", async () => {
    const t = newBackend();
    const first = await enqueue(t);
    setNow(T0 + 10);
    const second = await enqueue(t);

    const a = await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 60_000 });
    const b = await t.mutation(api.queue.claimOne, { workerId: "B", leaseMs: 60_000 });
    const c = await t.mutation(api.queue.claimOne, { workerId: "C", leaseMs: 60_000 });

    expect(a?.id).toBe(first);
    expect(b?.id).toBe(second);
    expect(c).toBeNull();
    const row = await job(t, first);
    expect(a).toEqual({
      id: first,
      repositoryId: row.repositoryId,
      prompt: "Explain the code base",
      callbackToken: row.callbackToken,
      attempts: 0,
      attempt: 1,
      leaseUntil: T0 + 10 + 60_000,
      maxAttempts: DEFAULT_MAX_ATTEMPTS,
      repositoryUrl: "https://example.test/acme/widgets.git",
      language: "fr",
    });
    expect(row).toMatchObject({ status: "claimed", lockedBy: "A", attempt: 1, attempts: 0 });
    expect(a?.callbackToken).toMatch(/^[0-9a-f]{64}$/);
  });

  test("leaves a job alone until its runAt, and leases for 5 minutes by default", async () => {
    const t = newBackend();
    const jobId = await enqueue(t, { runAt: T0 + 5_000 });
    expect(await t.mutation(api.queue.claimOne, { workerId: "A" })).toBeNull();
    setNow(T0 + 5_000);
    expect(await t.mutation(api.queue.claimOne, { workerId: "A" })).not.toBeNull();
    expect((await job(t, jobId)).leaseUntil).toBe(T0 + 5_000 + DEFAULT_LEASE_MS);
  });

  test("takes back a job whose lease expired, as a new claim after a failed attempt", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });

    setNow(T0 + 1_000);
    expect(await t.mutation(api.queue.claimOne, { workerId: "B", leaseMs: 1_000 })).toBeNull();

    setNow(T0 + 1_001);
    const retaken = await t.mutation(api.queue.claimOne, { workerId: "B", leaseMs: 1_000 });
    expect(retaken).toMatchObject({ id: jobId, attempts: 1, attempt: 2 });
    expect(await job(t, jobId)).toMatchObject({
      status: "claimed",
      lockedBy: "B",
      lastError: "Lease expired",
    });
  });

  test("a heartbeat keeps the job from being taken back", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 900);
    const beat = await t.mutation(api.queue.heartbeat, {
      jobId,
      workerId: "A",
      leaseMs: 1_000,
      attempt: 1,
    });
    expect(beat).toMatchObject({ success: true, leaseUntil: T0 + 1_900 });

    setNow(T0 + 1_500);
    expect(await t.mutation(api.queue.claimOne, { workerId: "B" })).toBeNull();
    setNow(T0 + 1_901);
    expect(await t.mutation(api.queue.claimOne, { workerId: "B" })).toMatchObject({ id: jobId });
  });

  test("retires, rather than retries, a job whose last attempt lost its lease", async () => {
    const t = newBackend();
    const jobId = await enqueue(t, { maxAttempts: 1 });
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 1_500);
    const other = await enqueue(t);
    setNow(T0 + 2_000);
    // The dead job is skipped and the next one handed out in the same call.
    expect((await t.mutation(api.queue.claimOne, { workerId: "B" }))?.id).toBe(other);
    expect(await job(t, jobId)).toMatchObject({ status: "dead", attempts: 1 });
    expect((await job(t, jobId)).lockedBy).toBeUndefined();
  });

  test("claims a job written by Fondation, without attempts, runAt or language", async () => {
    const t = newBackend();
    const { jobId, userId } = await t.run(async (ctx) => {
      const userId = await ctx.db.insert("users", {
        githubId: "1",
        username: "u",
        createdAt: T0,
      });
      const repositoryId = await ctx.db.insert("repositories", {
        userId,
        githubRepoId: "9",
        name: "w",
        fullName: "acme/w",
        defaultBranch: "main",
      });
      const jobId = await ctx.db.insert("jobs", {
        userId,
        repositoryId,
        prompt: "p",
        status: "pending",
        callbackToken: "token",
        createdAt: T0 - 1,
        progress: "Initializing...",
      });
      return { jobId, userId };
    });
    const claimed = await t.mutation(api.queue.claimOne, { workerId: "A" });
    expect(claimed).toMatchObject({ id: jobId, userId, attempts: 0, attempt: 1 });
    expect(claimed?.language).toBeUndefined();
  });

  test("refuses a lease outside its bounds and an empty workerId", async () => {
    const t = newBackend();
    await enqueue(t);
    await expectRefusal(
      t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 0 }),
      "INVALID_ARGUMENT",
    );
    await expectRefusal(
      t.mutation(api.queue.claimOne, { workerId: "", leaseMs: 1_000 }),
      "INVALID_ARGUMENT",
    );
  });

  test("answers under the old jobs:claimOne name too", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    expect((await t.mutation(api.jobs.claimOne, { workerId: "A" }))?.id).toBe(jobId);
  });
});

describe("heartbeat", () => {
  test("reports Fondation's status and progress", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.queue.heartbeat, {
      jobId,
      workerId: "A",
      status: "analyzing",
      progress: "Étape 4/6: Génération du contenu des chapitres",
      currentStep: 4,
      totalSteps: 6,
    });
    expect(await job(t, jobId)).toMatchObject({
      status: "analyzing",
      progress: "Étape 4/6: Génération du contenu des chapitres",
      currentStep: 4,
      totalSteps: 6,
    });
  });

  test("refuses another worker and a missing job in Fondation's words", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await expect(t.mutation(api.queue.heartbeat, { jobId, workerId: "B" })).rejects.toThrow(
      NOT_OWNED,
    );
    await t.run(async (ctx) => await ctx.db.delete(jobId));
    await expect(t.mutation(api.queue.heartbeat, { jobId, workerId: "A" })).rejects.toThrow(
      NOT_OWNED,
    );
  });

  test("refuses steps that do not add up", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await expectRefusal(
      t.mutation(api.queue.heartbeat, { jobId, workerId: "A", currentStep: 7, totalSteps: 6 }),
      "INVALID_ARGUMENT",
    );
  });

  test("never writes over a cancel from the UI", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.jobs.requestCancel, { jobId });
    await expectRefusal(
      t.mutation(api.queue.heartbeat, { jobId, workerId: "A", status: "analyzing" }),
      "JOB_CANCELED",
    );
    expect(await job(t, jobId)).toMatchObject({ status: "canceled", lockedBy: "A" });
  });
});

describe("a stale worker's late calls", () => {
  /** Worker A claims, stalls past its lease, worker B takes the job over. */
  async function takenOver() {
    const t = newBackend();
    const jobId = await enqueue(t);
    const first = await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 5_000);
    const second = await t.mutation(api.queue.claimOne, { workerId: "B", leaseMs: 60_000 });
    expect(second?.attempt).toBe(2);
    return { t, jobId, token: first!.callbackToken };
  }

  test("heartbeat is refused", async () => {
    const { t, jobId } = await takenOver();
    await expectRefusal(
      t.mutation(api.queue.heartbeat, { jobId, workerId: "A", leaseMs: 1_000 }),
      "LEASE_LOST",
    );
  });

  test("updateStatus is refused and leaves the new holder's progress alone", async () => {
    const { t, jobId, token } = await takenOver();
    await t.mutation(api.queue.heartbeat, {
      jobId,
      status: "analyzing",
      workerId: "B",
      attempt: 2,
      progress: "Étape 4/6: Génération du contenu des chapitres",
      currentStep: 4,
      totalSteps: 6,
    });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, {
        jobId,
        status: "cloning",
        callbackToken: token,
        workerId: "A",
        attempt: 1,
        progress: "Clonage du dépôt...",
      }),
      "LEASE_LOST",
    );
    expect(await job(t, jobId)).toMatchObject({
      status: "analyzing",
      progress: "Étape 4/6: Génération du contenu des chapitres",
      currentStep: 4,
    });
  });

  test("complete is refused", async () => {
    const { t, jobId } = await takenOver();
    await expectRefusal(
      t.mutation(api.queue.complete, {
        jobId,
        workerId: "A",
        attempt: 1,
        result: { success: true },
      }),
      "LEASE_LOST",
    );
    expect((await job(t, jobId)).status).toBe("claimed");
  });

  test("retryOrFail is refused", async () => {
    const { t, jobId } = await takenOver();
    await expectRefusal(
      t.mutation(api.queue.retryOrFail, { jobId, workerId: "A", attempt: 1, error: "boom" }),
      "LEASE_LOST",
    );
    expect((await job(t, jobId)).status).toBe("claimed");
  });

  test("upsertFromJob is refused and the documents stay the new holder's", async () => {
    const { t, jobId } = await takenOver();
    const row = await job(t, jobId);
    const summary = { chaptersCount: 1, tutorialsCount: 0, generatedAt: T0 };
    const file = (content: string) => ({
      slug: "01_intro",
      title: "Intro",
      kind: "chapter" as const,
      chapterIndex: 0,
      content,
    });
    await t.mutation(api.docs.upsertFromJob, {
      jobId,
      repositoryId: row.repositoryId,
      files: [file("new")],
      summary,
      workerId: "B",
      attempt: 2,
    });
    await expectRefusal(
      t.mutation(api.docs.upsertFromJob, {
        jobId,
        repositoryId: row.repositoryId,
        files: [file("old")],
        summary,
        workerId: "A",
        attempt: 1,
      }),
      "LEASE_LOST",
    );
    const docs = await t.query(api.docs.listByJob, { jobId });
    expect(docs.map((d) => d.content)).toEqual(["new"]);
  });

  test("the same worker's previous claim is refused as stale", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 5_000);
    await t.mutation(api.queue.claimOne, { workerId: "A", leaseMs: 60_000 });
    await expectRefusal(
      t.mutation(api.queue.heartbeat, { jobId, workerId: "A", attempt: 1 }),
      "STALE_ATTEMPT",
    );
    expect(
      (await t.mutation(api.queue.heartbeat, { jobId, workerId: "A", attempt: 2 })).attempt,
    ).toBe(2);
  });
});

describe("retryOrFail", () => {
  test("backs off as Fondation does and is dead at the maxAttempts-th failure", async () => {
    const t = newBackend();
    const jobId = await enqueue(t, { maxAttempts: 3 });
    let now = T0;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const claimed = await t.mutation(api.queue.claimOne, { workerId: "A" });
      expect(claimed).toMatchObject({ attempt, attempts: attempt - 1 });
      const released = await t.mutation(api.queue.retryOrFail, {
        jobId,
        workerId: "A",
        attempt,
        error: `failure ${attempt}`,
      });
      if (released.status !== "retrying") throw new Error(`released as ${released.status}`);
      expect(released.attempts).toBe(attempt);
      const delay = released.nextRunAt - now;
      const base = RETRY_BASE_MS * 2 ** (attempt - 1);
      expect(delay).toBeGreaterThanOrEqual(base);
      expect(delay).toBeLessThanOrEqual(base + RETRY_JITTER_MS);
      expect(await job(t, jobId)).toMatchObject({
        status: "pending",
        lastError: `failure ${attempt}`,
      });
      // Not claimable before its backoff is over.
      setNow(released.nextRunAt - 1);
      expect(await t.mutation(api.queue.claimOne, { workerId: "A" })).toBeNull();
      now = released.nextRunAt;
      setNow(now);
    }
    const last = await t.mutation(api.queue.claimOne, { workerId: "A" });
    expect(last?.attempt).toBe(3);
    expect(
      await t.mutation(api.queue.retryOrFail, {
        jobId,
        workerId: "A",
        attempt: 3,
        error: "failure 3",
      }),
    ).toEqual({ status: "dead", attempts: 3 });
    expect(await job(t, jobId)).toMatchObject({ status: "dead", error: "failure 3", attempts: 3 });
    setNow(now + 3_600_000);
    expect(await t.mutation(api.queue.claimOne, { workerId: "A" })).toBeNull();
  });

  test("the backoff is capped at ten minutes", () => {
    expect(retryDelayMs(1, 0)).toBe(RETRY_BASE_MS);
    expect(retryDelayMs(2, 1)).toBe(2 * RETRY_BASE_MS + RETRY_JITTER_MS);
    expect(retryDelayMs(20, 1)).toBe(600_000);
  });

  test("a re-delivered call does not count twice", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    const args = { jobId, workerId: "A", attempt: 1, error: "x" };
    const once = await t.mutation(api.queue.retryOrFail, args);
    const twice = await t.mutation(api.queue.retryOrFail, args);
    expect(twice).toEqual(once);
    expect((await job(t, jobId)).attempts).toBe(1);
    // Without the claim number, as Fondation's worker calls it, it is refused as Fondation does.
    await expect(
      t.mutation(api.queue.retryOrFail, { jobId, workerId: "A", error: "x" }),
    ).rejects.toThrow(NOT_OWNED);
  });

  test("after a release the former holder's progress is refused", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.queue.retryOrFail, { jobId, workerId: "A", attempt: 1, error: "x" });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, {
        jobId,
        status: "running",
        callbackToken: claimed!.callbackToken,
        workerId: "A",
        attempt: 1,
      }),
      "LEASE_LOST",
    );
  });
});

describe("complete", () => {
  test("stores the result, releases the lease and is idempotent", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    setNow(T0 + 42);
    const result = {
      success: true,
      message: "Generated 12 documents",
      documents: 12,
      commit: "a".repeat(40),
    };
    const args = { jobId, workerId: "A", attempt: 1, result, docsCount: 12 };
    expect(await t.mutation(api.queue.complete, args)).toEqual({
      success: true,
      status: "completed",
    });
    expect(await t.mutation(api.queue.complete, args)).toEqual({
      success: true,
      status: "completed",
    });
    const row = await job(t, jobId);
    expect(row).toMatchObject({ status: "completed", result, docsCount: 12, completedAt: T0 + 42 });
    expect(row.leaseUntil).toBeUndefined();
    // Who ran it stays on the row.
    expect(row.lockedBy).toBe("A");
  });

  test("takes Fondation's string or null result, without a claim number", async () => {
    const t = newBackend();
    const a = await enqueue(t);
    const b = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.queue.complete, { jobId: a, workerId: "A", result: "ok", docsCount: 1 });
    await t.mutation(api.queue.complete, { jobId: b, workerId: "A", result: null });
    expect((await job(t, a)).result).toBe("ok");
    expect((await job(t, b)).result).toBeNull();
  });

  test("is refused once the UI canceled the job", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    await t.mutation(api.jobs.requestCancel, { jobId });
    await expectRefusal(
      t.mutation(api.queue.complete, { jobId, workerId: "A", docsCount: 3 }),
      "JOB_CANCELED",
    );
    expect((await job(t, jobId)).status).toBe("canceled");
  });
});

describe("pendingJobs", () => {
  test("lists pending jobs soonest first, without their tokens", async () => {
    const t = newBackend();
    const later = await enqueue(t, { runAt: T0 + 1_000 });
    const now = await enqueue(t);
    const claimed = await enqueue(t, { runAt: T0 - 1 });
    await t.mutation(api.queue.claimOne, { workerId: "A" });
    const pending = await t.query(api.queue.pendingJobs, {});
    expect(pending.map((p) => [p.id, p.runAt])).toEqual([
      [now, T0],
      [later, T0 + 1_000],
    ]);
    expect(pending.map((p) => p.id)).not.toContain(claimed);
    expect(JSON.stringify(pending)).not.toContain("callbackToken");
    expect(await t.query(api.queue.pendingJobs, { limit: 1 })).toHaveLength(1);
  });
});

import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api, internal } from "./_generated/api";
import { RETRY_BASE_MS } from "./lib/limits";
import { T0, enqueue, expectRefusal, job, newBackend, setNow } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

describe("claimOne", () => {
  test("hands out the oldest ready job once, then the next, then nothing", async () => {
    const t = newBackend();
    const first = await enqueue(t);
    setNow(T0 + 10);
    const second = await enqueue(t);

    const a = await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 60_000 });
    const b = await t.mutation(api.jobs.claimOne, { workerId: "B", leaseMs: 60_000 });
    const c = await t.mutation(api.jobs.claimOne, { workerId: "C", leaseMs: 60_000 });

    expect(a?._id).toBe(first);
    expect(b?._id).toBe(second);
    expect(c).toBeNull();
    expect(a).toMatchObject({
      id: first,
      status: "claimed",
      workerId: "A",
      attempts: 1,
      attempt: 1,
      maxAttempts: 3,
      leaseExpiresAt: T0 + 10 + 60_000,
      repositoryUrl: "https://example.test/acme/widgets.git",
      language: "fr",
      prompt: "Explain the code base",
    });
    expect(a?.callbackToken).toMatch(/^[0-9a-f]{64}$/);
    expect(a?.leaseId).not.toBe(b?.leaseId);
  });

  test("leaves a job alone until its runAt", async () => {
    const t = newBackend();
    await enqueue(t, { runAt: T0 + 5_000 });
    expect(await t.mutation(api.jobs.claimOne, { workerId: "A" })).toBeNull();
    setNow(T0 + 5_000);
    expect(await t.mutation(api.jobs.claimOne, { workerId: "A" })).not.toBeNull();
  });

  test("takes back a job whose lease expired, as a new attempt", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 1_000 });

    setNow(T0 + 1_000);
    expect(await t.mutation(api.jobs.claimOne, { workerId: "B", leaseMs: 1_000 })).toBeNull();

    setNow(T0 + 1_001);
    const retaken = await t.mutation(api.jobs.claimOne, { workerId: "B", leaseMs: 1_000 });
    expect(retaken).toMatchObject({ _id: jobId, workerId: "B", attempts: 2, status: "claimed" });
  });

  test("a heartbeat keeps the job from being taken back", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 900);
    const beat = await t.mutation(api.jobs.heartbeat, {
      jobId,
      workerId: "A",
      leaseMs: 1_000,
      attempt: 1,
    });
    expect(beat.leaseExpiresAt).toBe(T0 + 1_900);

    setNow(T0 + 1_500);
    expect(await t.mutation(api.jobs.claimOne, { workerId: "B" })).toBeNull();
    setNow(T0 + 1_901);
    expect(await t.mutation(api.jobs.claimOne, { workerId: "B" })).toMatchObject({ _id: jobId });
  });

  test("retires, rather than retries, a job whose last attempt lost its lease", async () => {
    const t = newBackend();
    const jobId = await enqueue(t, { maxAttempts: 1 });
    await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 2_000);
    expect(await t.mutation(api.jobs.claimOne, { workerId: "B" })).toBeNull();
    expect(await job(t, jobId)).toMatchObject({ status: "dead", attempts: 1 });
  });

  test("claims a job written by the original backend, without attempts or runAt", async () => {
    const t = newBackend();
    const jobId = await t.run(async (ctx) => {
      const repositoryId = await ctx.db.insert("repositories", { name: "w", fullName: "acme/w" });
      return await ctx.db.insert("jobs", {
        repositoryId,
        prompt: "p",
        status: "pending",
        callbackToken: "token",
        createdAt: T0 - 1,
      });
    });
    const claimed = await t.mutation(api.jobs.claimOne, { workerId: "A" });
    expect(claimed).toMatchObject({ _id: jobId, attempts: 1, attempt: 1, maxAttempts: 3 });
  });

  test("refuses a lease outside its bounds", async () => {
    const t = newBackend();
    await enqueue(t);
    await expectRefusal(
      t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 0 }),
      "INVALID_ARGUMENT",
    );
    await expectRefusal(
      t.mutation(api.jobs.claimOne, { workerId: "", leaseMs: 1_000 }),
      "INVALID_ARGUMENT",
    );
  });
});

describe("a stale worker's late calls", () => {
  /** Worker A claims, stalls past its lease, worker B takes the job over. */
  async function takenOver() {
    const t = newBackend();
    const jobId = await enqueue(t);
    const first = await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 5_000);
    const second = await t.mutation(api.jobs.claimOne, { workerId: "B", leaseMs: 60_000 });
    expect(second?.attempt).toBe(2);
    return { t, jobId, token: first!.callbackToken };
  }

  test("heartbeat is refused", async () => {
    const { t, jobId } = await takenOver();
    await expectRefusal(
      t.mutation(api.jobs.heartbeat, { jobId, workerId: "A", leaseMs: 1_000 }),
      "LEASE_LOST",
    );
  });

  test("updateStatus is refused and leaves the new holder's progress alone", async () => {
    const { t, jobId, token } = await takenOver();
    await t.mutation(api.jobs.updateStatus, {
      jobId,
      status: "analyzing",
      callbackToken: token,
      workerId: "B",
      attempt: 2,
      progress: "Étape 4/6: Génération des chapitres",
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
        progress: "Étape 1/6",
      }),
      "LEASE_LOST",
    );
    expect(await job(t, jobId)).toMatchObject({
      status: "analyzing",
      progress: "Étape 4/6: Génération des chapitres",
      currentStep: 4,
      totalSteps: 6,
    });
  });

  test("complete is refused", async () => {
    const { t, jobId } = await takenOver();
    await expectRefusal(
      t.mutation(api.jobs.complete, {
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
      t.mutation(api.jobs.retryOrFail, { jobId, workerId: "A", attempt: 1, error: "boom" }),
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

  test("the same worker's previous attempt is refused as stale", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 5_000);
    await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 60_000 });
    await expectRefusal(
      t.mutation(api.jobs.heartbeat, { jobId, workerId: "A", attempt: 1 }),
      "STALE_ATTEMPT",
    );
    expect(
      (await t.mutation(api.jobs.heartbeat, { jobId, workerId: "A", attempt: 2 })).attempt,
    ).toBe(2);
  });
});

describe("updateStatus", () => {
  test("needs the job's callback token", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A" });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, { jobId, status: "running", callbackToken: "nope" }),
      "INVALID_TOKEN",
    );
  });

  test("keeps the original worker's unchecked calls working, until the job is finished", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.jobs.claimOne, { workerId: "A" });
    const token = claimed!.callbackToken;
    await t.mutation(api.jobs.updateStatus, {
      jobId,
      status: "running",
      callbackToken: token,
      progress: "Étape 2/6",
    });
    expect((await job(t, jobId)).progress).toBe("Étape 2/6");
    await t.mutation(api.jobs.complete, {
      jobId,
      result: { success: true, message: "Generated 3 documents" },
    });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, { jobId, status: "running", callbackToken: token }),
      "JOB_FINISHED",
    );
    // Re-delivering the finishing status is harmless.
    expect(
      await t.mutation(api.jobs.updateStatus, { jobId, status: "completed", callbackToken: token }),
    ).toEqual({
      status: "completed",
    });
  });

  test("refuses steps that do not add up", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.jobs.claimOne, { workerId: "A" });
    await expectRefusal(
      t.mutation(api.jobs.updateStatus, {
        jobId,
        status: "analyzing",
        callbackToken: claimed!.callbackToken,
        currentStep: 7,
        totalSteps: 6,
      }),
      "INVALID_ARGUMENT",
    );
  });

  test("a canceled job tells its worker so", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.jobs.claimOne, { workerId: "A" });
    await t.mutation(internal.jobs.cancel, { jobId, reason: "user asked" });
    await expectRefusal(t.mutation(api.jobs.heartbeat, { jobId, workerId: "A" }), "JOB_CANCELED");
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

describe("retryOrFail", () => {
  test("backs off longer after each failure and gives up after maxAttempts", async () => {
    const t = newBackend();
    const jobId = await enqueue(t, { maxAttempts: 3 });
    let now = T0;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 2; attempt++) {
      const claimed = await t.mutation(api.jobs.claimOne, { workerId: "A" });
      expect(claimed?.attempt).toBe(attempt);
      const released = await t.mutation(api.jobs.retryOrFail, {
        jobId,
        workerId: "A",
        attempt,
        error: `failure ${attempt}`,
      });
      expect(released.status).toBe("pending");
      delays.push(released.runAt - now);
      // Not claimable before its backoff is over.
      setNow(released.runAt - 1);
      expect(await t.mutation(api.jobs.claimOne, { workerId: "A" })).toBeNull();
      now = released.runAt;
      setNow(now);
    }
    expect(delays).toEqual([RETRY_BASE_MS, 2 * RETRY_BASE_MS]);

    const last = await t.mutation(api.jobs.claimOne, { workerId: "A" });
    expect(last?.attempt).toBe(3);
    const final = await t.mutation(api.jobs.retryOrFail, {
      jobId,
      workerId: "A",
      attempt: 3,
      error: "failure 3",
    });
    expect(final.status).toBe("dead");
    expect(await job(t, jobId)).toMatchObject({ status: "dead", error: "failure 3", attempts: 3 });
    setNow(now + 3_600_000);
    expect(await t.mutation(api.jobs.claimOne, { workerId: "A" })).toBeNull();
  });

  test("a re-delivered call does not count twice", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A" });
    const once = await t.mutation(api.jobs.retryOrFail, {
      jobId,
      workerId: "A",
      attempt: 1,
      error: "x",
    });
    const twice = await t.mutation(api.jobs.retryOrFail, {
      jobId,
      workerId: "A",
      attempt: 1,
      error: "x",
    });
    expect(twice).toEqual(once);
    expect((await job(t, jobId)).attempts).toBe(1);
  });

  test("after a release the former holder's progress is refused", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const claimed = await t.mutation(api.jobs.claimOne, { workerId: "A" });
    await t.mutation(api.jobs.retryOrFail, { jobId, workerId: "A", attempt: 1, error: "x" });
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
  test("stores the result and is idempotent", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A" });
    setNow(T0 + 42);
    const result = {
      success: true,
      message: "Generated 12 documents",
      documents: 12,
      commit: "a".repeat(40),
    };
    await t.mutation(api.jobs.complete, {
      jobId,
      workerId: "A",
      attempt: 1,
      result,
      docsCount: 12,
    });
    await t.mutation(api.jobs.complete, {
      jobId,
      workerId: "A",
      attempt: 1,
      result,
      docsCount: 12,
    });
    expect(await job(t, jobId)).toMatchObject({
      status: "completed",
      result,
      docsCount: 12,
      completedAt: T0 + 42,
    });
    expect((await job(t, jobId)).leaseExpiresAt).toBeUndefined();
  });
});

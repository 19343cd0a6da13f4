import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";

import { api } from "./_generated/api";
import {
  MAX_LOG_ENTRIES_PER_CALL,
  MAX_LOG_ENTRIES_PER_JOB,
  MAX_LOG_MESSAGE_CHARS,
} from "./lib/limits";
import { T0, enqueue, expectRefusal, newBackend, setNow } from "./test.helpers";

beforeEach(() => setNow(T0));
afterEach(() => vi.useRealTimers());

describe("jobLogs", () => {
  test("keeps only the newest entries of a job", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    const other = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A" });
    await t.mutation(api.jobLogs.append, {
      jobId: other,
      entries: [{ level: "info", message: "other job" }],
    });

    const total = MAX_LOG_ENTRIES_PER_JOB + 30;
    for (let start = 0; start < total; start += MAX_LOG_ENTRIES_PER_CALL) {
      const entries = Array.from(
        { length: Math.min(MAX_LOG_ENTRIES_PER_CALL, total - start) },
        (_, i) => ({
          level: "info" as const,
          message: `line ${start + i}`,
          at: T0 + start + i,
        }),
      );
      await t.mutation(api.jobLogs.append, { jobId, workerId: "A", attempt: 1, entries });
    }
    const kept = await t.query(api.jobLogs.listByJob, { jobId });
    expect(kept).toHaveLength(MAX_LOG_ENTRIES_PER_JOB);
    expect(kept[0]?.message).toBe("line 30");
    expect(kept.at(-1)?.message).toBe(`line ${total - 1}`);
    // Another job's log is not trimmed by this one.
    expect(await t.query(api.jobLogs.listByJob, { jobId: other })).toHaveLength(1);
  });

  test("truncates long messages and refuses oversized calls", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobLogs.append, {
      jobId,
      entries: [{ level: "warn", message: "x".repeat(MAX_LOG_MESSAGE_CHARS * 2) }],
    });
    const [entry] = await t.query(api.jobLogs.listByJob, { jobId });
    expect(entry?.message).toHaveLength(MAX_LOG_MESSAGE_CHARS);
    expect(entry?.message.endsWith("…")).toBe(true);

    const entries = Array.from({ length: MAX_LOG_ENTRIES_PER_CALL + 1 }, () => ({
      level: "info" as const,
      message: "m",
    }));
    await expectRefusal(t.mutation(api.jobLogs.append, { jobId, entries }), "LIMIT_EXCEEDED");
  });

  test("a stale worker's lines are refused", async () => {
    const t = newBackend();
    const jobId = await enqueue(t);
    await t.mutation(api.jobs.claimOne, { workerId: "A", leaseMs: 1_000 });
    setNow(T0 + 2_000);
    await t.mutation(api.jobs.claimOne, { workerId: "B" });
    await expectRefusal(
      t.mutation(api.jobLogs.append, {
        jobId,
        workerId: "A",
        attempt: 1,
        entries: [{ level: "info", message: "late" }],
      }),
      "LEASE_LOST",
    );
    expect(await t.query(api.jobLogs.listByJob, { jobId })).toHaveLength(0);
  });
});

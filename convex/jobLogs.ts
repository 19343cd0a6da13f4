/**
 * A bounded log per job: what the worker wants a person to see next to the
 * job. Only the newest MAX_LOG_ENTRIES_PER_JOB entries are kept, so a chatty
 * or looping worker cannot grow the table without end.
 */
import { v } from "convex/values";

import { mutation, query } from "./_generated/server";
import { refuse } from "./lib/errors";
import { assertHolder, attemptOf, loadJob } from "./lib/lease";
import {
  MAX_LOG_ENTRIES_PER_CALL,
  MAX_LOG_ENTRIES_PER_JOB,
  MAX_LOG_MESSAGE_CHARS,
  truncate,
} from "./lib/limits";
import { logEntry } from "./lib/validators";

export const append = mutation({
  args: {
    jobId: v.id("jobs"),
    entries: v.array(logEntry),
    workerId: v.optional(v.string()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    // Late lines of the holder are still worth keeping once the job is
    // finished; lines of a worker that lost the job are not.
    assertHolder(job, { workerId: args.workerId, attempt: args.attempt });
    if (args.entries.length > MAX_LOG_ENTRIES_PER_CALL) {
      refuse(
        "LIMIT_EXCEEDED",
        `at most ${MAX_LOG_ENTRIES_PER_CALL} log entries per call, got ${args.entries.length}`,
        {
          limit: "logEntriesPerCall",
          max: MAX_LOG_ENTRIES_PER_CALL,
          actual: args.entries.length,
        },
      );
    }
    const now = Date.now();
    for (const entry of args.entries) {
      await ctx.db.insert("jobLogs", {
        jobId: job._id,
        attempt: args.attempt ?? attemptOf(job),
        level: entry.level,
        message: truncate(entry.message, MAX_LOG_MESSAGE_CHARS),
        at: entry.at ?? now,
        ...(entry.step !== undefined ? { step: entry.step } : {}),
      });
    }
    const kept = await ctx.db
      .query("jobLogs")
      .withIndex("by_job", (q) => q.eq("jobId", job._id))
      .collect();
    const excess = kept.length - MAX_LOG_ENTRIES_PER_JOB;
    for (const old of kept.slice(0, Math.max(excess, 0))) await ctx.db.delete(old._id);
    return { kept: Math.min(kept.length, MAX_LOG_ENTRIES_PER_JOB), dropped: Math.max(excess, 0) };
  },
});

/** The job's log, oldest first. */
export const listByJob = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) =>
    await ctx.db
      .query("jobLogs")
      .withIndex("by_job", (q) => q.eq("jobId", jobId))
      .collect(),
});

/**
 * Fondation's job queue as its worker uses it (DESIGN.md §6): claim the
 * oldest ready job with a lease, report status and progress through the
 * heartbeat, complete, or retry with backoff until `dead`.
 *
 * Faithful to the contract, gaps included: ownership is the `lockedBy`
 * worker id alone, a heartbeat writes its status over a job the UI canceled
 * (the UI leaves `lockedBy` in place), and expired leases are never taken
 * back by `claimOne`.
 */
import { v } from "convex/values";

import type { Doc, Id } from "./_generated/dataModel";
import { mutation, type MutationCtx } from "./_generated/server";
import { heartbeatStatus, jobResult } from "./schema";

export const DEFAULT_LEASE_MS = 300_000;
export const DEFAULT_MAX_ATTEMPTS = 5;
export const BACKOFF_BASE_MS = 5_000;
export const BACKOFF_JITTER_MS = 5_000;
export const BACKOFF_MAX_MS = 600_000;
export const NOT_OWNED = "Job not found or not owned by worker";

/** The delay before the next run, after the `attempts`-th failure. */
export function backoffMs(attempts: number, random: number = Math.random()): number {
  const exponential = BACKOFF_BASE_MS * 2 ** Math.max(attempts - 1, 0);
  return Math.min(Math.floor(exponential + random * BACKOFF_JITTER_MS), BACKOFF_MAX_MS);
}

async function ownedJob(
  ctx: MutationCtx,
  jobId: Id<"jobs">,
  workerId: string,
): Promise<Doc<"jobs">> {
  const job = await ctx.db.get(jobId);
  if (job === null || job.lockedBy !== workerId) throw new Error(NOT_OWNED);
  return job;
}

export const claimOne = mutation({
  args: { workerId: v.string(), leaseMs: v.optional(v.number()) },
  handler: async (ctx, { workerId, leaseMs }) => {
    const now = Date.now();
    const job = await ctx.db
      .query("jobs")
      .withIndex("by_status_runAt", (q) => q.eq("status", "pending").lte("runAt", now))
      .order("asc")
      .first();
    if (job === null) return null;
    await ctx.db.patch(job._id, {
      status: "claimed",
      lockedBy: workerId,
      leaseUntil: now + (leaseMs ?? DEFAULT_LEASE_MS),
      updatedAt: now,
    });
    return {
      id: job._id,
      repositoryId: job.repositoryId,
      userId: job.userId,
      prompt: job.prompt,
      callbackToken: job.callbackToken,
      attempts: job.attempts ?? 0,
    };
  },
});

export const heartbeat = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    status: v.optional(heartbeatStatus),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    leaseMs: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await ownedJob(ctx, args.jobId, args.workerId);
    const now = Date.now();
    await ctx.db.patch(job._id, {
      leaseUntil: now + (args.leaseMs ?? DEFAULT_LEASE_MS),
      updatedAt: now,
      ...(args.status !== undefined ? { status: args.status } : {}),
      ...(args.progress !== undefined ? { progress: args.progress } : {}),
      ...(args.currentStep !== undefined ? { currentStep: args.currentStep } : {}),
      ...(args.totalSteps !== undefined ? { totalSteps: args.totalSteps } : {}),
    });
    return { success: true };
  },
});

export const complete = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    result: v.optional(jobResult),
    docsCount: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await ownedJob(ctx, args.jobId, args.workerId);
    const now = Date.now();
    await ctx.db.patch(job._id, {
      status: "completed",
      completedAt: now,
      updatedAt: now,
      lockedBy: undefined,
      leaseUntil: undefined,
      ...(args.result !== undefined ? { result: args.result } : {}),
      ...(args.docsCount !== undefined ? { docsCount: args.docsCount } : {}),
    });
    return { success: true };
  },
});

export const retryOrFail = mutation({
  args: { jobId: v.id("jobs"), workerId: v.string(), error: v.string() },
  handler: async (ctx, args) => {
    const job = await ownedJob(ctx, args.jobId, args.workerId);
    const now = Date.now();
    const attempts = (job.attempts ?? 0) + 1;
    const maxAttempts = job.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const released = { lockedBy: undefined, leaseUntil: undefined, updatedAt: now };
    if (attempts >= maxAttempts) {
      await ctx.db.patch(job._id, {
        ...released,
        status: "dead",
        attempts,
        error: args.error,
        lastError: args.error,
        completedAt: now,
      });
      return { status: "dead" as const, attempts };
    }
    const nextRunAt = now + backoffMs(attempts);
    await ctx.db.patch(job._id, {
      ...released,
      status: "pending",
      attempts,
      lastError: args.error,
      runAt: nextRunAt,
    });
    return { status: "retrying" as const, attempts, nextRunAt };
  },
});

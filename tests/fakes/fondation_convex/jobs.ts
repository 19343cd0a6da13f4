/**
 * What Fondation's UI and worker call on a job besides the queue
 * (DESIGN.md §6): read it, cancel it (two ways, neither clears `lockedBy`),
 * regenerate its course as a new job, and its log. `getJobByRepository` and
 * `updateStatus` are not in §6 but are public functions of Fondation's
 * jobs module a worker may call: the latest job of a repository, and a
 * status write checked by the job's callback token alone.
 */
import { v } from "convex/values";

import type { Doc, Id } from "./_generated/dataModel";
import { mutation, query, type DatabaseReader } from "./_generated/server";
import { DEFAULT_MAX_ATTEMPTS } from "./queue";
import { jobResult, logLevel, type JobStatus } from "./schema";

/** Statuses the UI may cancel. */
const CANCELABLE: readonly JobStatus[] = [
  "pending",
  "claimed",
  "running",
  "cloning",
  "analyzing",
  "gathering",
];
export const CANCELED_BY_USER = "Job cancelled by user";

async function existingJob(db: DatabaseReader, jobId: Id<"jobs">): Promise<Doc<"jobs">> {
  const job = await db.get(jobId);
  if (job === null) throw new Error("Job not found");
  return job;
}

export const getJob = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => await ctx.db.get(jobId),
});

export const getById = query({
  args: { id: v.id("jobs") },
  handler: async (ctx, { id }) => await ctx.db.get(id),
});

/** The repository's newest job. */
export const getJobByRepository = query({
  args: { repositoryId: v.id("repositories") },
  handler: async (ctx, { repositoryId }) =>
    await ctx.db
      .query("jobs")
      .withIndex("by_repository", (q) => q.eq("repositoryId", repositoryId))
      .order("desc")
      .first(),
});

/** Any status the token's holder likes, over any other: no lease, no order. */
export const updateStatus = mutation({
  args: {
    jobId: v.id("jobs"),
    status: v.union(
      v.literal("pending"),
      v.literal("cloning"),
      v.literal("analyzing"),
      v.literal("gathering"),
      v.literal("running"),
      v.literal("completed"),
      v.literal("failed"),
      v.literal("canceled"),
    ),
    callbackToken: v.string(),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    result: v.optional(jobResult),
    error: v.optional(v.string()),
  },
  handler: async (ctx, { jobId, callbackToken, ...fields }) => {
    const job = await existingJob(ctx.db, jobId);
    if (job.callbackToken !== callbackToken) throw new Error("Invalid callback token");
    await ctx.db.patch(job._id, { ...fields, updatedAt: Date.now() });
    return { success: true };
  },
});

export const requestCancel = mutation({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => {
    const job = await existingJob(ctx.db, jobId);
    if (!CANCELABLE.includes(job.status)) {
      throw new Error("Job is not active and cannot be cancelled");
    }
    const now = Date.now();
    await ctx.db.patch(job._id, {
      status: "canceled",
      cancelRequested: true,
      error: CANCELED_BY_USER,
      completedAt: now,
      updatedAt: now,
    });
    return { success: true };
  },
});

export const cancelJob = mutation({
  args: { jobId: v.id("jobs"), userId: v.id("users") },
  handler: async (ctx, { jobId, userId }) => {
    const job = await existingJob(ctx.db, jobId);
    if (job.userId !== userId) {
      throw new Error("Unauthorized - you can only cancel your own jobs");
    }
    if (!CANCELABLE.includes(job.status)) {
      throw new Error("Cannot cancel job - it's not currently running");
    }
    await ctx.db.patch(job._id, {
      status: "failed",
      error: CANCELED_BY_USER,
      progress: "Job was cancelled by user request",
      updatedAt: Date.now(),
    });
    return { success: true, jobId };
  },
});

/** A new pending job for the same repository; the old one is left as it is. */
export const regenerate = mutation({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => {
    const job = await existingJob(ctx.db, jobId);
    const now = Date.now();
    const newJobId = await ctx.db.insert("jobs", {
      userId: job.userId,
      repositoryId: job.repositoryId,
      status: "pending",
      callbackToken: crypto.randomUUID(),
      createdAt: now,
      updatedAt: now,
      attempts: 0,
      maxAttempts: job.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      runAt: now,
      ...(job.prompt !== undefined ? { prompt: job.prompt } : {}),
    });
    return { success: true, jobId: newJobId };
  },
});

export const appendLog = mutation({
  args: { jobId: v.id("jobs"), level: logLevel, msg: v.string() },
  handler: async (ctx, { jobId, level, msg }) => {
    const job = await existingJob(ctx.db, jobId);
    const last = await ctx.db
      .query("jobLogs")
      .withIndex("by_job_seq", (q) => q.eq("jobId", job._id))
      .order("desc")
      .first();
    const seq = (last?.seq ?? 0) + 1;
    await ctx.db.insert("jobLogs", { jobId: job._id, ts: Date.now(), seq, level, msg });
    return { success: true, seq };
  },
});

/** The job's log in the order it was written. */
export const getLogs = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) =>
    await ctx.db
      .query("jobLogs")
      .withIndex("by_job_seq", (q) => q.eq("jobId", jobId))
      .order("asc")
      .collect(),
});

/**
 * A job, under Fondation's names and arguments (DESIGN.md §6) besides the
 * queue: read it, cancel it (the UI's two ways), regenerate its course as a
 * new job, its bounded log, and the callback-token status write.
 *
 * What Fondation lacks: a cancel stops the job for good (its worker's later
 * calls are refused rather than written over it), status writes are checked
 * against the lease when the caller identifies itself, and the log keeps only
 * the newest MAX_LOG_ENTRIES_PER_JOB lines.
 */
import { v } from "convex/values";

import type { Doc, Id } from "./_generated/dataModel";
import {
  internalMutation,
  internalQuery,
  mutation,
  query,
  type MutationCtx,
} from "./_generated/server";
import { refuse } from "./lib/errors";
import {
  assertHolder,
  assertRunningHolder,
  attemptOf,
  identifies,
  loadJob,
  randomToken,
  tokensEqual,
} from "./lib/lease";
import {
  DEFAULT_MAX_ATTEMPTS,
  MAX_ERROR_CHARS,
  MAX_LOG_ENTRIES_PER_JOB,
  MAX_LOG_MESSAGE_CHARS,
  MAX_MAX_ATTEMPTS,
  truncate,
} from "./lib/limits";
import { isActive, isTerminal, jobResult, jobStatus, logLevel } from "./lib/validators";
import { progressPatch } from "./queue";

/**
 * The queue's functions under the names the operator's bridge used before
 * it spoke `queue:*`. Remove once no deployed bridge calls `jobs:claimOne`.
 */
export { claimOne, complete, heartbeat, retryOrFail } from "./queue";

/** Fondation's words for a job canceled from the UI. */
export const CANCELED_BY_USER = "Job cancelled by user";

export const getJob = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => await ctx.db.get(jobId),
});

export const getById = query({
  args: { id: v.id("jobs") },
  handler: async (ctx, { id }) => await ctx.db.get(id),
});

/** The repository's newest job: a job that is not it was superseded. */
export const getJobByRepository = query({
  args: { repositoryId: v.id("repositories") },
  handler: async (ctx, { repositoryId }) =>
    await ctx.db
      .query("jobs")
      .withIndex("by_repository", (q) => q.eq("repositoryId", repositoryId))
      .order("desc")
      .first(),
});

/**
 * Ends a job the UI cancels, in `status`; `lockedBy` stays, so its worker's
 * next call is refused as canceled or finished rather than as someone
 * else's. Only a pending or running job can be canceled.
 */
async function cancel(
  ctx: MutationCtx,
  job: Doc<"jobs">,
  status: "canceled" | "failed",
  notRunning: string,
  fields: Partial<Doc<"jobs">>,
): Promise<void> {
  if (job.status !== "pending" && !isActive(job.status)) {
    refuse("JOB_FINISHED", notRunning, { jobId: job._id, status: job.status });
  }
  const now = Date.now();
  await ctx.db.patch(job._id, {
    ...fields,
    status,
    error: CANCELED_BY_USER,
    canceledAt: now,
    completedAt: now,
    updatedAt: now,
    leaseUntil: undefined,
  });
}

/** The UI's cancel: `canceled` and `cancelRequested`. */
export const requestCancel = mutation({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => {
    const job = await loadJob(ctx.db, jobId);
    await cancel(ctx, job, "canceled", "Job is not active and cannot be cancelled", {
      cancelRequested: true,
    });
    return { success: true };
  },
});

/** The UI's other cancel, by the job's owner: `failed`. */
export const cancelJob = mutation({
  args: { jobId: v.id("jobs"), userId: v.id("users") },
  handler: async (ctx, { jobId, userId }) => {
    const job = await loadJob(ctx.db, jobId);
    if (job.userId !== userId) {
      refuse("INVALID_ARGUMENT", "Unauthorized - you can only cancel your own jobs", {
        field: "userId",
      });
    }
    await cancel(ctx, job, "failed", "Cannot cancel job - it's not currently running", {
      progress: "Job was cancelled by user request",
    });
    return { success: true, jobId };
  },
});

/**
 * A new pending job for the same repository. The old one is superseded:
 * docs:upsertFromJob and docs:commitRun refuse its course from now on.
 */
export const regenerate = mutation({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => {
    const job = await loadJob(ctx.db, jobId);
    const newJobId = await insertJob(ctx, {
      repositoryId: job.repositoryId,
      userId: job.userId,
      prompt: job.prompt,
      repositoryUrl: job.repositoryUrl,
      branch: job.branch,
      language: job.language,
      maxAttempts: job.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    });
    await ctx.db.patch(job._id, { supersededBy: newJobId, updatedAt: Date.now() });
    return { success: true, jobId: newJobId };
  },
});

/** A status write checked by the job's callback token (and the lease, when the caller says who it is). */
export const updateStatus = mutation({
  args: {
    jobId: v.id("jobs"),
    status: jobStatus,
    callbackToken: v.string(),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    result: v.optional(jobResult),
    error: v.optional(v.string()),
    workerId: v.optional(v.string()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    if (!tokensEqual(args.callbackToken, job.callbackToken)) {
      refuse("INVALID_TOKEN", `wrong callback token for job ${job._id}`, { jobId: job._id });
    }
    const caller = { workerId: args.workerId, attempt: args.attempt };
    assertHolder(job, caller);
    if (isTerminal(job.status)) {
      // Re-delivery of the call that finished the job is harmless.
      if (args.status === job.status) return { success: true, status: job.status };
      if (job.status === "canceled") {
        refuse("JOB_CANCELED", `job ${job._id} was canceled`, {
          jobId: job._id,
          status: job.status,
        });
      }
      refuse("JOB_FINISHED", `job ${job._id} is already ${job.status}`, {
        jobId: job._id,
        status: job.status,
      });
    }
    if (identifies(caller)) assertRunningHolder(job, caller);
    const now = Date.now();
    const patch: Partial<Doc<"jobs">> = {
      status: args.status,
      updatedAt: now,
      ...progressPatch(job, args),
    };
    if (args.result !== undefined) patch.result = args.result;
    if (args.error !== undefined) patch.error = truncate(args.error, MAX_ERROR_CHARS);
    if (isTerminal(args.status)) {
      patch.completedAt = now;
      patch.leaseUntil = undefined;
      if (args.status === "canceled") patch.canceledAt = now;
    } else if (args.status === "pending") {
      // Handing the job back: claimable at once, by anyone.
      patch.leaseUntil = undefined;
      patch.lockedBy = undefined;
      patch.runAt = now;
    }
    await ctx.db.patch(job._id, patch);
    return { success: true, status: args.status };
  },
});

export const appendLog = mutation({
  args: {
    jobId: v.id("jobs"),
    level: logLevel,
    msg: v.string(),
    step: v.optional(v.string()),
    workerId: v.optional(v.string()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    // Late lines of the holder are still worth keeping once the job is
    // finished; lines of a worker that lost the job are not.
    assertHolder(job, { workerId: args.workerId, attempt: args.attempt });
    const kept = await ctx.db
      .query("jobLogs")
      .withIndex("by_job_seq", (q) => q.eq("jobId", job._id))
      .collect();
    const seq = (kept.at(-1)?.seq ?? 0) + 1;
    await ctx.db.insert("jobLogs", {
      jobId: job._id,
      ts: Date.now(),
      seq,
      level: args.level,
      msg: truncate(args.msg, MAX_LOG_MESSAGE_CHARS),
      attempt: args.attempt ?? attemptOf(job),
      ...(args.step !== undefined ? { step: args.step } : {}),
    });
    const excess = kept.length + 1 - MAX_LOG_ENTRIES_PER_JOB;
    for (const old of kept.slice(0, Math.max(excess, 0))) await ctx.db.delete(old._id);
    return { success: true, seq, dropped: Math.max(excess, 0) };
  },
});

/** The job's log, oldest first. */
export const getLogs = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) =>
    await ctx.db
      .query("jobLogs")
      .withIndex("by_job_seq", (q) => q.eq("jobId", jobId))
      .collect(),
});

type NewJob = {
  repositoryId: Id<"repositories">;
  userId?: Id<"users"> | undefined;
  prompt?: string | undefined;
  repositoryUrl?: string | undefined;
  branch?: string | undefined;
  language?: string | undefined;
  maxAttempts: number;
  runAt?: number | undefined;
  callbackToken?: string | undefined;
};

async function insertJob(ctx: MutationCtx, job: NewJob): Promise<Id<"jobs">> {
  const now = Date.now();
  return await ctx.db.insert("jobs", {
    repositoryId: job.repositoryId,
    status: "pending",
    callbackToken: job.callbackToken ?? randomToken(),
    attempts: 0,
    maxAttempts: job.maxAttempts,
    runAt: job.runAt ?? now,
    createdAt: now,
    updatedAt: now,
    ...(job.userId !== undefined ? { userId: job.userId } : {}),
    ...(job.prompt !== undefined ? { prompt: job.prompt } : {}),
    ...(job.repositoryUrl !== undefined ? { repositoryUrl: job.repositoryUrl } : {}),
    ...(job.branch !== undefined ? { branch: job.branch } : {}),
    ...(job.language !== undefined ? { language: job.language } : {}),
  });
}

/** Inserts a pending job: used by tests, benchmarks and the operator's tooling. */
export const enqueue = internalMutation({
  args: {
    repositoryId: v.optional(v.id("repositories")),
    repositoryUrl: v.optional(v.string()),
    branch: v.optional(v.string()),
    prompt: v.optional(v.string()),
    language: v.optional(v.string()),
    userId: v.optional(v.id("users")),
    maxAttempts: v.optional(v.number()),
    runAt: v.optional(v.number()),
    callbackToken: v.optional(v.string()),
  },
  handler: async (ctx, args): Promise<Id<"jobs">> => {
    const maxAttempts = args.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_MAX_ATTEMPTS) {
      refuse(
        "INVALID_ARGUMENT",
        `maxAttempts must be an integer between 1 and ${MAX_MAX_ATTEMPTS}`,
        { field: "maxAttempts" },
      );
    }
    const repositoryId =
      args.repositoryId ?? (await repositoryFor(ctx, args.repositoryUrl, args.userId));
    return await insertJob(ctx, { ...args, repositoryId, maxAttempts });
  },
});

/** The repositories row of a URL, created on first use. */
async function repositoryFor(
  ctx: MutationCtx,
  url: string | undefined,
  userId: Id<"users"> | undefined,
): Promise<Id<"repositories">> {
  if (url === undefined || url.length === 0) {
    refuse("INVALID_ARGUMENT", "give repositoryId or repositoryUrl", { field: "repositoryUrl" });
  }
  const existing = await ctx.db
    .query("repositories")
    .withIndex("by_url", (q) => q.eq("url", url))
    .first();
  if (existing !== null) return existing._id;
  const fullName = url.replace(/\.git$/, "").replace(/^.*[:/]([^/:]+\/[^/:]+)$/, "$1");
  return await ctx.db.insert("repositories", {
    name: fullName.split("/").pop() ?? fullName,
    fullName,
    url,
    ...(userId !== undefined ? { userId } : {}),
  });
}

/** The whole job row: for admin callers and tests. */
export const get = internalQuery({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => await ctx.db.get(jobId),
});

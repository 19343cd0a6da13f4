/**
 * The job queue: claim with a lease, keep the lease with heartbeats, report
 * progress, finish, retry with backoff.
 *
 * Names and argument shapes of the public functions are the contract of the
 * original Fondation worker; the optional `workerId`/`attempt` arguments are
 * ours and turn on the lease checks of lib/lease.ts.
 */
import { v } from "convex/values";

import type { Doc, Id } from "./_generated/dataModel";
import { internalMutation, internalQuery, mutation, type MutationCtx } from "./_generated/server";
import { refuse } from "./lib/errors";
import {
  assertHolder,
  assertRunningHolder,
  attemptOf,
  checkLeaseMs,
  identifies,
  loadJob,
  maxAttemptsOf,
  randomToken,
  readySince,
  tokensEqual,
} from "./lib/lease";
import {
  DEFAULT_LEASE_MS,
  DEFAULT_MAX_ATTEMPTS,
  MAX_ERROR_CHARS,
  MAX_MAX_ATTEMPTS,
  MAX_PROGRESS_CHARS,
  RETRY_BASE_MS,
  RETRY_MAX_MS,
  truncate,
} from "./lib/limits";
import { ACTIVE_STATUSES, activeStatus, isTerminal, jobResult, jobStatus } from "./lib/validators";

/** How many jobs without attempts left one claim may retire as `dead` before giving up. */
const MAX_RETIREMENTS_PER_CLAIM = 10;

/** Delay before attempt `attempt + 1` may start, after attempt `attempt` failed. */
export function retryDelayMs(attempt: number): number {
  return Math.min(RETRY_BASE_MS * 2 ** Math.max(attempt - 1, 0), RETRY_MAX_MS);
}

type Candidate = { job: Doc<"jobs">; readySince: number };

/**
 * The job that has waited longest: a pending job whose runAt has passed, or
 * an active one whose lease expired (its worker is presumed gone).
 */
async function oldestClaimable(ctx: MutationCtx, now: number): Promise<Candidate | null> {
  const candidates: Candidate[] = [];
  const pending = await ctx.db
    .query("jobs")
    .withIndex("by_status_runAt", (q) => q.eq("status", "pending").lte("runAt", now))
    .first();
  if (pending !== null) candidates.push({ job: pending, readySince: readySince(pending) });
  for (const status of ACTIVE_STATUSES) {
    const expired = await ctx.db
      .query("jobs")
      // The lower bound skips documents without a lease, which sort first.
      .withIndex("by_status_leaseExpiresAt", (q) =>
        q.eq("status", status).gte("leaseExpiresAt", 0).lt("leaseExpiresAt", now),
      )
      .first();
    if (expired !== null) {
      candidates.push({ job: expired, readySince: expired.leaseExpiresAt ?? 0 });
    }
  }
  candidates.sort(
    (a, b) => a.readySince - b.readySince || a.job._creationTime - b.job._creationTime,
  );
  return candidates[0] ?? null;
}

export const claimOne = mutation({
  args: { workerId: v.string(), leaseMs: v.optional(v.number()) },
  handler: async (ctx, { workerId, leaseMs }) => {
    if (workerId.length === 0) refuse("INVALID_ARGUMENT", "workerId must not be empty");
    const lease = checkLeaseMs(leaseMs ?? DEFAULT_LEASE_MS);
    const now = Date.now();
    for (let retired = 0; retired <= MAX_RETIREMENTS_PER_CLAIM; retired++) {
      const candidate = await oldestClaimable(ctx, now);
      if (candidate === null) return null;
      const { job } = candidate;
      const attempts = attemptOf(job);
      const maxAttempts = maxAttemptsOf(job);
      if (attempts >= maxAttempts) {
        // Its last allowed attempt died with its worker: retire it rather
        // than start an attempt beyond maxAttempts.
        await ctx.db.patch(job._id, {
          status: "dead",
          error: `no attempt left (${attempts}/${maxAttempts}) after the lease expired`,
          leaseExpiresAt: undefined,
          completedAt: now,
          updatedAt: now,
        });
        continue;
      }
      const attempt = attempts + 1;
      await ctx.db.patch(job._id, {
        status: "claimed",
        maxAttempts,
        workerId,
        leaseId: randomToken(),
        leaseExpiresAt: now + lease,
        attempts: attempt,
        claimedAt: now,
        updatedAt: now,
        progress: undefined,
        currentStep: undefined,
        totalSteps: undefined,
      });
      const claimed = await loadJob(ctx.db, job._id);
      // `id` and `attempt` spare callers a lookup: the original worker read `id`.
      return { ...claimed, id: claimed._id, attempt };
    }
    return null;
  },
});

export const heartbeat = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    leaseMs: v.optional(v.number()),
    attempt: v.optional(v.number()),
    // The original worker also reported progress through its heartbeat.
    status: v.optional(activeStatus),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    // A lease that expired but was not claimed by anyone is still the
    // holder's: refusing it would only waste the work done so far.
    assertRunningHolder(job, { workerId: args.workerId, attempt: args.attempt });
    const now = Date.now();
    const leaseExpiresAt = now + checkLeaseMs(args.leaseMs ?? DEFAULT_LEASE_MS);
    checkSteps(args.currentStep, args.totalSteps ?? job.totalSteps);
    await ctx.db.patch(job._id, {
      leaseExpiresAt,
      updatedAt: now,
      ...(args.status !== undefined ? { status: args.status } : {}),
      ...(args.progress !== undefined
        ? { progress: truncate(args.progress, MAX_PROGRESS_CHARS) }
        : {}),
      ...(args.currentStep !== undefined ? { currentStep: args.currentStep } : {}),
      ...(args.totalSteps !== undefined ? { totalSteps: args.totalSteps } : {}),
    });
    return { leaseExpiresAt, status: args.status ?? job.status, attempt: attemptOf(job) };
  },
});

function checkSteps(currentStep: number | undefined, totalSteps: number | undefined): void {
  if (
    totalSteps !== undefined &&
    (!Number.isInteger(totalSteps) || totalSteps < 1 || totalSteps > 100)
  ) {
    refuse("INVALID_ARGUMENT", "totalSteps must be an integer between 1 and 100", {
      field: "totalSteps",
    });
  }
  if (currentStep !== undefined) {
    if (!Number.isInteger(currentStep) || currentStep < 0) {
      refuse("INVALID_ARGUMENT", "currentStep must be a non-negative integer", {
        field: "currentStep",
      });
    }
    if (totalSteps !== undefined && currentStep > totalSteps) {
      refuse("INVALID_ARGUMENT", `currentStep ${currentStep} is past totalSteps ${totalSteps}`, {
        field: "currentStep",
      });
    }
  }
}

export const updateStatus = mutation({
  args: {
    jobId: v.id("jobs"),
    status: jobStatus,
    callbackToken: v.string(),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
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
      if (args.status === job.status) return { status: job.status };
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
    checkSteps(args.currentStep, args.totalSteps ?? job.totalSteps);
    const now = Date.now();
    const patch: Partial<Doc<"jobs">> = { status: args.status, updatedAt: now };
    if (args.progress !== undefined) patch.progress = truncate(args.progress, MAX_PROGRESS_CHARS);
    if (args.currentStep !== undefined) patch.currentStep = args.currentStep;
    if (args.totalSteps !== undefined) patch.totalSteps = args.totalSteps;
    if (args.error !== undefined) patch.error = truncate(args.error, MAX_ERROR_CHARS);
    if (isTerminal(args.status)) {
      patch.completedAt = now;
      patch.leaseExpiresAt = undefined;
      if (args.status === "canceled") patch.canceledAt = now;
    } else if (args.status === "pending") {
      // Handing the job back: claimable at once, by anyone.
      patch.leaseExpiresAt = undefined;
      patch.runAt = now;
    }
    await ctx.db.patch(job._id, patch);
    return { status: args.status };
  },
});

export const complete = mutation({
  args: {
    jobId: v.id("jobs"),
    result: jobResult,
    workerId: v.optional(v.string()),
    attempt: v.optional(v.number()),
    docsCount: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    const caller = { workerId: args.workerId, attempt: args.attempt };
    assertHolder(job, caller);
    if (job.status === "completed") return { status: job.status };
    if (identifies(caller) || isTerminal(job.status)) assertRunningHolder(job, caller);
    const now = Date.now();
    await ctx.db.patch(job._id, {
      status: "completed",
      result: args.result,
      completedAt: now,
      updatedAt: now,
      leaseExpiresAt: undefined,
      error: undefined,
      ...(args.docsCount !== undefined ? { docsCount: args.docsCount } : {}),
    });
    return { status: "completed" as const };
  },
});

export const retryOrFail = mutation({
  args: {
    jobId: v.id("jobs"),
    error: v.string(),
    workerId: v.optional(v.string()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    const caller = { workerId: args.workerId, attempt: args.attempt };
    assertHolder(job, caller);
    // Re-delivery of a call that already released this attempt.
    if (
      identifies(caller) &&
      (job.status === "pending" || job.status === "dead") &&
      job.leaseExpiresAt === undefined
    ) {
      return { status: job.status, attempts: attemptOf(job), runAt: readySince(job) };
    }
    assertRunningHolder(job, caller);
    const now = Date.now();
    const error = truncate(args.error, MAX_ERROR_CHARS);
    const attempts = attemptOf(job);
    if (attempts >= maxAttemptsOf(job)) {
      await ctx.db.patch(job._id, {
        status: "dead",
        error,
        completedAt: now,
        updatedAt: now,
        leaseExpiresAt: undefined,
      });
      return { status: "dead" as const, attempts, runAt: readySince(job) };
    }
    const runAt = now + retryDelayMs(attempts);
    await ctx.db.patch(job._id, {
      status: "pending",
      error,
      runAt,
      updatedAt: now,
      leaseExpiresAt: undefined,
    });
    return { status: "pending" as const, attempts, runAt };
  },
});

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
        {
          field: "maxAttempts",
        },
      );
    }
    const repositoryId =
      args.repositoryId ?? (await repositoryFor(ctx, args.repositoryUrl, args.userId));
    const now = Date.now();
    return await ctx.db.insert("jobs", {
      repositoryId,
      prompt: args.prompt ?? "",
      status: "pending",
      callbackToken: args.callbackToken ?? randomToken(),
      attempts: 0,
      maxAttempts,
      runAt: args.runAt ?? now,
      createdAt: now,
      updatedAt: now,
      ...(args.repositoryUrl !== undefined ? { repositoryUrl: args.repositoryUrl } : {}),
      ...(args.branch !== undefined ? { branch: args.branch } : {}),
      ...(args.language !== undefined ? { language: args.language } : {}),
      ...(args.userId !== undefined ? { userId: args.userId } : {}),
    });
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

/** Cancels a job that has not finished; its worker learns it at its next call. */
export const cancel = internalMutation({
  args: { jobId: v.id("jobs"), reason: v.optional(v.string()) },
  handler: async (ctx, { jobId, reason }) => {
    const job = await loadJob(ctx.db, jobId);
    if (isTerminal(job.status)) return { status: job.status };
    const now = Date.now();
    await ctx.db.patch(job._id, {
      status: "canceled",
      canceledAt: now,
      completedAt: now,
      updatedAt: now,
      leaseExpiresAt: undefined,
      ...(reason !== undefined ? { error: truncate(reason, MAX_ERROR_CHARS) } : {}),
    });
    return { status: "canceled" as const };
  },
});

/** The whole job row, callback token included: for admin callers and tests. */
export const get = internalQuery({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => await ctx.db.get(jobId),
});

/**
 * The job queue, under Fondation's names and arguments (DESIGN.md §6):
 * claim the oldest ready job with a lease, report status and progress
 * through the heartbeat, complete, or retry with Fondation's backoff until
 * `dead`. Fondation's worker runs against these unchanged.
 *
 * What Fondation lacks: every call after the claim is checked against the
 * lease holder (`lockedBy`) and, when the caller gives it, the claim number
 * (`attempt`), and refused once the UI canceled the job; a job whose lease
 * expired is taken back by the next claim (the lost lease counts as a failed
 * attempt); re-delivered `complete`/`retryOrFail` calls of the same claim are
 * answered, not refused; `pendingJobs` lets a client subscribe to the queue
 * instead of polling `claimOne`.
 */
import { v } from "convex/values";

import type { Doc } from "./_generated/dataModel";
import { mutation, query, type MutationCtx } from "./_generated/server";
import { refuse } from "./lib/errors";
import {
  assertRunningHolder,
  attemptOf,
  checkLeaseMs,
  failuresOf,
  loadQueuedJob,
  maxAttemptsOf,
  readySince,
} from "./lib/lease";
import {
  DEFAULT_LEASE_MS,
  MAX_ERROR_CHARS,
  MAX_PENDING_LISTED,
  MAX_PROGRESS_CHARS,
  RETRY_BASE_MS,
  RETRY_JITTER_MS,
  RETRY_MAX_MS,
  truncate,
} from "./lib/limits";
import { ACTIVE_STATUSES, heartbeatStatus, jobResult } from "./lib/validators";

/** How many jobs without attempts left one claim may retire as `dead` before giving up. */
const MAX_RETIREMENTS_PER_CLAIM = 10;
const LEASE_EXPIRED = "Lease expired";

/** Delay before the next run after the `failures`-th failure: Fondation's backoff. */
export function retryDelayMs(failures: number, random: number = Math.random()): number {
  const exponential = RETRY_BASE_MS * 2 ** Math.max(failures - 1, 0);
  return Math.min(Math.floor(exponential + random * RETRY_JITTER_MS), RETRY_MAX_MS);
}

type Candidate = { job: Doc<"jobs">; readySince: number; expired: boolean };

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
  if (pending !== null) {
    candidates.push({ job: pending, readySince: readySince(pending), expired: false });
  }
  for (const status of ACTIVE_STATUSES) {
    const expired = await ctx.db
      .query("jobs")
      // The lower bound skips jobs without a lease, which sort first.
      .withIndex("by_status_leaseUntil", (q) =>
        q.eq("status", status).gte("leaseUntil", 0).lt("leaseUntil", now),
      )
      .first();
    if (expired !== null) {
      candidates.push({ job: expired, readySince: expired.leaseUntil ?? 0, expired: true });
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
    if (workerId.length === 0) {
      refuse("INVALID_ARGUMENT", "workerId must not be empty", { field: "workerId" });
    }
    const lease = checkLeaseMs(leaseMs ?? DEFAULT_LEASE_MS);
    const now = Date.now();
    for (let retired = 0; retired <= MAX_RETIREMENTS_PER_CLAIM; retired++) {
      const candidate = await oldestClaimable(ctx, now);
      if (candidate === null) return null;
      const { job, expired } = candidate;
      const maxAttempts = maxAttemptsOf(job);
      // A lease that expired is an attempt that failed without saying so.
      const failures = failuresOf(job) + (expired ? 1 : 0);
      if (expired && failures >= maxAttempts) {
        await ctx.db.patch(job._id, {
          status: "dead",
          attempts: failures,
          error: `${LEASE_EXPIRED}: no attempt left (${failures}/${maxAttempts})`,
          lastError: LEASE_EXPIRED,
          lockedBy: undefined,
          leaseUntil: undefined,
          completedAt: now,
          updatedAt: now,
        });
        continue;
      }
      const attempt = attemptOf(job) + 1;
      const leaseUntil = now + lease;
      await ctx.db.patch(job._id, {
        status: "claimed",
        lockedBy: workerId,
        leaseUntil,
        attempt,
        attempts: failures,
        maxAttempts,
        claimedAt: now,
        updatedAt: now,
        ...(expired ? { lastError: LEASE_EXPIRED } : {}),
      });
      return {
        // Fondation's answer...
        id: job._id,
        repositoryId: job.repositoryId,
        userId: job.userId,
        prompt: job.prompt,
        callbackToken: job.callbackToken,
        attempts: failures,
        // ...and what our worker needs besides.
        attempt,
        leaseUntil,
        maxAttempts,
        repositoryUrl: job.repositoryUrl,
        branch: job.branch,
        language: job.language,
      };
    }
    return null;
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

/** The UI's progress fields, checked; shared by heartbeat and updateStatus. */
export function progressPatch(
  job: Doc<"jobs">,
  args: { progress?: string; currentStep?: number; totalSteps?: number },
): Partial<Doc<"jobs">> {
  checkSteps(args.currentStep, args.totalSteps ?? job.totalSteps);
  return {
    ...(args.progress !== undefined
      ? { progress: truncate(args.progress, MAX_PROGRESS_CHARS) }
      : {}),
    ...(args.currentStep !== undefined ? { currentStep: args.currentStep } : {}),
    ...(args.totalSteps !== undefined ? { totalSteps: args.totalSteps } : {}),
  };
}

export const heartbeat = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    status: v.optional(heartbeatStatus),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    leaseMs: v.optional(v.number()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadQueuedJob(ctx.db, args.jobId);
    // A lease that expired but was not claimed by anyone is still the
    // holder's: refusing it would only waste the work done so far.
    assertRunningHolder(job, { workerId: args.workerId, attempt: args.attempt });
    const now = Date.now();
    const leaseUntil = now + checkLeaseMs(args.leaseMs ?? DEFAULT_LEASE_MS);
    await ctx.db.patch(job._id, {
      leaseUntil,
      updatedAt: now,
      ...(args.status !== undefined ? { status: args.status } : {}),
      ...progressPatch(job, args),
    });
    return {
      success: true,
      leaseUntil,
      status: args.status ?? job.status,
      attempt: attemptOf(job),
    };
  },
});

export const complete = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    result: v.optional(jobResult),
    docsCount: v.optional(v.number()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadQueuedJob(ctx.db, args.jobId);
    // Re-delivery of the call that finished this claim.
    if (job.status === "completed" && args.attempt === attemptOf(job)) {
      return { success: true, status: job.status };
    }
    assertRunningHolder(job, { workerId: args.workerId, attempt: args.attempt });
    if (args.docsCount !== undefined && (!Number.isInteger(args.docsCount) || args.docsCount < 0)) {
      refuse("INVALID_ARGUMENT", "docsCount must be a non-negative integer", {
        field: "docsCount",
      });
    }
    const now = Date.now();
    // `lockedBy` stays: it says who ran the job, and nobody can claim it again.
    await ctx.db.patch(job._id, {
      status: "completed",
      completedAt: now,
      updatedAt: now,
      leaseUntil: undefined,
      error: undefined,
      ...(args.result !== undefined ? { result: args.result } : {}),
      ...(args.docsCount !== undefined ? { docsCount: args.docsCount } : {}),
    });
    return { success: true, status: "completed" as const };
  },
});

export const retryOrFail = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    error: v.string(),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadQueuedJob(ctx.db, args.jobId);
    // Re-delivery of a call that already released this claim.
    if (
      args.attempt === attemptOf(job) &&
      ((job.status === "pending" && job.lockedBy === undefined) ||
        (job.status === "dead" && job.lockedBy === args.workerId))
    ) {
      return job.status === "dead"
        ? { status: "dead" as const, attempts: failuresOf(job) }
        : { status: "retrying" as const, attempts: failuresOf(job), nextRunAt: readySince(job) };
    }
    assertRunningHolder(job, { workerId: args.workerId, attempt: args.attempt });
    const now = Date.now();
    const error = truncate(args.error, MAX_ERROR_CHARS);
    const attempts = failuresOf(job) + 1;
    if (attempts >= maxAttemptsOf(job)) {
      // `lockedBy` stays on a dead job, as on a completed one: who ran it last.
      await ctx.db.patch(job._id, {
        leaseUntil: undefined,
        updatedAt: now,
        status: "dead",
        attempts,
        error,
        lastError: error,
        completedAt: now,
      });
      return { status: "dead" as const, attempts };
    }
    const nextRunAt = now + retryDelayMs(attempts);
    await ctx.db.patch(job._id, {
      lockedBy: undefined,
      leaseUntil: undefined,
      updatedAt: now,
      status: "pending",
      attempts,
      lastError: error,
      runAt: nextRunAt,
    });
    return { status: "retrying" as const, attempts, nextRunAt };
  },
});

/**
 * The pending jobs, soonest first, without secrets: a client subscribes to
 * it and calls claimOne when a job is ready rather than polling. (A query
 * cannot watch the clock: jobs whose lease expires are found by claimOne.)
 */
export const pendingJobs = query({
  args: { limit: v.optional(v.number()) },
  handler: async (ctx, { limit }) => {
    const count = Math.min(Math.max(Math.floor(limit ?? 50), 1), MAX_PENDING_LISTED);
    const jobs = await ctx.db
      .query("jobs")
      .withIndex("by_status_runAt", (q) => q.eq("status", "pending"))
      .take(count);
    return jobs.map((job) => ({
      id: job._id,
      repositoryId: job.repositoryId,
      runAt: readySince(job),
      createdAt: job.createdAt,
    }));
  },
});

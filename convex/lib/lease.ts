/**
 * Who may still act on a job.
 *
 * A worker identifies itself with its `workerId` (Fondation's worker, and
 * ours) and, for our own worker, the `attempt` number claimOne handed it.
 * Both are checked against the job (`lockedBy`, `attempt`) on every write
 * after the claim, so a worker that lost its lease (it stalled, the lease
 * expired and another worker claimed the job) cannot overwrite the new
 * holder's progress or documents with its late calls, and nothing is
 * written over a job the UI canceled.
 */
import type { Doc, Id } from "../_generated/dataModel";
import type { DatabaseReader } from "../_generated/server";
import { refuse } from "./errors";
import { DEFAULT_MAX_ATTEMPTS, MAX_LEASE_MS, MIN_LEASE_MS } from "./limits";
import { isActive } from "./validators";

/** Fondation's words for a job that is gone or held by someone else. */
export const NOT_OWNED = "Job not found or not owned by worker";

export type Caller = { workerId?: string | undefined; attempt?: number | undefined };

export async function loadJob(db: DatabaseReader, jobId: Id<"jobs">): Promise<Doc<"jobs">> {
  const job = await db.get(jobId);
  if (job === null) refuse("NOT_FOUND", `job ${jobId} does not exist`, { jobId });
  return job;
}

/** A job a queue function acts on; a missing one is refused in Fondation's words. */
export async function loadQueuedJob(db: DatabaseReader, jobId: Id<"jobs">): Promise<Doc<"jobs">> {
  const job = await db.get(jobId);
  if (job === null) refuse("NOT_FOUND", NOT_OWNED, { jobId });
  return job;
}

/** The current claim's number (0 before the first claim). */
export function attemptOf(job: Doc<"jobs">): number {
  return job.attempt ?? 0;
}

/** Failed attempts so far, Fondation's `attempts`. */
export function failuresOf(job: Doc<"jobs">): number {
  return job.attempts ?? 0;
}

export function maxAttemptsOf(job: Doc<"jobs">): number {
  return job.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
}

/** When the job became claimable, for a pending job. */
export function readySince(job: Doc<"jobs">): number {
  return job.runAt ?? job.createdAt;
}

export function identifies(caller: Caller): boolean {
  return caller.workerId !== undefined || caller.attempt !== undefined;
}

/** Refuses a caller that is not the job's current lease holder. */
export function assertHolder(job: Doc<"jobs">, caller: Caller): void {
  if (caller.workerId !== undefined && caller.workerId !== job.lockedBy) {
    refuse("LEASE_LOST", NOT_OWNED, { jobId: job._id, status: job.status });
  }
  if (caller.attempt !== undefined && caller.attempt !== attemptOf(job)) {
    refuse("STALE_ATTEMPT", `attempt ${caller.attempt} of job ${job._id} was superseded`, {
      jobId: job._id,
      attempt: caller.attempt,
      currentAttempt: attemptOf(job),
    });
  }
}

/** Refuses work on a job that is no longer running under a lease. */
export function assertActive(job: Doc<"jobs">): void {
  if (isActive(job.status) && job.cancelRequested !== true) return;
  if (job.status === "canceled" || job.cancelRequested === true) {
    refuse("JOB_CANCELED", `job ${job._id} was canceled`, { jobId: job._id, status: job.status });
  }
  if (job.status === "pending") {
    refuse("LEASE_LOST", NOT_OWNED, { jobId: job._id, status: job.status });
  }
  refuse("JOB_FINISHED", `job ${job._id} is already ${job.status}`, {
    jobId: job._id,
    status: job.status,
  });
}

/**
 * The lease holder, still running: what every call after the claim needs. A
 * finished or canceled job says so first, whoever asks: that is what the
 * caller must act on.
 */
export function assertRunningHolder(job: Doc<"jobs">, caller: Caller): void {
  if (job.status !== "pending") assertActive(job);
  assertHolder(job, caller);
  assertActive(job);
}

export function checkLeaseMs(leaseMs: number): number {
  if (!Number.isFinite(leaseMs) || leaseMs < MIN_LEASE_MS || leaseMs > MAX_LEASE_MS) {
    refuse("INVALID_ARGUMENT", `leaseMs must be between ${MIN_LEASE_MS} and ${MAX_LEASE_MS}`, {
      field: "leaseMs",
      leaseMs,
    });
  }
  return Math.floor(leaseMs);
}

/** Constant-time comparison, so response timing does not leak the token. */
export function tokensEqual(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) {
    diff |= (given.charCodeAt(i % Math.max(given.length, 1)) || 0) ^ expected.charCodeAt(i);
  }
  return diff === 0;
}

/** A random token: callback tokens must not be guessable. */
export function randomToken(): string {
  return crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
}

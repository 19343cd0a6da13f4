/**
 * Who may still act on a job.
 *
 * A worker identifies itself with its `workerId` and, for our own worker, the
 * `attempt` number claimOne handed it. Calls that carry them are checked
 * against the job so that a worker which lost its lease (it stalled, the
 * lease expired and another worker claimed the job) cannot overwrite the new
 * holder's progress or documents with its late calls. Calls that carry neither
 * come from the original Fondation worker and keep its unchecked behaviour.
 */
import type { Doc, Id } from "../_generated/dataModel";
import type { DatabaseReader } from "../_generated/server";
import { refuse } from "./errors";
import { DEFAULT_MAX_ATTEMPTS, MAX_LEASE_MS, MIN_LEASE_MS } from "./limits";
import { isActive } from "./validators";

export type Caller = { workerId?: string | undefined; attempt?: number | undefined };

export async function loadJob(db: DatabaseReader, jobId: Id<"jobs">): Promise<Doc<"jobs">> {
  const job = await db.get(jobId);
  if (job === null) refuse("NOT_FOUND", `job ${jobId} does not exist`, { jobId });
  return job;
}

/** The current attempt's number (0 before the first claim). */
export function attemptOf(job: Doc<"jobs">): number {
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
  if (caller.workerId !== undefined && caller.workerId !== job.workerId) {
    refuse("LEASE_LOST", `job ${job._id} is held by another worker`, {
      jobId: job._id,
      status: job.status,
    });
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
  if (isActive(job.status)) return;
  if (job.status === "canceled") {
    refuse("JOB_CANCELED", `job ${job._id} was canceled`, { jobId: job._id, status: job.status });
  }
  if (job.status === "pending") {
    refuse("LEASE_LOST", `job ${job._id} was released and waits for a new claim`, {
      jobId: job._id,
      status: job.status,
    });
  }
  refuse("JOB_FINISHED", `job ${job._id} is already ${job.status}`, {
    jobId: job._id,
    status: job.status,
  });
}

/** The lease holder, still running: what every call after the claim needs. */
export function assertRunningHolder(job: Doc<"jobs">, caller: Caller): void {
  assertHolder(job, caller);
  assertActive(job);
}

export function checkLeaseMs(leaseMs: number): number {
  if (!Number.isFinite(leaseMs) || leaseMs < MIN_LEASE_MS || leaseMs > MAX_LEASE_MS) {
    refuse("INVALID_ARGUMENT", `leaseMs must be between ${MIN_LEASE_MS} and ${MAX_LEASE_MS}`, {
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

/** A random token: leases and callback tokens must not be guessable. */
export function randomToken(): string {
  return crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
}

/**
 * Refusals a worker must be able to tell apart by code rather than by parsing
 * messages: the operator cancels its work on LEASE_LOST/STALE_ATTEMPT/
 * JOB_CANCELED/SUPERSEDED, fixes its upload on LIMIT_EXCEEDED/COUNT_MISMATCH,
 * and so on. LEASE_LOST carries Fondation's own message, which its worker
 * recognises.
 */
import { ConvexError, type Value } from "convex/values";

export type ErrorCode =
  | "NOT_FOUND"
  /** Another worker holds the job, or the job was released. */
  | "LEASE_LOST"
  /** The job was claimed again since this attempt started. */
  | "STALE_ATTEMPT"
  | "JOB_CANCELED"
  /** The job already reached a terminal status. */
  | "JOB_FINISHED"
  /** A newer job of the same repository exists: this one's course is obsolete. */
  | "SUPERSEDED"
  | "INVALID_TOKEN"
  | "INVALID_ARGUMENT"
  | "LIMIT_EXCEEDED"
  | "COUNT_MISMATCH"
  /** The upload run is already the job's document set and cannot change. */
  | "RUN_COMMITTED";

export type RefusalData = { code: ErrorCode; message: string } & Record<string, Value>;

export function refuse(
  code: ErrorCode,
  message: string,
  details: Record<string, Value> = {},
): never {
  throw new ConvexError<RefusalData>({ ...details, code, message });
}

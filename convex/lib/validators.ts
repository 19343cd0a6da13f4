/**
 * Every literal the functions, the schema and the Python side share, listed
 * once: job statuses, document kinds, log levels. Validators are derived from
 * the lists, and `LITERALS` is written to contracts/convex-literals.json
 * (`npm run literals`) so a Python test can compare fondation_contracts
 * against the same values without running Node; validators.test.ts fails
 * when the file is stale.
 */
import { v, type Infer, type VLiteral, type VUnion } from "convex/values";

/** Fondation's statuses (DESIGN.md §6), in the order a job goes through them. */
export const JOB_STATUSES = [
  "pending",
  "claimed",
  "running",
  "cloning",
  "analyzing",
  "gathering",
  "completed",
  "failed",
  "canceled",
  "dead",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses in which a worker holds the job under a lease. */
export const ACTIVE_STATUSES = ["claimed", "running", "cloning", "analyzing", "gathering"] as const;
export type ActiveStatus = (typeof ACTIVE_STATUSES)[number];

/** What a worker reports through `queue:heartbeat`, as Fondation's does. */
export const HEARTBEAT_STATUSES = ["running", "cloning", "analyzing", "gathering"] as const;

/** Statuses a job never leaves. */
export const TERMINAL_STATUSES = ["completed", "failed", "canceled", "dead"] as const;
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

/** `Document.kind` of the course contract, and of Fondation's `docs` table. */
export const DOC_KINDS = ["yaml", "chapter", "tutorial", "toc"] as const;
export type DocKind = (typeof DOC_KINDS)[number];

/** `jobLogs.level`, Fondation's. */
export const LOG_LEVELS = ["info", "error"] as const;

/** The shared literals, as contracts/convex-literals.json holds them. */
export const LITERALS = {
  jobStatuses: JOB_STATUSES,
  activeStatuses: ACTIVE_STATUSES,
  heartbeatStatuses: HEARTBEAT_STATUSES,
  terminalStatuses: TERMINAL_STATUSES,
  docKinds: DOC_KINDS,
  logLevels: LOG_LEVELS,
};

/** The text of contracts/convex-literals.json. */
export function literalsFileText(): string {
  return `${JSON.stringify(LITERALS, null, 2)}\n`;
}

export function isActive(status: JobStatus): status is ActiveStatus {
  return (ACTIVE_STATUSES as readonly string[]).includes(status);
}

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** The validator of one of `values`, typed as their union. */
export function literals<const T extends readonly [string, string, ...string[]]>(
  values: T,
): VUnion<T[number], VLiteral<T[number], "required">[], "required", never> {
  const [first, second, ...rest] = values;
  return v.union(v.literal(first), v.literal(second), ...rest.map((value) => v.literal(value)));
}

export const jobStatus = literals(JOB_STATUSES);
export const heartbeatStatus = literals(HEARTBEAT_STATUSES);
export const docKind = literals(DOC_KINDS);
export const logLevel = literals(LOG_LEVELS);

/** One document as a worker uploads it (`Document` of the course contract). */
export const docFile = v.object({
  slug: v.string(),
  title: v.string(),
  chapterIndex: v.optional(v.number()),
  content: v.string(),
  kind: docKind,
  sha256: v.optional(v.string()),
  sourcePath: v.optional(v.string()),
});
export type DocFile = Infer<typeof docFile>;

export const docsSummary = v.object({
  chaptersCount: v.number(),
  tutorialsCount: v.number(),
  generatedAt: v.number(),
});
export type DocsSummary = Infer<typeof docsSummary>;

/**
 * What `queue:complete` stores: Fondation's object (`success`/`message`/
 * `data`, with the operator's additions), or a string, or null.
 */
export const jobResultObject = v.object({
  success: v.boolean(),
  message: v.optional(v.string()),
  data: v.optional(v.string()),
  commit: v.optional(v.string()),
  documents: v.optional(v.number()),
  chapters: v.optional(v.number()),
  partial: v.optional(v.boolean()),
  costUsd: v.optional(v.number()),
  inputTokens: v.optional(v.number()),
  outputTokens: v.optional(v.number()),
});
export const jobResult = v.union(jobResultObject, v.string(), v.null());
export type JobResult = Infer<typeof jobResult>;

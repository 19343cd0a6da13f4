/** Argument and field validators shared by the schema and the functions. */
import { v, type Infer } from "convex/values";

export const JOB_STATUSES = [
  "pending",
  "claimed",
  "cloning",
  "analyzing",
  "gathering",
  "running",
  "completed",
  "failed",
  "canceled",
  "dead",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses in which a worker holds the job under a lease. */
export const ACTIVE_STATUSES = ["claimed", "cloning", "analyzing", "gathering", "running"] as const;
export type ActiveStatus = (typeof ACTIVE_STATUSES)[number];

/** Statuses a job never leaves. */
export const TERMINAL_STATUSES = ["completed", "failed", "canceled", "dead"] as const;
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];

export function isActive(status: JobStatus): status is ActiveStatus {
  return (ACTIVE_STATUSES as readonly string[]).includes(status);
}

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

export const jobStatus = v.union(
  v.literal("pending"),
  v.literal("claimed"),
  v.literal("cloning"),
  v.literal("analyzing"),
  v.literal("gathering"),
  v.literal("running"),
  v.literal("completed"),
  v.literal("failed"),
  v.literal("canceled"),
  v.literal("dead"),
);

export const activeStatus = v.union(
  v.literal("claimed"),
  v.literal("cloning"),
  v.literal("analyzing"),
  v.literal("gathering"),
  v.literal("running"),
);

export const docKind = v.union(
  v.literal("yaml"),
  v.literal("chapter"),
  v.literal("tutorial"),
  v.literal("toc"),
);
export type DocKind = Infer<typeof docKind>;

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
 * What `jobs:complete` stores. `success`/`message`/`data` are the fields the
 * original worker sends; the rest are the operator's additions.
 */
export const jobResult = v.object({
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
export type JobResult = Infer<typeof jobResult>;

export const logLevel = v.union(
  v.literal("debug"),
  v.literal("info"),
  v.literal("warn"),
  v.literal("error"),
);

export const logEntry = v.object({
  level: logLevel,
  message: v.string(),
  step: v.optional(v.string()),
  at: v.optional(v.number()),
});

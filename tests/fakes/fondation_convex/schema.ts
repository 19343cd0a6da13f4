/**
 * The data model of a Fondation deployment, as ../shared/DESIGN.md §6 states
 * it: the tables and fields its worker and UI read and write, and the status
 * values a job takes. This fake exists so the operator's bridge can be tested
 * against Fondation's own functions; the project's convex/schema.ts must stay
 * a superset of it (convex/schema.test.ts checks that), so a deployment can
 * install the project's functions over its existing data.
 */
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

// A generic helper, not a contract: the fake's literals are its own lists.
import { literals } from "../../../convex/lib/validators";

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

/** Statuses a worker reports through `queue:heartbeat`. */
export const HEARTBEAT_STATUSES = ["cloning", "analyzing", "gathering", "running"] as const;

export const DOC_KINDS = ["chapter", "tutorial", "toc", "yaml"] as const;
export const LOG_LEVELS = ["info", "error"] as const;

export const jobStatus = literals(JOB_STATUSES);
export const heartbeatStatus = literals(HEARTBEAT_STATUSES);
export const docKind = literals(DOC_KINDS);
export const logLevel = literals(LOG_LEVELS);

/** What `queue:complete` stores: an object, a string or null. */
export const jobResult = v.union(
  v.object({
    success: v.boolean(),
    message: v.optional(v.string()),
    data: v.optional(v.string()),
  }),
  v.string(),
  v.null(),
);

export default defineSchema({
  users: defineTable({
    githubId: v.string(),
    username: v.string(),
    email: v.optional(v.string()),
    avatarUrl: v.optional(v.string()),
    // `enc_v1_<iv>:<tag>:<ciphertext>`, `obf_<base64>` or plain text.
    githubAccessToken: v.optional(v.string()),
    createdAt: v.number(),
  }).index("by_github_id", ["githubId"]),

  repositories: defineTable({
    userId: v.id("users"),
    githubRepoId: v.string(),
    name: v.string(),
    fullName: v.string(),
    description: v.optional(v.string()),
    defaultBranch: v.optional(v.string()),
  }).index("by_user", ["userId"]),

  jobs: defineTable({
    userId: v.id("users"),
    repositoryId: v.id("repositories"),
    // Fondation fails a job whose prompt is missing, so rows may lack it.
    prompt: v.optional(v.string()),
    status: jobStatus,
    callbackToken: v.string(),
    createdAt: v.number(),
    updatedAt: v.optional(v.number()),
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    result: v.optional(jobResult),
    error: v.optional(v.string()),
    lastError: v.optional(v.string()),
    docsCount: v.optional(v.number()),
    completedAt: v.optional(v.number()),
    cancelRequested: v.optional(v.boolean()),
    // The queue: attempts failed so far, the lease and when the job may run.
    attempts: v.optional(v.number()),
    maxAttempts: v.optional(v.number()),
    lockedBy: v.optional(v.string()),
    leaseUntil: v.optional(v.number()),
    runAt: v.optional(v.number()),
  })
    .index("by_user", ["userId"])
    .index("by_repository", ["repositoryId"])
    .index("by_status_runAt", ["status", "runAt"])
    .index("by_leaseUntil", ["leaseUntil"]),

  docs: defineTable({
    jobId: v.id("jobs"),
    repositoryId: v.id("repositories"),
    runId: v.optional(v.string()),
    slug: v.string(),
    title: v.string(),
    chapterIndex: v.number(),
    kind: docKind,
    content: v.string(),
    createdAt: v.number(),
  })
    .index("by_job", ["jobId"])
    .index("by_repository", ["repositoryId"]),

  jobLogs: defineTable({
    jobId: v.id("jobs"),
    ts: v.number(),
    seq: v.number(),
    level: logLevel,
    msg: v.string(),
  }).index("by_job_seq", ["jobId", "seq"]),
});

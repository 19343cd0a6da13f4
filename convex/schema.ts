/**
 * The Convex data model shared with the Fondation web app.
 *
 * `jobs` and `docs` keep the field names the web app and its original worker
 * use, so the app shows our courses unchanged; the fields the original schema
 * lacked (lease, attempt, run bookkeeping) are additions, optional wherever a
 * document written by the original backend may lack them.
 *
 * `docs` mirrors `Document` in contracts/fondation_contracts/course.py: keep
 * the two in step.
 */
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

import { docKind, docsSummary, jobResult, jobStatus, logLevel } from "./lib/validators";

export default defineSchema({
  // Only what jobs reference: the web app owns the rest of these tables.
  users: defineTable({
    githubId: v.optional(v.string()),
    username: v.string(),
    createdAt: v.number(),
  }).index("by_github_id", ["githubId"]),

  repositories: defineTable({
    userId: v.optional(v.id("users")),
    name: v.string(),
    fullName: v.string(),
    url: v.optional(v.string()),
    defaultBranch: v.optional(v.string()),
  })
    .index("by_user", ["userId"])
    .index("by_url", ["url"]),

  jobs: defineTable({
    userId: v.optional(v.id("users")),
    repositoryId: v.id("repositories"),
    repositoryUrl: v.optional(v.string()),
    branch: v.optional(v.string()),
    prompt: v.string(),
    language: v.optional(v.string()),
    status: jobStatus,
    callbackToken: v.string(),
    // Attempts started so far: the current attempt's number once claimed.
    // Optional, like runAt, because jobs written by the original backend may
    // lack them; lib/lease.ts reads them with their defaults.
    attempts: v.optional(v.number()),
    maxAttempts: v.optional(v.number()),
    // Earliest time the job may be claimed: creation time, or the end of a
    // retry backoff.
    runAt: v.optional(v.number()),
    createdAt: v.number(),
    updatedAt: v.optional(v.number()),
    // The lease: who holds the job and until when.
    workerId: v.optional(v.string()),
    leaseId: v.optional(v.string()),
    leaseExpiresAt: v.optional(v.number()),
    claimedAt: v.optional(v.number()),
    completedAt: v.optional(v.number()),
    canceledAt: v.optional(v.number()),
    // What the UI shows while the job runs.
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    error: v.optional(v.string()),
    result: v.optional(jobResult),
    // The committed document set: docs of this job whose runId is docsRunId.
    docsRunId: v.optional(v.string()),
    docsCount: v.optional(v.number()),
    docsSummary: v.optional(docsSummary),
  })
    .index("by_status_runAt", ["status", "runAt"])
    .index("by_status_leaseExpiresAt", ["status", "leaseExpiresAt"])
    .index("by_repository", ["repositoryId"])
    .index("by_user", ["userId"]),

  docs: defineTable({
    jobId: v.id("jobs"),
    repositoryId: v.id("repositories"),
    // The upload run that wrote this document; absent on documents written by
    // the original backend.
    runId: v.optional(v.string()),
    kind: docKind,
    slug: v.string(),
    title: v.string(),
    chapterIndex: v.number(),
    content: v.string(),
    sha256: v.optional(v.string()),
    sourcePath: v.optional(v.string()),
    createdAt: v.number(),
  })
    .index("by_job", ["jobId"])
    .index("by_job_run_slug", ["jobId", "runId", "slug"])
    .index("by_repository", ["repositoryId"]),

  jobLogs: defineTable({
    jobId: v.id("jobs"),
    attempt: v.optional(v.number()),
    level: logLevel,
    message: v.string(),
    step: v.optional(v.string()),
    at: v.number(),
  }).index("by_job", ["jobId"]),
});

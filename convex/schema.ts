/**
 * The Convex data model: Fondation's own (DESIGN.md §6), extended.
 *
 * Every table and field of a Fondation deployment is here with a validator
 * that accepts what Fondation stores, so the project's functions can be
 * installed over a Fondation deployment's data and its UI keeps reading the
 * fields it knows; schema.test.ts checks this against the fake of
 * Fondation's functions in tests/fakes/fondation_convex/. What Fondation
 * lacks (the claim counter behind the attempt checks, upload runs, the
 * course's language and branch, document digests) is added as optional
 * fields, so rows Fondation wrote stay valid.
 *
 * `docs` mirrors `Document` in contracts/fondation_contracts/course.py: keep
 * the two in step.
 */
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

import { docKind, docsSummary, jobResult, jobStatus, logLevel } from "./lib/validators";

export default defineSchema({
  users: defineTable({
    githubId: v.string(),
    username: v.string(),
    email: v.optional(v.string()),
    avatarUrl: v.optional(v.string()),
    // As the web app stores it: `enc_v1_...`, `obf_...` or plain text.
    githubAccessToken: v.optional(v.string()),
    createdAt: v.number(),
  }).index("by_github_id", ["githubId"]),

  repositories: defineTable({
    // Absent on repositories created for jobs submitted without the web app.
    userId: v.optional(v.id("users")),
    githubRepoId: v.optional(v.string()),
    name: v.string(),
    fullName: v.string(),
    description: v.optional(v.string()),
    defaultBranch: v.optional(v.string()),
    url: v.optional(v.string()),
  })
    .index("by_user", ["userId"])
    .index("by_url", ["url"]),

  jobs: defineTable({
    userId: v.optional(v.id("users")),
    repositoryId: v.id("repositories"),
    prompt: v.optional(v.string()),
    status: jobStatus,
    callbackToken: v.string(),
    createdAt: v.number(),
    updatedAt: v.optional(v.number()),
    // What the UI shows while the job runs.
    progress: v.optional(v.string()),
    currentStep: v.optional(v.number()),
    totalSteps: v.optional(v.number()),
    result: v.optional(jobResult),
    error: v.optional(v.string()),
    lastError: v.optional(v.string()),
    docsCount: v.optional(v.number()),
    completedAt: v.optional(v.number()),
    cancelRequested: v.optional(v.boolean()),
    // Fondation's queue: failed attempts so far, the limit, the lease
    // (holder and end) and the earliest time the job may be claimed.
    attempts: v.optional(v.number()),
    maxAttempts: v.optional(v.number()),
    lockedBy: v.optional(v.string()),
    leaseUntil: v.optional(v.number()),
    runAt: v.optional(v.number()),
    // Ours: claims so far, the number the current holder's `attempt`
    // arguments are checked against (a lease taken back after it expired is
    // a new claim, so the previous holder's late calls are refused).
    attempt: v.optional(v.number()),
    claimedAt: v.optional(v.number()),
    canceledAt: v.optional(v.number()),
    // Ours: jobs submitted without the web app, and the course's language.
    repositoryUrl: v.optional(v.string()),
    branch: v.optional(v.string()),
    language: v.optional(v.string()),
    // Ours: the job `jobs:regenerate` queued to replace this one; this
    // job's course is then refused.
    supersededBy: v.optional(v.id("jobs")),
    // Ours: the committed document set is the docs of this job whose runId
    // is docsRunId.
    docsRunId: v.optional(v.string()),
    docsSummary: v.optional(docsSummary),
  })
    .index("by_user", ["userId"])
    .index("by_repository", ["repositoryId"])
    .index("by_status_runAt", ["status", "runAt"])
    .index("by_status_leaseUntil", ["status", "leaseUntil"])
    .index("by_leaseUntil", ["leaseUntil"]),

  docs: defineTable({
    jobId: v.id("jobs"),
    repositoryId: v.id("repositories"),
    // The upload run that wrote this document.
    runId: v.optional(v.string()),
    kind: docKind,
    slug: v.string(),
    title: v.string(),
    chapterIndex: v.number(),
    content: v.string(),
    createdAt: v.number(),
    sha256: v.optional(v.string()),
    sourcePath: v.optional(v.string()),
  })
    .index("by_job", ["jobId"])
    .index("by_job_run_slug", ["jobId", "runId", "slug"])
    .index("by_repository", ["repositoryId"]),

  jobLogs: defineTable({
    jobId: v.id("jobs"),
    ts: v.number(),
    seq: v.number(),
    level: logLevel,
    msg: v.string(),
    // Ours: the claim that wrote the line, and the pipeline step.
    attempt: v.optional(v.number()),
    step: v.optional(v.string()),
  }).index("by_job_seq", ["jobId", "seq"]),
});

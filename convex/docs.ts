/**
 * A job's course documents.
 *
 * Every row belongs to an upload run (`runId`); the job's document set is the
 * run named by `jobs.docsRunId`, so readers see either the previous set or
 * the new one, never a half-uploaded mix. Publishing a set sets the job's
 * `docsCount` and deletes the repository's older generations, as Fondation's
 * `upsertFromJob` does, except that a newer job's course is never deleted
 * and a job `jobs:regenerate` replaced is refused (SUPERSEDED) while its
 * replacement has not failed. Two ways in:
 * - `upsertFromJob`: Fondation's one-call replacement, same arguments;
 * - `putBatch` (any number of times, idempotent by (job, run, slug)) then
 *   `commitRun`: for courses too big for one call, safe to re-deliver.
 */
import { v } from "convex/values";

import type { Doc, Id } from "./_generated/dataModel";
import {
  internalQuery,
  mutation,
  query,
  type DatabaseReader,
  type MutationCtx,
} from "./_generated/server";
import { checkFiles, checkRunId, inCourseOrder, sameDocument, toDocFields } from "./lib/documents";
import { refuse } from "./lib/errors";
import { assertActive, assertHolder, assertRunningHolder, identifies, loadJob } from "./lib/lease";
import { MAX_DOCS_PER_RUN } from "./lib/limits";
import { docFile, docsSummary, type DocsSummary } from "./lib/validators";

async function runDocs(
  db: DatabaseReader,
  jobId: Id<"jobs">,
  runId: string | undefined,
): Promise<Doc<"docs">[]> {
  return await db
    .query("docs")
    .withIndex("by_job_run_slug", (q) => q.eq("jobId", jobId).eq("runId", runId))
    .collect();
}

/** Deletes the job's rows of every run but `keepRunId`; returns how many. */
async function deleteOtherRuns(
  ctx: MutationCtx,
  jobId: Id<"jobs">,
  keepRunId: string,
): Promise<number> {
  const rows = await ctx.db
    .query("docs")
    .withIndex("by_job", (q) => q.eq("jobId", jobId))
    .collect();
  let deleted = 0;
  for (const row of rows) {
    if (row.runId !== keepRunId) {
      await ctx.db.delete(row._id);
      deleted++;
    }
  }
  return deleted;
}

/** Refuses the course of a job that `jobs:regenerate` replaced, unless the replacement failed. */
async function assertNotSuperseded(db: DatabaseReader, job: Doc<"jobs">): Promise<void> {
  if (job.supersededBy === undefined) return;
  const replacement = await db.get(job.supersededBy);
  if (
    replacement === null ||
    replacement.status === "failed" ||
    replacement.status === "canceled" ||
    replacement.status === "dead"
  ) {
    return;
  }
  refuse("SUPERSEDED", `job ${job._id} was superseded by job ${replacement._id}`, {
    jobId: job._id,
    newerJobId: replacement._id,
  });
}

/**
 * Deletes the courses older jobs of the repository published; returns how
 * many documents. A newer job's course is never touched (an older job
 * finishing late does not replace it), nor an older job's upload still in
 * progress (its run is not published yet).
 */
async function deleteOlderGenerations(ctx: MutationCtx, job: Doc<"jobs">): Promise<number> {
  const rows = await ctx.db
    .query("docs")
    .withIndex("by_repository", (q) => q.eq("repositoryId", job.repositoryId))
    .collect();
  const writers = new Map<Id<"jobs">, Doc<"jobs"> | null>();
  let deleted = 0;
  for (const row of rows) {
    if (row.jobId === job._id) continue;
    if (!writers.has(row.jobId)) writers.set(row.jobId, await ctx.db.get(row.jobId));
    const writer = writers.get(row.jobId) ?? null;
    const older = writer === null || writer._creationTime < job._creationTime;
    if (older && (writer === null || row.runId === writer.docsRunId)) {
      await ctx.db.delete(row._id);
      deleted++;
    }
  }
  return deleted;
}

async function publishRun(
  ctx: MutationCtx,
  job: Doc<"jobs">,
  runId: string,
  docsCount: number,
  summary: DocsSummary,
): Promise<number> {
  const deleted =
    (await deleteOtherRuns(ctx, job._id, runId)) + (await deleteOlderGenerations(ctx, job));
  await ctx.db.patch(job._id, {
    docsRunId: runId,
    docsCount,
    docsSummary: summary,
    updatedAt: Date.now(),
  });
  return deleted;
}

export const upsertFromJob = mutation({
  args: {
    jobId: v.id("jobs"),
    repositoryId: v.id("repositories"),
    runId: v.optional(v.string()),
    files: v.array(docFile),
    summary: docsSummary,
    workerId: v.optional(v.string()),
    attempt: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    const caller = { workerId: args.workerId, attempt: args.attempt };
    assertHolder(job, caller);
    // Re-delivery of the upload that is already the finished job's course.
    if (job.status === "completed" && args.runId !== undefined && args.runId === job.docsRunId) {
      return { success: true, docsCount: job.docsCount ?? 0, runId: args.runId, deleted: 0 };
    }
    if (identifies(caller)) assertRunningHolder(job, caller);
    else assertActive(job);
    if (args.repositoryId !== job.repositoryId) {
      refuse("INVALID_ARGUMENT", `job ${job._id} belongs to another repository`, {
        field: "repositoryId",
      });
    }
    await assertNotSuperseded(ctx.db, job);
    checkFiles(args.files);
    const now = Date.now();
    const runId = args.runId ?? `upsert-${now}`;
    checkRunId(runId);
    // Replacing the same run again (a re-delivered call) replaces its rows too.
    for (const row of await runDocs(ctx.db, job._id, runId)) await ctx.db.delete(row._id);
    for (const file of args.files) {
      await ctx.db.insert("docs", toDocFields(job, job.repositoryId, runId, file, now));
    }
    const deleted = await publishRun(ctx, job, runId, args.files.length, args.summary);
    return { success: true, docsCount: args.files.length, runId, deleted };
  },
});

export const putBatch = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    attempt: v.number(),
    runId: v.string(),
    files: v.array(docFile),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    assertRunningHolder(job, { workerId: args.workerId, attempt: args.attempt });
    await assertNotSuperseded(ctx.db, job);
    checkRunId(args.runId);
    checkFiles(args.files);
    const committed = job.docsRunId === args.runId;
    const now = Date.now();
    let inserted = 0;
    let updated = 0;
    let unchanged = 0;
    for (const file of args.files) {
      const existing = await ctx.db
        .query("docs")
        .withIndex("by_job_run_slug", (q) =>
          q.eq("jobId", job._id).eq("runId", args.runId).eq("slug", file.slug),
        )
        .first();
      if (existing !== null && sameDocument(existing, file)) {
        unchanged++;
        continue;
      }
      if (committed) {
        refuse("RUN_COMMITTED", `run ${args.runId} is already the document set of job ${job._id}`, {
          runId: args.runId,
          slug: file.slug,
        });
      }
      const fields = toDocFields(job, job.repositoryId, args.runId, file, now);
      if (existing === null) {
        await ctx.db.insert("docs", fields);
        inserted++;
      } else {
        await ctx.db.replace(existing._id, fields);
        updated++;
      }
    }
    return { inserted, updated, unchanged };
  },
});

export const commitRun = mutation({
  args: {
    jobId: v.id("jobs"),
    workerId: v.string(),
    attempt: v.number(),
    runId: v.string(),
    summary: docsSummary,
    expectedCount: v.number(),
  },
  handler: async (ctx, args) => {
    const job = await loadJob(ctx.db, args.jobId);
    const caller = { workerId: args.workerId, attempt: args.attempt };
    assertHolder(job, caller);
    const alreadyCommitted = job.docsRunId === args.runId;
    // Re-delivery after the job finished is harmless; new work is not.
    if (!alreadyCommitted) assertRunningHolder(job, caller);
    checkRunId(args.runId);
    if (
      !Number.isInteger(args.expectedCount) ||
      args.expectedCount < 0 ||
      args.expectedCount > MAX_DOCS_PER_RUN
    ) {
      refuse(
        "LIMIT_EXCEEDED",
        `expectedCount must be an integer between 0 and ${MAX_DOCS_PER_RUN}`,
        {
          limit: "docsPerRun",
          max: MAX_DOCS_PER_RUN,
          actual: args.expectedCount,
        },
      );
    }
    const rows = await runDocs(ctx.db, job._id, args.runId);
    if (rows.length !== args.expectedCount) {
      refuse(
        "COUNT_MISMATCH",
        `run ${args.runId} holds ${rows.length} documents, expected ${args.expectedCount}`,
        {
          runId: args.runId,
          expected: args.expectedCount,
          actual: rows.length,
        },
      );
    }
    if (alreadyCommitted) return { success: true, docsCount: rows.length, deleted: 0 };
    await assertNotSuperseded(ctx.db, job);
    const deleted = await publishRun(ctx, job, args.runId, rows.length, args.summary);
    return { success: true, docsCount: rows.length, deleted };
  },
});

/** The job's committed documents in course order. */
async function committedDocs(db: DatabaseReader, jobId: Id<"jobs">): Promise<Doc<"docs">[]> {
  const job = await db.get(jobId);
  if (job === null) return [];
  return inCourseOrder(await runDocs(db, jobId, job.docsRunId));
}

export const listByJob = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => await committedDocs(ctx.db, jobId),
});

/** The web app's name for listByJob. */
export const listByJobId = query({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) => await committedDocs(ctx.db, jobId),
});

export const getBySlug = query({
  args: { jobId: v.id("jobs"), slug: v.string() },
  handler: async (ctx, { jobId, slug }) => {
    const job = await ctx.db.get(jobId);
    if (job === null) return null;
    return await ctx.db
      .query("docs")
      .withIndex("by_job_run_slug", (q) =>
        q.eq("jobId", jobId).eq("runId", job.docsRunId).eq("slug", slug),
      )
      .first();
  },
});

/** The documents of the repository's latest completed job. */
export const listByRepository = query({
  args: { repositoryId: v.id("repositories") },
  handler: async (ctx, { repositoryId }) => {
    const latest = await ctx.db
      .query("jobs")
      .withIndex("by_repository", (q) => q.eq("repositoryId", repositoryId))
      .order("desc")
      .filter((q) => q.eq(q.field("status"), "completed"))
      .first();
    return latest === null ? [] : await committedDocs(ctx.db, latest._id);
  },
});

/**
 * Every row of the job, of every run, committed or not: for tests that check
 * an interrupted upload left nothing missing, duplicated or behind.
 */
export const allRowsOfJob = internalQuery({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) =>
    await ctx.db
      .query("docs")
      .withIndex("by_job", (q) => q.eq("jobId", jobId))
      .collect(),
});

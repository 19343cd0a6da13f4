/**
 * Fondation's course upload (DESIGN.md §6): one call replaces the
 * repository's course. Every older generation of the repository's documents
 * is deleted, whichever job wrote it and whether or not the caller still owns
 * its job, which is how a superseded job that finishes late deletes the
 * newer course.
 */
import { v } from "convex/values";

import { mutation } from "./_generated/server";
import { docKind } from "./schema";

export const upsertFromJob = mutation({
  args: {
    jobId: v.id("jobs"),
    repositoryId: v.id("repositories"),
    runId: v.optional(v.string()),
    files: v.array(
      v.object({
        slug: v.string(),
        title: v.string(),
        chapterIndex: v.optional(v.number()),
        content: v.string(),
        kind: docKind,
      }),
    ),
    summary: v.object({
      chaptersCount: v.number(),
      tutorialsCount: v.number(),
      generatedAt: v.number(),
    }),
  },
  handler: async (ctx, args) => {
    const job = await ctx.db.get(args.jobId);
    if (job === null) throw new Error("Job not found");
    const older = await ctx.db
      .query("docs")
      .withIndex("by_repository", (q) => q.eq("repositoryId", args.repositoryId))
      .collect();
    for (const doc of older) await ctx.db.delete(doc._id);
    const now = Date.now();
    for (const file of args.files) {
      await ctx.db.insert("docs", {
        jobId: job._id,
        repositoryId: args.repositoryId,
        slug: file.slug,
        title: file.title,
        chapterIndex: file.chapterIndex ?? 0,
        kind: file.kind,
        content: file.content,
        createdAt: now,
        ...(args.runId !== undefined ? { runId: args.runId } : {}),
      });
    }
    await ctx.db.patch(job._id, { docsCount: args.files.length, updatedAt: now });
    return { success: true, docsCount: args.files.length, deleted: older.length };
  },
});

/**
 * Test-only functions (internal: callers need the deploy key), not part of
 * Fondation: they stand in for the UI's sign-in, repository import and
 * "generate" button, and let tests read what the UI would show.
 */
import { v } from "convex/values";

import type { Doc } from "./_generated/dataModel";
import { internalMutation, internalQuery } from "./_generated/server";
import { DEFAULT_MAX_ATTEMPTS } from "./queue";
import { jobStatus } from "./schema";

export const user = internalMutation({
  args: {
    githubId: v.optional(v.string()),
    username: v.optional(v.string()),
    githubAccessToken: v.optional(v.string()),
  },
  handler: async (ctx, args) => {
    const githubId = args.githubId ?? String(Math.floor(Math.random() * 1e9));
    return await ctx.db.insert("users", {
      githubId,
      username: args.username ?? `user-${githubId}`,
      createdAt: Date.now(),
      ...(args.githubAccessToken !== undefined
        ? { githubAccessToken: args.githubAccessToken }
        : {}),
    });
  },
});

export const repository = internalMutation({
  args: {
    userId: v.id("users"),
    fullName: v.string(),
    defaultBranch: v.optional(v.string()),
  },
  handler: async (ctx, { userId, fullName, defaultBranch }) =>
    await ctx.db.insert("repositories", {
      userId,
      githubRepoId: String(Math.floor(Math.random() * 1e9)),
      name: fullName.split("/").pop() ?? fullName,
      fullName,
      ...(defaultBranch !== undefined ? { defaultBranch } : {}),
    }),
});

/** A job as the UI creates it: pending, ready now unless `runAt` says otherwise. */
export const job = internalMutation({
  args: {
    userId: v.id("users"),
    repositoryId: v.id("repositories"),
    prompt: v.optional(v.string()),
    status: v.optional(jobStatus),
    runAt: v.optional(v.number()),
    attempts: v.optional(v.number()),
    maxAttempts: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    const now = Date.now();
    return await ctx.db.insert("jobs", {
      userId: args.userId,
      repositoryId: args.repositoryId,
      status: args.status ?? "pending",
      callbackToken: crypto.randomUUID(),
      createdAt: now,
      attempts: args.attempts ?? 0,
      maxAttempts: args.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      runAt: args.runAt ?? now,
      ...(args.prompt !== undefined ? { prompt: args.prompt } : {}),
    });
  },
});

/** Deletes a row, e.g. a user, to test what a worker does when it is missing. */
export const remove = internalMutation({
  args: { table: v.union(v.literal("users"), v.literal("repositories")), id: v.string() },
  handler: async (ctx, { table, id }) => {
    const normalized = ctx.db.normalizeId(table, id);
    if (normalized === null) throw new Error(`${id} is not an id of ${table}`);
    await ctx.db.delete(normalized);
  },
});

function inCourseOrder(docs: Doc<"docs">[]): Doc<"docs">[] {
  return docs.sort((a, b) => a.chapterIndex - b.chapterIndex || (a.slug < b.slug ? -1 : 1));
}

/** The repository's course as the UI lists it, whichever job wrote it. */
export const docsOfRepository = internalQuery({
  args: { repositoryId: v.id("repositories") },
  handler: async (ctx, { repositoryId }) =>
    inCourseOrder(
      await ctx.db
        .query("docs")
        .withIndex("by_repository", (q) => q.eq("repositoryId", repositoryId))
        .collect(),
    ),
});

export const docsOfJob = internalQuery({
  args: { jobId: v.id("jobs") },
  handler: async (ctx, { jobId }) =>
    inCourseOrder(
      await ctx.db
        .query("docs")
        .withIndex("by_job", (q) => q.eq("jobId", jobId))
        .collect(),
    ),
});

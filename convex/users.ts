/**
 * The user lookups a worker makes to clone a private repository, under
 * Fondation's names (DESIGN.md §6). They stay public queries, as in
 * Fondation, because its worker calls them without a deploy key; the token
 * is returned as stored (`enc_v1_...` needs the deployment's ENCRYPTION_KEY).
 */
import { v } from "convex/values";

import { query } from "./_generated/server";

export const getUserById = query({
  args: { userId: v.id("users") },
  handler: async (ctx, { userId }) => await ctx.db.get(userId),
});

export const getGitHubToken = query({
  args: { githubId: v.string() },
  handler: async (ctx, { githubId }) => {
    const user = await ctx.db
      .query("users")
      .withIndex("by_github_id", (q) => q.eq("githubId", githubId))
      .first();
    return user?.githubAccessToken ?? null;
  },
});

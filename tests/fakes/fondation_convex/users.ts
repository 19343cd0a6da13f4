/**
 * The user lookups Fondation's worker makes to clone a private repository
 * (DESIGN.md §6). Both are public queries in Fondation, the token one
 * included: the token is returned as stored (`enc_v1_`, `obf_` or plain).
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

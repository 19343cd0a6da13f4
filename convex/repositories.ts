/** The repository row a worker reads to clone, under Fondation's name (DESIGN.md §6). */
import { v } from "convex/values";

import { query } from "./_generated/server";

export const getByRepositoryId = query({
  args: { repositoryId: v.id("repositories") },
  handler: async (ctx, { repositoryId }) => await ctx.db.get(repositoryId),
});

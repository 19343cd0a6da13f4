/**
 * Shared pieces of the fake's vitest suites (two dots in the name: not a
 * function module).
 */
import { convexTest } from "convex-test";
import { expect } from "vitest";

import type { Id } from "./_generated/dataModel";
import { internal } from "./_generated/api";
import schema from "./schema";
import { modules } from "./test.setup";

export { T0, setNow } from "../../../convex/test.helpers";

export function newFondation() {
  return convexTest(schema, modules);
}
export type Fondation = ReturnType<typeof newFondation>;

export type Seeded = {
  userId: Id<"users">;
  repositoryId: Id<"repositories">;
  jobId: Id<"jobs">;
};

/** A user, one of their repositories and a pending job for it, as the UI creates them. */
export async function seedJob(
  t: Fondation,
  options: { maxAttempts?: number; runAt?: number; fullName?: string } = {},
): Promise<Seeded> {
  const userId = await t.mutation(internal.seed.user, { githubAccessToken: "ghp_plain" });
  const repositoryId = await t.mutation(internal.seed.repository, {
    userId,
    fullName: options.fullName ?? "acme/widgets",
    defaultBranch: "trunk",
  });
  const { fullName: _, ...jobOptions } = options;
  const jobId = await t.mutation(internal.seed.job, {
    userId,
    repositoryId,
    prompt: "Explain the code base",
    ...jobOptions,
  });
  return { userId, repositoryId, jobId };
}

export async function jobRow(t: Fondation, jobId: Id<"jobs">) {
  const row = await t.run(async (ctx) => await ctx.db.get(jobId));
  if (row === null) throw new Error(`job ${jobId} vanished`);
  return row;
}

/** The message of what the call threw, or "no error". */
export async function errorMessage(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return "no error";
}

export async function expectError(call: Promise<unknown>, message: string): Promise<void> {
  expect(await errorMessage(call)).toContain(message);
}

/**
 * Shared pieces of the convex-test suites (two dots in the name: Convex does
 * not treat this file as a function module).
 */
import { convexTest } from "convex-test";
import { expect, vi } from "vitest";

import type { Id } from "./_generated/dataModel";
import { internal } from "./_generated/api";
import schema from "./schema";
import { modules } from "./test.setup";

export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

export function newBackend() {
  return convexTest(schema, modules);
}
export type Backend = ReturnType<typeof newBackend>;

/** Freezes the clock the functions read (`Date.now`) at `at`. */
export function setNow(at: number): void {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(at);
}

/** The `code` of a refusal (a ConvexError), or a description of what was thrown instead. */
export async function refusalCode(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    const data = (error as { data?: unknown }).data;
    if (typeof data === "object" && data !== null && "code" in data) {
      return String((data as { code: unknown }).code);
    }
    return `not a refusal: ${String(error)}`;
  }
  return "no error";
}

export async function expectRefusal(call: Promise<unknown>, code: string): Promise<void> {
  expect(await refusalCode(call)).toBe(code);
}

export async function enqueue(
  t: Backend,
  overrides: {
    maxAttempts?: number;
    runAt?: number;
    repositoryUrl?: string;
    userId?: Id<"users">;
  } = {},
): Promise<Id<"jobs">> {
  return await t.mutation(internal.jobs.enqueue, {
    repositoryUrl: overrides.repositoryUrl ?? "https://example.test/acme/widgets.git",
    prompt: "Explain the code base",
    language: "fr",
    ...overrides,
  });
}

export async function job(t: Backend, jobId: Id<"jobs">) {
  const row = await t.query(internal.jobs.get, { jobId });
  if (row === null) throw new Error(`job ${jobId} vanished`);
  return row;
}

/** A validator in the JSON form Convex exports (`.json`, absent from its public types). */
export type ValidatorJson = { type: string; value?: unknown; tableName?: string };

export function tableValidatorJson(table: { validator: unknown }): ValidatorJson {
  return (table.validator as { json: ValidatorJson }).json;
}

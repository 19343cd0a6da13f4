/**
 * The project's real convex/ functions, loaded into convex-test: the backend
 * the emulator serves.
 */
import { convexTest } from "convex-test";

import schema from "../../../convex/schema";
import { modules } from "../../../convex/test.setup";

export function newBackend() {
  return convexTest(schema, modules);
}

export type Backend = ReturnType<typeof newBackend>;

/** The schema's tables: what a snapshot holds. */
export const TABLE_NAMES = Object.keys(schema.tables).sort() as (keyof typeof schema.tables &
  string)[];

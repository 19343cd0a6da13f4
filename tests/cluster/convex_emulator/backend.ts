/**
 * The function sets the emulator can serve, each loaded into convex-test:
 * - `project`: the project's own convex/ (the default);
 * - `fondation`: the fake of Fondation's own functions in
 *   tests/fakes/fondation_convex/, so the bridge is tested against the
 *   functions a Fondation deployment really has.
 */
import { convexTest, type TestConvex } from "convex-test";
import type { GenericSchema, SchemaDefinition } from "convex/server";

import schema from "../../../convex/schema";
import { modules } from "../../../convex/test.setup";
import fondationSchema from "../../fakes/fondation_convex/schema";
import { modules as fondationModules } from "../../fakes/fondation_convex/test.setup";

type FunctionSet = {
  schema: SchemaDefinition<GenericSchema, boolean>;
  modules: Record<string, () => Promise<unknown>>;
};

export const FUNCTION_SETS = {
  project: { schema, modules },
  fondation: { schema: fondationSchema, modules: fondationModules },
} satisfies Record<string, FunctionSet>;
export type FunctionSetName = keyof typeof FUNCTION_SETS;

export function isFunctionSetName(name: string): name is FunctionSetName {
  return Object.hasOwn(FUNCTION_SETS, name);
}

/** The project's functions, typed: what the emulator's own tests use. */
export function newBackend() {
  return convexTest(schema, modules);
}
export type Backend = ReturnType<typeof newBackend>;

/** A backend of any function set; callers see it through Convex's generic types. */
export type AnyBackend = TestConvex<SchemaDefinition<GenericSchema, boolean>>;

export function newBackendOf(name: FunctionSetName): AnyBackend {
  const set: FunctionSet = FUNCTION_SETS[name];
  return convexTest(set.schema, set.modules);
}

/** The set's tables: what a snapshot holds. */
export function tableNames(name: FunctionSetName): string[] {
  return Object.keys(FUNCTION_SETS[name].schema.tables).sort();
}

/**
 * Whether `module:function` is a public function of the set: callers without
 * the deploy key may run only those, as on Convex.
 */
export async function isPublicFunction(name: FunctionSetName, path: string): Promise<boolean> {
  const [modulePath = "", exportName = "default"] = path.split(":");
  const load = (FUNCTION_SETS[name].modules as Record<string, () => Promise<unknown>>)[
    `./${modulePath}.ts`
  ];
  if (load === undefined) return false;
  const exported = ((await load()) as Record<string, unknown>)[exportName];
  return typeof exported === "function" && (exported as { isPublic?: unknown }).isPublic === true;
}

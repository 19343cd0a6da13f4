/**
 * The project's convex/ can be installed over a Fondation deployment: its
 * schema accepts every row Fondation's schema accepts, and every public
 * function of Fondation's (as the fake in tests/fakes/fondation_convex/
 * states them, from DESIGN.md §6) exists here, of the same kind, taking
 * every argument Fondation's callers pass.
 */
import { describe, expect, test } from "vitest";

import fondationSchema from "../tests/fakes/fondation_convex/schema";
import { modules as fondationModules } from "../tests/fakes/fondation_convex/test.setup";
import { JOB_STATUSES } from "./lib/validators";
import schema from "./schema";
import { tableValidatorJson, type ValidatorJson } from "./test.helpers";
import { modules } from "./test.setup";

type Json = ValidatorJson;
type Field = { fieldType: Json; optional: boolean };

/** Why `ours` would refuse a value `theirs` accepts, or nothing when it would not. */
function refusals(ours: Json, theirs: Json, path: string): string[] {
  if (ours.type === "any") return [];
  if (theirs.type === "union") {
    return (theirs.value as Json[]).flatMap((member) => refusals(ours, member, path));
  }
  if (ours.type === "union") {
    const fits = (ours.value as Json[]).some(
      (member) => refusals(member, theirs, path).length === 0,
    );
    return fits ? [] : [`${path}: ${JSON.stringify(theirs)} fits no member of the union`];
  }
  if (ours.type !== theirs.type) return [`${path}: ${ours.type}, Fondation has ${theirs.type}`];
  switch (theirs.type) {
    case "literal":
      return ours.value === theirs.value ? [] : [`${path}: lacks ${JSON.stringify(theirs.value)}`];
    case "id":
      return ours.tableName === theirs.tableName ? [] : [`${path}: id of ${ours.tableName}`];
    case "array":
      return refusals(ours.value as Json, theirs.value as Json, `${path}[]`);
    case "object":
      return objectRefusals(
        ours.value as Record<string, Field>,
        theirs.value as Record<string, Field>,
        path,
      );
    default:
      return [];
  }
}

function objectRefusals(
  ours: Record<string, Field>,
  theirs: Record<string, Field>,
  path: string,
): string[] {
  const problems: string[] = [];
  for (const [name, field] of Object.entries(theirs)) {
    const mine = ours[name];
    if (mine === undefined) {
      problems.push(`${path}.${name}: missing`);
      continue;
    }
    if (field.optional && !mine.optional) problems.push(`${path}.${name}: required here`);
    problems.push(...refusals(mine.fieldType, field.fieldType, `${path}.${name}`));
  }
  for (const [name, field] of Object.entries(ours)) {
    if (!(name in theirs) && !field.optional)
      problems.push(`${path}.${name}: required, Fondation lacks it`);
  }
  return problems;
}

type Registered = {
  isPublic?: boolean;
  isQuery?: boolean;
  isMutation?: boolean;
  isAction?: boolean;
  exportArgs?: () => string;
};

/** `module:function` → the registered public function, for a modules map. */
async function publicFunctions(
  map: Record<string, () => Promise<unknown>>,
): Promise<Map<string, Registered>> {
  const found = new Map<string, Registered>();
  for (const [file, load] of Object.entries(map)) {
    const module = file.replace(/^\.\//, "").replace(/\.ts$/, "");
    for (const [name, exported] of Object.entries((await load()) as Record<string, unknown>)) {
      const fn = exported as Registered;
      if (typeof exported === "function" && fn.isPublic === true)
        found.set(`${module}:${name}`, fn);
    }
  }
  return found;
}

function kindOf(fn: Registered): string {
  return fn.isQuery ? "query" : fn.isMutation ? "mutation" : fn.isAction ? "action" : "?";
}

describe("installing over a Fondation deployment", () => {
  test("every Fondation table and field is here and accepts what Fondation stores", () => {
    const problems: string[] = [];
    const ours: Record<string, { validator: unknown }> = schema.tables;
    for (const [table, definition] of Object.entries(fondationSchema.tables)) {
      const mine = ours[table];
      if (mine === undefined) {
        problems.push(`${table}: missing`);
        continue;
      }
      problems.push(...refusals(tableValidatorJson(mine), tableValidatorJson(definition), table));
    }
    expect(problems).toEqual([]);
  });

  test("every public Fondation function is here, same kind, taking Fondation's arguments", async () => {
    const theirs = await publicFunctions(fondationModules);
    const ours = await publicFunctions(modules);
    expect(theirs.size).toBeGreaterThanOrEqual(17);
    const problems: string[] = [];
    for (const [path, fn] of theirs) {
      const mine = ours.get(path);
      if (mine === undefined) {
        problems.push(`${path}: missing`);
        continue;
      }
      if (kindOf(mine) !== kindOf(fn))
        problems.push(`${path}: ${kindOf(mine)}, Fondation's is a ${kindOf(fn)}`);
      const args = (f: Registered) => JSON.parse(f.exportArgs?.() ?? "{}") as Json;
      problems.push(...refusals(args(mine), args(fn), path));
    }
    expect(problems).toEqual([]);
  });

  test("the check sees a difference", () => {
    const theirs = tableValidatorJson(fondationSchema.tables.jobs);
    const narrowed = JSON.parse(JSON.stringify(tableValidatorJson(schema.tables.jobs))) as {
      value: Record<string, Field>;
    };
    delete narrowed.value.lockedBy;
    narrowed.value.status = { fieldType: { type: "literal", value: "pending" }, optional: false };
    narrowed.value.extra = { fieldType: { type: "string" }, optional: false };
    expect(refusals(narrowed as unknown as Json, theirs, "jobs")).toEqual([
      ...JOB_STATUSES.filter((status) => status !== "pending").map(
        (status) => `jobs.status: lacks "${status}"`,
      ),
      "jobs.lockedBy: missing",
      "jobs.extra: required, Fondation lacks it",
    ]);
  });
});

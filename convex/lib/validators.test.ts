import { describe, expect, test } from "vitest";

import checkedIn from "../../contracts/convex-literals.json?raw";
import fondationSchema, {
  DOC_KINDS as FONDATION_DOC_KINDS,
  JOB_STATUSES as FONDATION_JOB_STATUSES,
  LOG_LEVELS as FONDATION_LOG_LEVELS,
} from "../../tests/fakes/fondation_convex/schema";
import schema from "../schema";
import { tableValidatorJson } from "../test.helpers";
import {
  ACTIVE_STATUSES,
  DOC_KINDS,
  HEARTBEAT_STATUSES,
  JOB_STATUSES,
  LOG_LEVELS,
  TERMINAL_STATUSES,
  literalsFileText,
} from "./validators";

describe("the shared literals", () => {
  test("contracts/convex-literals.json is current (else: npm run literals)", () => {
    expect(checkedIn).toBe(literalsFileText());
  });

  test("are Fondation's", () => {
    expect([...JOB_STATUSES].sort()).toEqual([...FONDATION_JOB_STATUSES].sort());
    expect([...DOC_KINDS].sort()).toEqual([...FONDATION_DOC_KINDS].sort());
    expect([...LOG_LEVELS].sort()).toEqual([...FONDATION_LOG_LEVELS].sort());
  });

  test("every status is pending, active or terminal, exactly once", () => {
    const partition = ["pending", ...ACTIVE_STATUSES, ...TERMINAL_STATUSES];
    expect([...partition].sort()).toEqual([...JOB_STATUSES].sort());
    expect(new Set(partition).size).toBe(partition.length);
    for (const status of HEARTBEAT_STATUSES) expect(ACTIVE_STATUSES).toContain(status);
  });

  test("are what the schema's validators accept", () => {
    const members = (table: { validator: unknown }, field: string): unknown[] => {
      const fields = tableValidatorJson(table).value as Record<
        string,
        { fieldType: { value: { value: unknown }[] } }
      >;
      return fields[field]!.fieldType.value.map((literal) => literal.value);
    };
    expect(members(schema.tables.jobs, "status")).toEqual([...JOB_STATUSES]);
    expect(members(schema.tables.docs, "kind")).toEqual([...DOC_KINDS]);
    expect(members(schema.tables.jobLogs, "level")).toEqual([...LOG_LEVELS]);
    expect(members(fondationSchema.tables.jobs, "status")).toEqual([...FONDATION_JOB_STATUSES]);
  });
});

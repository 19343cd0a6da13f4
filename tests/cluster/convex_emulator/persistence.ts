/**
 * Saving the emulator's database to a file and loading it back, so the
 * emulator can be killed and restarted (an outage) without losing data.
 *
 * convex-test keeps its database in memory and offers no way to insert a
 * document under a given id, yet clients hold ids across an outage (the
 * operator names resources after job ids). Ids stay stable because
 * convex-test derives them from one counter shared by all tables, in insert
 * order: restoring re-inserts the saved documents in id order, filling the
 * gaps that deleted documents left with placeholder inserts (deleted again
 * at once), and checks that every document gets its old id back. The clock
 * the database reads is set to each document's `_creationTime` while it is
 * inserted, so creation times (and index order) come back too.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

import { convexToJson, jsonToConvex, type JSONValue, type Value } from "convex/values";

import { newBackendOf, tableNames, type FunctionSetName } from "./backend";

const SNAPSHOT_VERSION = 2;
/** A table outside the schema that takes the placeholder inserts. */
const PLACEHOLDER_TABLE = "emulatorIdPlaceholders";

export type Snapshot = {
  version: number;
  /** The function set whose tables these are: a snapshot is restored into the same set. */
  functions: FunctionSetName;
  /** The id counter the next insert will use: ids are never reused. */
  nextIdCounter: number;
  tables: Record<string, JSONValue[]>;
};

/** What persistence needs of a backend: a transaction over its raw database. */
export type Transactor = {
  run<T>(work: (ctx: { db: unknown }) => Promise<T>): Promise<T>;
};

type StoredDocument = Record<string, Value> & { _id: string; _creationTime: number };

/** The untyped slice of `ctx.db` this module needs: it writes outside the schema. */
type RawDatabase = {
  insert(table: string, value: Record<string, Value>): Promise<string>;
  delete(id: string): Promise<void>;
  query(table: string): { collect(): Promise<StoredDocument[]> };
};

/** The counter part of a convex-test id (`<zero-padded counter><table>`). */
export function idCounter(id: string): number {
  const digits = /^[0-9]+/.exec(id);
  if (digits === null) throw new Error(`not a convex-test id: ${id}`);
  return Number(digits[0]);
}

function tableOf(id: string): string {
  return id.replace(/^[0-9]+/, "");
}

export async function takeSnapshot(
  backend: Transactor,
  functions: FunctionSetName = "project",
): Promise<Snapshot> {
  return await backend.run(async (ctx) => {
    const db = ctx.db as RawDatabase;
    const tables: Record<string, JSONValue[]> = {};
    for (const table of tableNames(functions)) {
      tables[table] = (await db.query(table).collect()).map((doc) => convexToJson(doc));
    }
    // An insert shows the counter's current value; it is deleted in the same
    // transaction, so the database does not change.
    const probe = await db.insert(PLACEHOLDER_TABLE, {});
    await db.delete(probe);
    return {
      version: SNAPSHOT_VERSION,
      functions,
      nextIdCounter: idCounter(probe) + 1,
      tables,
    };
  });
}

/** Loads a snapshot into a backend that has never been written to. */
export async function restoreSnapshot(
  backend: Transactor,
  snapshot: Snapshot,
  functions: FunctionSetName = "project",
): Promise<number> {
  if (snapshot.version !== SNAPSHOT_VERSION) {
    throw new Error(`snapshot version ${snapshot.version}, expected ${SNAPSHOT_VERSION}`);
  }
  if (snapshot.functions !== functions) {
    throw new Error(`snapshot of the ${snapshot.functions} functions, not of ${functions}`);
  }
  const documents: StoredDocument[] = [];
  for (const [table, rows] of Object.entries(snapshot.tables)) {
    for (const row of rows) {
      const doc = jsonToConvex(row) as StoredDocument;
      if (tableOf(doc._id) !== table)
        throw new Error(`document ${doc._id} filed under table ${table}`);
      documents.push(doc);
    }
  }
  documents.sort((a, b) => idCounter(a._id) - idCounter(b._id));

  // The first id a fresh backend hands out, learnt from a scratch one.
  const scratch = newBackendOf(functions);
  let used = (await takeSnapshot(scratch, functions)).nextIdCounter - 2;

  const realNow = Date.now;
  let clock = 0;
  // Only the database's own `Date.now()` runs while this is set: restore runs
  // before the server accepts any call.
  Date.now = () => clock;
  try {
    await backend.run(async (ctx) => {
      const db = ctx.db as RawDatabase;
      const placeholders: string[] = [];
      let lastCreationTime = 0;
      const fillUpTo = async (counter: number): Promise<void> => {
        while (used + 1 < counter) {
          // A clock behind the last creation time makes the database step
          // it by its minimum increment, the least a placeholder can take.
          clock = lastCreationTime;
          const id = await db.insert(PLACEHOLDER_TABLE, {});
          placeholders.push(id);
          used = idCounter(id);
        }
      };
      for (const doc of documents) {
        await fillUpTo(idCounter(doc._id));
        const { _id, _creationTime, ...fields } = doc;
        clock = _creationTime;
        const id = await db.insert(tableOf(_id), fields);
        if (id !== _id)
          throw new Error(`restored ${_id} as ${id}: convex-test's id scheme changed`);
        used = idCounter(id);
        lastCreationTime = _creationTime;
      }
      await fillUpTo(snapshot.nextIdCounter);
      for (const id of placeholders) await db.delete(id);
      // The commit stamps the transaction with the (whole-millisecond) clock.
      clock = realNow();
    });
  } finally {
    Date.now = realNow;
  }
  return documents.length;
}

/** Where the snapshot lives; writes replace the file atomically. */
export class SnapshotFile {
  /** The tables as last written: the id counter alone moves with every snapshot. */
  private lastTables: string | undefined;

  constructor(readonly path: string) {}

  read(): Snapshot | null {
    if (!existsSync(this.path)) return null;
    const snapshot = JSON.parse(readFileSync(this.path, "utf8")) as Snapshot;
    this.lastTables = JSON.stringify(snapshot.tables);
    return snapshot;
  }

  /** Writes the snapshot unless its tables are unchanged; returns whether it wrote. */
  write(snapshot: Snapshot): boolean {
    const tables = JSON.stringify(snapshot.tables);
    if (tables === this.lastTables) return false;
    // A rename is atomic: a kill mid-write leaves the previous file whole.
    const temporary = `${this.path}.tmp`;
    writeFileSync(temporary, JSON.stringify(snapshot));
    renameSync(temporary, this.path);
    this.lastTables = tables;
    return true;
  }
}

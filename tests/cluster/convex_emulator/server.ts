/**
 * A local stand-in for a Convex deployment: serves the project's real
 * convex/ functions, or the fake of Fondation's own functions
 * (`--functions fondation`), run by convex-test, over Convex's HTTP API, for
 * the integration tests of the operator's Convex bridge. Nothing leaves the
 * machine and no Convex account is needed.
 *
 *   vite-node tests/cluster/convex_emulator/server.ts -- [--port 0] [--host 127.0.0.1]
 *       [--state FILE] [--deploy-key KEY] [--functions project|fondation]
 *
 * The deploy key comes from --deploy-key or, better (it then stays out of the
 * process list), from CONVEX_EMULATOR_DEPLOY_KEY; the function set from
 * --functions or CONVEX_EMULATOR_FUNCTIONS. As on Convex, a call without an
 * `Authorization` header may run public functions only, and a call with one
 * must carry `Authorization: Convex <key>`. With --state, the database is saved to FILE
 * after every call that changed it, before the answer is sent, and loaded
 * from it at start: a killed emulator restarted on the same file has lost
 * nothing it acknowledged. Prints `listening on http://HOST:PORT` once ready.
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";

import { makeFunctionReference } from "convex/server";
import type { JSONValue } from "convex/values";

import {
  FUNCTION_SETS,
  isFunctionSetName,
  isPublicFunction,
  newBackendOf,
  type AnyBackend,
  type FunctionSetName,
} from "./backend";
import { restoreSnapshot, SnapshotFile, takeSnapshot } from "./persistence";
import {
  BadRequest,
  badRequestBody,
  failure,
  FUNCTION_KINDS,
  parseCall,
  success,
  type FunctionCall,
  type FunctionKind,
} from "./wire";

/** Convex accepts 16 MiB of arguments; leave room for the JSON envelope. */
const MAX_BODY_BYTES = 20 * 1024 * 1024;
const DEPLOY_KEY_ENV = "CONVEX_EMULATOR_DEPLOY_KEY";
const FUNCTIONS_ENV = "CONVEX_EMULATOR_FUNCTIONS";

type Options = {
  host: string;
  port: number;
  stateFile: string | undefined;
  deployKey: string;
  functions: FunctionSetName;
};

function readOptions(): Options {
  const { values } = parseArgs({
    // vite-node passes the script's arguments after a literal "--".
    args: process.argv.slice(2).filter((arg) => arg !== "--"),
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      state: { type: "string" },
      "deploy-key": { type: "string" },
      functions: { type: "string" },
    },
    strict: true,
  });
  const deployKey = values["deploy-key"] ?? process.env[DEPLOY_KEY_ENV] ?? "";
  if (deployKey.length === 0) {
    throw new Error(`give the deploy key with --deploy-key or ${DEPLOY_KEY_ENV}`);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`bad --port ${values.port}`);
  const functions = values.functions ?? process.env[FUNCTIONS_ENV] ?? "project";
  if (!isFunctionSetName(functions)) {
    throw new Error(
      `bad --functions ${functions}: one of ${Object.keys(FUNCTION_SETS).join(", ")}`,
    );
  }
  return { host: values.host, port, stateFile: values.state, deployKey, functions };
}

function authorized(header: string, deployKey: string): boolean {
  if (!header.startsWith("Convex ")) return false;
  const given = Buffer.from(header.slice("Convex ".length));
  const expected = Buffer.from(deployKey);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES)
      throw new BadRequest(413, "RequestTooLarge", `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function send(response: ServerResponse, httpStatus: number, body: JSONValue): void {
  const text = JSON.stringify(body);
  response.writeHead(httpStatus, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  });
  response.end(text);
}

class Emulator {
  /** Calls run one at a time, each with its save, like serialized transactions. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly backend: AnyBackend,
    private readonly functions: FunctionSetName,
    private readonly snapshots: SnapshotFile | undefined,
  ) {}

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }

  async call({ kind, path, args }: FunctionCall, admin: boolean): Promise<JSONValue> {
    return await this.run(async () => {
      let answer: JSONValue;
      try {
        if (!admin && !(await isPublicFunction(this.functions, path))) {
          // Convex's answer to an internal function called without the key.
          throw new Error(`Could not find public function for '${path}'`);
        }
        const value = await this.invoke(kind, path, args);
        answer = success(value);
      } catch (error) {
        return failure(error);
      }
      // Save before answering: an acknowledged write survives a kill.
      if (kind !== "query" && this.snapshots !== undefined) {
        this.snapshots.write(await takeSnapshot(this.backend, this.functions));
      }
      return answer;
    });
  }

  private async invoke(
    kind: FunctionKind,
    path: string,
    args: FunctionCall["args"],
  ): Promise<unknown> {
    switch (kind) {
      case "query":
        return await this.backend.query(makeFunctionReference<"query">(path), args);
      case "mutation":
        return await this.backend.mutation(makeFunctionReference<"mutation">(path), args);
      case "action":
        return await this.backend.action(makeFunctionReference<"action">(path), args);
    }
  }

  /** Waits for the calls already accepted. */
  async drain(): Promise<void> {
    await this.run(async () => undefined);
  }
}

async function handle(
  emulator: Emulator,
  deployKey: string,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  try {
    const url = new URL(request.url ?? "/", "http://emulator");
    const match = /^\/api\/(query|mutation|action)$/.exec(url.pathname);
    if (match === null) throw new BadRequest(404, "NotFound", `no route ${url.pathname}`);
    if (request.method !== "POST") throw new BadRequest(405, "MethodNotAllowed", "use POST");
    const header = request.headers.authorization;
    if (header !== undefined && !authorized(header, deployKey)) {
      throw new BadRequest(401, "BadAdminKey", "wrong `Authorization: Convex <deploy key>`");
    }
    const kind = match[1] as FunctionKind;
    if (!FUNCTION_KINDS.includes(kind)) throw new BadRequest(404, "NotFound", kind);
    const call = parseCall(kind, await readBody(request));
    send(response, 200, await emulator.call(call, header !== undefined));
  } catch (error) {
    if (error instanceof BadRequest) {
      send(response, error.httpStatus, badRequestBody(error));
    } else {
      process.stderr.write(`emulator: internal error: ${String(error)}\n`);
      send(response, 500, { code: "InternalServerError", message: String(error) });
    }
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  const backend = newBackendOf(options.functions);
  let snapshots: SnapshotFile | undefined;
  if (options.stateFile !== undefined) {
    snapshots = new SnapshotFile(options.stateFile);
    const saved = snapshots.read();
    if (saved !== null) {
      const count = await restoreSnapshot(backend, saved, options.functions);
      process.stderr.write(`emulator: restored ${count} documents from ${options.stateFile}\n`);
    }
  }
  const emulator = new Emulator(backend, options.functions, snapshots);
  const server = createServer((request, response) => {
    void handle(emulator, options.deployKey, request, response);
  });
  server.listen(options.port, options.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : options.port;
    process.stdout.write(`listening on http://${options.host}:${port}\n`);
    process.stderr.write(`emulator: serving the ${options.functions} functions\n`);
  });

  const shutdown = (): void => {
    // Finish the calls already accepted (and their saves), then go.
    server.close();
    void emulator.drain().then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`emulator: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

/**
 * Convex's HTTP API wire format (`POST /api/query|mutation|action`), as the
 * official clients speak it:
 *   request  {"path": "jobs:claimOne", "args": {...} | [{...}], "format": "json" | "convex_encoded_json"}
 *   answer   {"status": "success", "value": ..., "logLines": []}
 *         or {"status": "error", "errorMessage": "...", "errorData"?: ..., "logLines": []}
 * A function's failure is an HTTP 200 with status "error"; a request that is
 * not understood is a 4xx with {"code", "message"}, as Convex answers both.
 * Values travel in Convex's JSON encoding (convexToJson / jsonToConvex).
 */
import { convexToJson, jsonToConvex, type JSONValue, type Value } from "convex/values";

export const FUNCTION_KINDS = ["query", "mutation", "action"] as const;
export type FunctionKind = (typeof FUNCTION_KINDS)[number];

const FORMATS = ["json", "convex_encoded_json"];

export type FunctionCall = { kind: FunctionKind; path: string; args: Record<string, Value> };

export class BadRequest extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `jobs:claimOne`, `jobs.js:claimOne`, `jobs` (its default export) → `jobs:claimOne`… */
export function canonicalPath(path: string): string {
  const [modulePath = "", exportName = "default", ...rest] = path.split(":");
  if (rest.length > 0 || modulePath.length === 0 || exportName.length === 0) {
    throw new BadRequest(400, "BadFunctionPath", `invalid function path ${JSON.stringify(path)}`);
  }
  return `${modulePath.replace(/\.[cm]?[jt]s$/, "")}:${exportName}`;
}

export function parseCall(kind: FunctionKind, body: string): FunctionCall {
  let request: unknown;
  try {
    request = JSON.parse(body);
  } catch {
    throw new BadRequest(400, "BadJsonBody", "request body is not JSON");
  }
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    throw new BadRequest(400, "BadJsonBody", "request body must be a JSON object");
  }
  const { path, args, format } = request as { path?: unknown; args?: unknown; format?: unknown };
  if (typeof path !== "string")
    throw new BadRequest(400, "BadFunctionPath", "`path` must be a string");
  if (format !== undefined && (typeof format !== "string" || !FORMATS.includes(format))) {
    throw new BadRequest(400, "BadFormat", `\`format\` must be one of ${FORMATS.join(", ")}`);
  }
  // The Python client wraps the arguments in a one-element list.
  let argsValue: unknown = args ?? {};
  if (Array.isArray(argsValue)) {
    if (argsValue.length > 1)
      throw new BadRequest(400, "BadArgs", "`args` as a list must have one element");
    argsValue = argsValue[0] ?? {};
  }
  if (typeof argsValue !== "object" || argsValue === null || Array.isArray(argsValue)) {
    throw new BadRequest(400, "BadArgs", "`args` must be an object");
  }
  let decoded: Value;
  try {
    decoded = jsonToConvex(argsValue as JSONValue);
  } catch (error) {
    throw new BadRequest(400, "BadArgs", `\`args\` is not Convex JSON: ${String(error)}`);
  }
  return { kind, path: canonicalPath(path), args: decoded as Record<string, Value> };
}

export function success(value: unknown): JSONValue {
  return { status: "success", value: convexToJson((value ?? null) as Value), logLines: [] };
}

/** A function's failure; a ConvexError's `data` travels as `errorData`. */
export function failure(error: unknown): JSONValue {
  const message = error instanceof Error ? error.message : String(error);
  const answer: Record<string, JSONValue> = {
    status: "error",
    errorMessage: message,
    logLines: [],
  };
  if (isConvexError(error)) answer.errorData = convexToJson(error.data);
  return answer;
}

function isConvexError(error: unknown): error is Error & { data: Value } {
  return error instanceof Error && error.name === "ConvexError" && "data" in error;
}

export function badRequestBody(error: BadRequest): JSONValue {
  return { code: error.code, message: error.message };
}

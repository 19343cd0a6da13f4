/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * Written by hand in the shape `npx convex codegen --typescript` produces, so
 * the functions type-check and run under convex-test without a deployment.
 * Regenerating with the Convex CLI yields equivalent code: add a line to
 * `fullApi` for every new module of convex/.
 * @module
 */

import type { ApiFromModules, FilterApi, FunctionReference } from "convex/server";
import { anyApi } from "convex/server";
import type * as docs from "../docs.js";
import type * as jobs from "../jobs.js";
import type * as lib_documents from "../lib/documents.js";
import type * as lib_errors from "../lib/errors.js";
import type * as lib_lease from "../lib/lease.js";
import type * as lib_limits from "../lib/limits.js";
import type * as lib_validators from "../lib/validators.js";
import type * as queue from "../queue.js";
import type * as repositories from "../repositories.js";
import type * as users from "../users.js";

const fullApi: ApiFromModules<{
  docs: typeof docs;
  jobs: typeof jobs;
  "lib/documents": typeof lib_documents;
  "lib/errors": typeof lib_errors;
  "lib/lease": typeof lib_lease;
  "lib/limits": typeof lib_limits;
  "lib/validators": typeof lib_validators;
  queue: typeof queue;
  repositories: typeof repositories;
  users: typeof users;
}> = anyApi as any;

/**
 * A utility for referencing Convex functions in your app's public API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
export const api: FilterApi<typeof fullApi, FunctionReference<any, "public">> = anyApi as any;

/**
 * A utility for referencing Convex functions in your app's internal API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = internal.myModule.myFunction;
 * ```
 */
export const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
> = anyApi as any;

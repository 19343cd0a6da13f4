/* eslint-disable */
/**
 * Generated utilities for implementing server-side Convex query and mutation functions.
 *
 * Written by hand in the shape `npx convex codegen --typescript` produces, so
 * the functions type-check and run under convex-test without a deployment.
 * Regenerating with the Convex CLI yields equivalent code.
 * @module
 */

import {
  actionGeneric,
  httpActionGeneric,
  queryGeneric,
  mutationGeneric,
  internalActionGeneric,
  internalMutationGeneric,
  internalQueryGeneric,
} from "convex/server";
import type {
  ActionBuilder,
  HttpActionBuilder,
  MutationBuilder,
  QueryBuilder,
  GenericActionCtx,
  GenericMutationCtx,
  GenericQueryCtx,
  GenericDatabaseReader,
  GenericDatabaseWriter,
} from "convex/server";
import type { DataModel } from "./dataModel.js";

/** Define a query in this Convex app's public API. */
export const query: QueryBuilder<DataModel, "public"> = queryGeneric;

/** Define a query that is only accessible from other Convex functions and admin callers. */
export const internalQuery: QueryBuilder<DataModel, "internal"> = internalQueryGeneric;

/** Define a mutation in this Convex app's public API. */
export const mutation: MutationBuilder<DataModel, "public"> = mutationGeneric;

/** Define a mutation that is only accessible from other Convex functions and admin callers. */
export const internalMutation: MutationBuilder<DataModel, "internal"> = internalMutationGeneric;

/** Define an action in this Convex app's public API. */
export const action: ActionBuilder<DataModel, "public"> = actionGeneric;

/** Define an action that is only accessible from other Convex functions and admin callers. */
export const internalAction: ActionBuilder<DataModel, "internal"> = internalActionGeneric;

/** Define an HTTP action. */
export const httpAction: HttpActionBuilder = httpActionGeneric;

/** The context of a query function. */
export type QueryCtx = GenericQueryCtx<DataModel>;

/** The context of a mutation function. */
export type MutationCtx = GenericMutationCtx<DataModel>;

/** The context of an action function. */
export type ActionCtx = GenericActionCtx<DataModel>;

/** An interface to read from the database within Convex query functions. */
export type DatabaseReader = GenericDatabaseReader<DataModel>;

/** An interface to read from and write to the database within Convex mutation functions. */
export type DatabaseWriter = GenericDatabaseWriter<DataModel>;

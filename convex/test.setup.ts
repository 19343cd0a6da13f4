/**
 * The function modules of convex/, for convex-test: the vitest suites and the
 * HTTP emulator of tests/cluster/convex_emulator/ both load the backend
 * through this map. Files with two dots (tests, this file) are not modules.
 */
export const modules: Record<string, () => Promise<unknown>> = import.meta.glob([
  "./**/*.ts",
  "!./**/*.*.ts",
]);

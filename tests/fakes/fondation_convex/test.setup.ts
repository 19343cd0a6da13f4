/**
 * The fake's function modules, for convex-test: its vitest suites and the
 * HTTP emulator (`--functions fondation`) load it through this map. Files
 * with two dots (tests, this file) are not modules.
 */
export const modules: Record<string, () => Promise<unknown>> = import.meta.glob([
  "./**/*.ts",
  "!./**/*.*.ts",
]);

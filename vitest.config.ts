import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // The Convex runtime is a web-standard isolate, not Node.js.
    environment: "edge-runtime",
    include: [
      "convex/**/*.test.ts",
      "tests/cluster/convex_emulator/**/*.test.ts",
      "tests/fakes/fondation_convex/**/*.test.ts",
    ],
    // convex-test must be transformed by vite for its import.meta.glob.
    server: { deps: { inline: ["convex-test"] } },
  },
});

import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Examples and tests import the package by name, as users do: here that means the sources.
  resolve: {
    alias: [
      {
        find: /^salvo\/sim$/,
        replacement: fileURLToPath(new URL("./src/sim/index.ts", import.meta.url)),
      },
      { find: /^salvo$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
    ],
  },
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // bin/salvo.js runs the compiled CLI: build it before any test spawns it.
    globalSetup: ["test/support/build-dist.ts"],
    // End-to-end tests start HTTP servers and child processes; 2 cores in CI.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    maxWorkers: 2,
  },
});

import { defineConfig } from "vitest/config";

export default defineConfig({
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

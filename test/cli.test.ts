import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { memoryIo } from "./support/memory-io.ts";

const run = promisify(execFile);

describe("salvo CLI", () => {
  it("--version prints the package version", async () => {
    const io = memoryIo();
    expect(await runCli(["--version"], io)).toBe(0);
    expect(io.out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("an unknown command is a usage error (exit 2)", async () => {
    const io = memoryIo();
    expect(await runCli(["frobnicate"], io)).toBe(2);
    expect(io.err).toMatch(/unknown command/);
  });

  it("runs as a real process through bin/salvo.js on Node >= 22", async () => {
    const { stdout } = await run(process.execPath, ["bin/salvo.js", "--help"]);
    expect(stdout).toMatch(/Usage: salvo/);
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(22);
  });
});

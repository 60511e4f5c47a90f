import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { CliIo } from "../src/cli/io.ts";
import { runCli } from "../src/cli/main.ts";

const run = promisify(execFile);

function memoryIo(): CliIo & { out: string; err: string } {
  const io = {
    out: "",
    err: "",
    env: {},
    signal: new AbortController().signal,
    isTTY: false,
    exitCode: undefined as number | undefined,
    stdout: {
      write: (t: string) => {
        io.out += t;
      },
    },
    stderr: {
      write: (t: string) => {
        io.err += t;
      },
    },
  };
  return io;
}

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

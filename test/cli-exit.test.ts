// Exit codes mean something, and the README's table says what: each code the CLI exits with is
// there, and a reader that goes away (`salvo sim --help | head`) ends the process quietly with
// the code a shell gives a process killed by SIGPIPE.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { EXIT_BUDGET_EXCEEDED } from "../src/cli/commands/run.ts";
import {
  EXIT_BROKEN_PIPE,
  EXIT_INTERNAL,
  EXIT_INTERRUPTED,
  EXIT_OK,
  EXIT_SOME_FAILED,
  EXIT_USAGE,
} from "../src/cli/io.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

describe("exit codes", () => {
  it("a reader that went away before the output: exit 141, no error printed", async () => {
    const child = spawn(process.execPath, ["bin/salvo.js", "sim", "--help"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    // The reader leaves at once, before the process has started (as `| head -0` would).
    child.stdout.destroy();
    let err = "";
    child.stderr.on("data", (chunk: Buffer) => (err += chunk));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code, err).toBe(EXIT_BROKEN_PIPE);
    expect(err).toBe("");
  });

  it("the README's table names every code salvo run exits with, with its meaning", async () => {
    const readme = (await readFile(new URL("../README.md", import.meta.url), "utf8")).replace(
      /\s+/g,
      " ",
    );
    for (const [code, meaning] of [
      [EXIT_OK, "every item succeeded"],
      [EXIT_SOME_FAILED, "some failed"],
      [EXIT_USAGE, "usage or input error"],
      [EXIT_BUDGET_EXCEEDED, "a budget stopped the run"],
      [EXIT_INTERNAL, "an internal error"],
      [EXIT_INTERRUPTED, "interrupted"],
      [EXIT_BROKEN_PIPE, "the reader of the output went away"],
    ] as const)
      expect(readme, `${code} ${meaning}`).toContain(`${code} ${meaning}`);
  });
});

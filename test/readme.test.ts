// The README is part of the interface: its example input lines run as shown, and every option
// it mentions exists in the command's --help.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { memoryIo } from "./support/memory-io.ts";

const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");

describe("README", () => {
  const blocks = [...readme.matchAll(/```jsonl\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");

  it("shows one example input line per shape", () => {
    expect(blocks).toHaveLength(3);
  });

  it.each(blocks.map((block, i) => [i, block]))(
    "example input %i runs with salvo run --sim",
    async (_i, block) => {
      const dir = await mkdtemp(join(tmpdir(), "salvo-readme-"));
      try {
        const input = join(dir, "requests.jsonl");
        await writeFile(input, block);
        const io = memoryIo();
        const code = await runCli(
          [
            "run",
            input,
            "--output",
            join(dir, "results.jsonl"),
            "--sim",
            "claims-demo",
            "--progress",
            "none",
          ],
          io,
        );
        expect(code, io.err).toBe(0);
        expect(io.out).toContain("1 succeeded, 0 failed");
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("every option it mentions for a command exists in that command's --help", async () => {
    const help: Record<string, string> = {};
    for (const command of [
      "run",
      "sim",
      "demo",
      "probe",
      "verify",
      "pipeline",
      "serve",
      "cache stats",
      "cache clear",
    ]) {
      const io = memoryIo();
      await runCli([...command.split(" "), "--help"], io);
      help[command] = io.out;
    }
    const all = Object.values(help).join("\n");
    const mentioned = new Set([...readme.matchAll(/(?<![\w-])--[a-z][a-z-]+/g)].map((m) => m[0]));
    const unknown = [...mentioned].filter((flag) => !all.includes(flag) && flag !== "--help");
    expect(unknown).toEqual([]);
  });

  it("the npm scripts it names exist", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    for (const [, script] of readme.matchAll(/npm (?:run )?(start|test|bench[\w:]*)/g)) {
      expect(pkg.scripts[script ?? ""], script).toBeTypeOf("string");
    }
  });
});

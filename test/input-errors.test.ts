// Input lines that used to freeze, crash or waste calls now end as errors at their file:line,
// through `salvo run` against the simulator: a long run of one character (a quadratic token
// estimate), JSON nested 100k deep (a stack overflow), `stream: true` (billed five times with no
// usage), `max_tokens: -1`, `messages: [null]`, bytes that are not UTF-8, a custom_id repeated
// after an invalid line.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import type { SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-input-errors-", { output: { tokens: 4 } });

const line = (id: string, body: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m", max_tokens: 8, messages: [{ role: "user", content: `hi ${id}` }], ...body },
  });

type Run = { code: number; out: string; err: string };
async function salvo(sim: SimHandle, input: string, ...extra: string[]): Promise<Run> {
  const io = memoryIo({ OPENAI_API_KEY: "sk-test-input-errors-not-a-key" });
  const args = ["run", input, "-o", join(ws.dir, "out.jsonl"), "--base-url", sim.baseUrl];
  const code = await runCli([...args, "--progress", "none", "--max-attempts", "2", ...extra], io);
  return { code, out: io.out, err: io.err };
}

type OutputLine = { custom_id: string | null; error: { code: string; message: string } | null };
async function output(): Promise<OutputLine[]> {
  const text = await readFile(join(ws.dir, "out.jsonl"), "utf8");
  return text
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as OutputLine);
}

async function inputOf(...lines: Array<string | Buffer>): Promise<string> {
  const file = join(ws.dir, "in.jsonl");
  const parts = lines.flatMap((l) => [Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from("\n")]);
  await writeFile(file, Buffer.concat(parts));
  return file;
}

describe("salvo run: input that froze, crashed or wasted calls is an error at its line", () => {
  it("a 1 MB run of one character is estimated at once (the quadratic estimate took minutes, deaf to Ctrl-C)", async () => {
    const sim = await ws.simulator();
    const input = await inputOf(
      line("long", { messages: [{ role: "user", content: "A".repeat(1_000_000) }] }),
      line("short"),
    );
    // --dry-run estimates every line and calls nothing.
    const run = await salvo(sim, input, "--dry-run");
    expect(run.code, run.err).toBe(0);
    expect(run.out).toContain("2 to call");
    expect(run.out).toContain("tokens: 125k in"); // 8 `A`s per token
    expect(sim.stats().arrivals).toBe(0);
  });

  it("JSON nested 100k deep, alone or in a body: an input error at file:line, no crash, no call", async () => {
    const sim = await ws.simulator();
    const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    const input = await inputOf(
      line("ok"),
      deep(100_000),
      line("deep-body", { tools: "DEEP" }).replace('"DEEP"', deep(50_000)),
    );
    const run = await salvo(sim, input);
    expect(run.code, run.err).toBe(1);
    expect(run.err).not.toContain("internal error");
    const lines = await output();
    expect(lines.map((l) => l.error?.code ?? "ok")).toEqual([
      "ok",
      "SALVO_INPUT_INVALID",
      "SALVO_INPUT_INVALID",
    ]);
    expect(lines[1]!.error!.message).toMatch(
      new RegExp(`^${input}:2: JSON: expected JSON nested at most 128`),
    );
    expect(lines[2]!.error!.message).toMatch(new RegExp(`^${input}:3: JSON: expected JSON nested`));
    expect(lines[2]!.custom_id).toBeNull();
    expect(sim.stats().arrivals).toBe(1);
  });

  it('"stream": true is refused at its line, even with --strict, and never called (it was billed five times)', async () => {
    const sim = await ws.simulator();
    const input = await inputOf(line("a"), line("streamed", { stream: true }));
    const strict = await salvo(sim, input, "--strict");
    expect(strict.code).toBe(2);
    expect(strict.err).toContain(`${input}:2: body.stream: expected false or absent`);
    expect(sim.stats().arrivals).toBe(0);
    const run = await salvo(sim, input);
    expect(run.code).toBe(1);
    const lines = await output();
    expect(lines[1]).toMatchObject({
      custom_id: "streamed",
      error: { code: "SALVO_INPUT_INVALID" },
    });
    expect(sim.stats().arrivals).toBe(1);
  });

  it("max_tokens: -1, messages: [null] and bytes that are not UTF-8: each an error naming file:line", async () => {
    const sim = await ws.simulator();
    const latin1 = Buffer.from(line("latin1", { messages: [{ role: "user", content: "caf_" }] }));
    latin1[latin1.indexOf("caf_") + 3] = 0xe9; // é in Latin-1, not UTF-8
    const input = await inputOf(
      line("negative", { max_tokens: -1 }),
      line("null-message", { messages: [null] }),
      latin1,
      line("fine"),
    );
    const run = await salvo(sim, input);
    expect(run.code, run.err).toBe(1);
    const lines = await output();
    expect(lines.map((l) => [l.custom_id, l.error?.message ?? "ok"])).toEqual([
      ["negative", `${input}:1: body.max_tokens: expected a whole number of tokens >= 1, got -1`],
      [
        "null-message",
        `${input}:2: body.messages[0]: expected a message object {role, content}, got null`,
      ],
      [
        "latin1",
        expect.stringMatching(
          new RegExp(
            `^${input}:3: line: expected UTF-8 text, got a byte that is not UTF-8 at byte \\d+`,
          ),
        ),
      ],
      ["fine", "ok"],
    ]);
    expect(sim.stats().arrivals).toBe(1);
  });

  it("a custom_id repeated after an invalid line with that id is refused before any call", async () => {
    const sim = await ws.simulator();
    const invalid = JSON.stringify({ ...JSON.parse(line("dup")), method: "GET" });
    const input = await inputOf(invalid, line("other"), line("dup"));
    const run = await salvo(sim, input);
    expect(run.code).toBe(2);
    expect(run.err).toContain(`${input}:3: custom_id "dup" already used at line 1`);
    expect(sim.stats().arrivals).toBe(0);
  });
});

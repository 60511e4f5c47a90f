// The API key never reaches a file Salvo writes or anything it prints, whatever the variable
// holding it is called and whatever the server echoes: a simulator that puts the caller's key in
// every request-id header, at the end of every answer and in the message of some 401s, a run with
// every file option (--audit with full content, --cache, --report, --progress json) interrupted
// (leaving its journal) and resumed. Every file under the test's directory is scanned, and both
// runs' stdout and stderr.
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import type { SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

/** Distinctive, and under a variable whose name says nothing (not *_KEY, *_TOKEN, ...). */
const KEY = "sk-proj-LEAKCHECK-7f3a9c1e5b2d4f6a8c0e2b4d6f8a1c3e";
const ENV = { MYCRED: KEY };
const ws = useWorkspace("salvo-secrets-");

const ECHO = { echoKeyHeader: true, echoKeyAnswer: true, pEchoKeyError: 0.25 };

function openAiLines(n: number): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `item-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      // temperature 0: shareable, so the cache stores the (echoing) answers.
      body: {
        model: "gpt-4o-mini",
        temperature: 0,
        max_tokens: 16,
        messages: [{ role: "user", content: `question ${i}` }],
      },
    }),
  ).join("\n");
}

function anthropicLines(n: number): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `a-${i}`,
      params: {
        model: "claude-haiku-4-5",
        max_tokens: 16,
        messages: [{ role: "user", content: `question ${i}` }],
      },
    }),
  ).join("\n");
}

/** Every file under `root`, with its bytes and mode. */
async function everyFile(
  root: string,
): Promise<Array<{ path: string; bytes: Buffer; mode: number }>> {
  const out: Array<{ path: string; bytes: Buffer; mode: number }> = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    try {
      out.push({ path, bytes: await readFile(path), mode: (await stat(path)).mode & 0o777 });
    } catch (error) {
      // A temporary file renamed into place between the listing and the read: read where it lands.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
  return out;
}

function expectNoKey(where: string, text: string | Buffer): void {
  const haystack = typeof text === "string" ? text : text.toString("latin1");
  expect(haystack.includes(KEY), `the key in ${where}`).toBe(false);
}

type Printed = { code: number; out: string; err: string };

/**
 * `salvo run` with every file option; with `stopAfter`, Ctrl-C (the io's signal) once that many
 * answers have come back, as the JSON progress lines say.
 */
async function run(sim: SimHandle, input: string, stopAfter?: number): Promise<Printed> {
  const controller = new AbortController();
  const io = memoryIo(ENV, controller.signal);
  let answered = 0;
  const write = io.stderr.write;
  io.stderr.write = (text: string) => {
    answered += text.split('"event":"succeeded"').length - 1;
    if (stopAfter !== undefined && answered >= stopAfter && !controller.signal.aborted)
      controller.abort(new Error("received SIGINT"));
    return write(text);
  };
  const code = await runCli(
    [
      "run",
      input,
      "-o",
      join(ws.dir, `${input.endsWith("a.jsonl") ? "a-" : ""}out.jsonl`),
      "--base-url",
      input.endsWith("a.jsonl") ? sim.origin : sim.baseUrl,
      "--api-key-env",
      "MYCRED",
      "--audit",
      join(ws.dir, "calls.jsonl"),
      "--audit-content",
      "full",
      "--cache",
      join(ws.dir, "cache"),
      "--report",
      join(ws.dir, "report.json"),
      "--progress",
      "json",
      "--concurrency",
      "2",
      "--max-attempts",
      "2",
      "--grace",
      "200ms",
    ],
    io,
  );
  return { code, out: io.out, err: io.err };
}

describe("secrets: the key in use appears in no file Salvo writes and nothing it prints", () => {
  it("with --api-key-env MYCRED against a server echoing the key in headers, answers and 401s, interrupted and resumed, with --audit, --cache, --report and --progress json", async () => {
    const sim = await ws.simulator({ latency: { ttftMs: 2 }, output: { tokens: 6 }, faults: ECHO });
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiLines(40));
    // The cache directory exists already, readable by others: its files must still be private.
    await mkdir(join(ws.dir, "cache"), { mode: 0o755 });
    await chmod(join(ws.dir, "cache"), 0o755);

    const first = await run(sim, input, 8);
    expect(first.code, first.err).toBe(130);
    const afterInterrupt = await everyFile(ws.dir);
    expect(afterInterrupt.map((f) => f.path)).toContain(join(ws.dir, "out.jsonl.journal"));
    for (const file of afterInterrupt) expectNoKey(file.path, file.bytes);

    const second = await run(sim, input);
    expect(second.code, second.err).toBe(1); // the echoed 401s failed their items
    const inputText = await readFile(input);
    await writeFile(join(ws.dir, "a.jsonl"), anthropicLines(12));
    const anthropic = await run(sim, join(ws.dir, "a.jsonl"));
    expect([0, 1]).toContain(anthropic.code);

    // The server did echo the key, in every place: what Salvo kept says so, masked.
    const output = await readFile(join(ws.dir, "out.jsonl"), "utf8");
    const lines = output
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(40);
    const failed = lines.filter((l) => l.error !== null);
    expect(failed.length).toBeGreaterThan(0);
    for (const line of failed) expect(line.error.message).toContain("Bearer [REDACTED]");
    for (const line of lines.filter((l) => l.error === null)) {
      expect(line.response.request_id).toMatch(/ Bearer \[REDACTED\]$/);
      expect(line.response.body.choices[0].message.content).toMatch(/ Bearer \[REDACTED\]$/);
    }
    expect(await readFile(join(ws.dir, "a-out.jsonl"), "utf8")).toContain("[REDACTED]");
    expect(await readFile(join(ws.dir, "calls.jsonl"), "utf8")).toContain("[REDACTED]");

    for (const printed of [first, second, anthropic]) {
      expectNoKey("stdout", printed.out);
      expectNoKey("stderr", printed.err);
    }
    const files = await everyFile(ws.dir);
    expect(files.some((f) => f.path.includes(`${join(ws.dir, "cache")}/`))).toBe(true);
    for (const file of files) {
      expectNoKey(file.path, file.bytes);
      // Every file Salvo wrote is private (the test wrote the inputs).
      if (![input, join(ws.dir, "a.jsonl")].includes(file.path))
        expect(file.mode, `${file.path} mode`).toBe(0o600);
    }
    expect(inputText.includes(KEY)).toBe(false);
  });
});

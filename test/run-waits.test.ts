// Waits a user cannot sit through are refused, and limits below one request a minute still run
// (issue 14, points 8 and 15), end to end through `salvo run` against the simulator.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { chatLines } from "./support/chat-lines.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-run-waits-");
const KEY = "sk-waits-test-not-a-key";

function lines(n: number): string {
  return chatLines(n, { tag: "c", maxTokens: 8, content: (i) => `q${i}` });
}

async function run(n: number, args: string[], sim: { baseUrl: string }) {
  const input = join(ws.dir, "in.jsonl");
  const output = join(ws.dir, "out.jsonl");
  await writeFile(input, lines(n));
  const io = memoryIo({ OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl });
  const code = await runCli(["run", input, "-o", output, "--progress", "none", ...args], io);
  const out = (await readFile(output, "utf8"))
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  return { code, io, out };
}

describe("salvo run and the provider's Retry-After", () => {
  it("a server that answers every extra call 429 with Retry-After: 3600 fails those calls at once, typed, instead of sleeping an hour", async () => {
    // One call in the server at a time; every other arrival is a 429 asking for an hour.
    const sim = await ws.simulator({
      // The first call is served 2 s: the other two arrive while it is in the server.
      latency: { ttftMs: 2_000, msPerToken: 0 },
      output: { tokens: 4 },
      capacity: { rejectAbove: 1, retryAfterMs: 3_600_000 },
    });
    const { code, io, out } = await run(3, ["--concurrency", "3"], sim);
    expect(code, io.err).toBe(1);
    const failed = out.filter((line) => line.error !== null);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const line of failed) {
      expect(line.error.code).toBe("SALVO_RETRY_AFTER_TOO_LONG");
      expect(line.error.message).toMatch(/3600|1h|60m/);
    }
    // Each refused call was sent once: no retry slept on the hour.
    expect(sim.stats({ timeline: false }).arrivals).toBe(3);
  });

  it("--max-retry-after 1s: a 5 s Retry-After, which the default (2m) would wait out, fails at once", async () => {
    const sim = await ws.simulator({
      latency: { ttftMs: 2_000, msPerToken: 0 },
      output: { tokens: 4 },
      capacity: { rejectAbove: 1, retryAfterMs: 5_000 },
    });
    const { code, io, out } = await run(3, ["--concurrency", "3", "--max-retry-after", "1s"], sim);
    expect(code, io.err).toBe(1);
    const failed = out.filter((line) => line.error !== null);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const line of failed) expect(line.error.code).toBe("SALVO_RETRY_AFTER_TOO_LONG");
    expect(sim.stats({ timeline: false }).arrivals).toBe(3);
  });

  it("--max-retry-after is a setting: refused when it is not a duration, named", async () => {
    const sim = await ws.simulator({ output: { tokens: 4 } });
    const io = memoryIo({ OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl });
    await writeFile(join(ws.dir, "in.jsonl"), lines(1));
    const code = await runCli(
      ["run", join(ws.dir, "in.jsonl"), "-o", join(ws.dir, "o.jsonl"), "--max-retry-after", "soon"],
      io,
    );
    expect(code).toBe(2);
    expect(io.err).toMatch(/--max-retry-after: expected a duration/);
  });
});

describe("salvo run below one request a minute", () => {
  it("--rpm 0.5 admits its first call at once and answers it (it used to fail SALVO_REQUEST_TOO_LARGE)", async () => {
    const sim = await ws.simulator({
      latency: { ttftMs: 5, msPerToken: 0 },
      output: { tokens: 4 },
    });
    const { code, io, out } = await run(1, ["--rpm", "0.5"], sim);
    expect(code, io.err).toBe(0);
    expect(out).toHaveLength(1);
    expect(out[0].error).toBeNull();
    expect(out[0].response.status_code).toBe(200);
  });
});

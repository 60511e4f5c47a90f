// Ctrl-C keeps every answer that arrives: the calls in flight finish within the grace period and
// are saved, shared (single-flight) requests included, so the rerun pays only for what was never
// answered. A grace period too long for a timer must not fire at once either.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import type { SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-run-interrupt-", {
  latency: { ttftMs: 600, msPerToken: 0 },
  output: { tokens: 4 },
});
const KEY = "sk-interrupt-test-not-a-key";

/** Resolves once the simulator has seen `n` requests arrive (it counts them as they come). */
async function arrivals(sim: SimHandle, n: number): Promise<void> {
  while (sim.stats({ timeline: false }).arrivals < n)
    await new Promise((resolve) => setTimeout(resolve, 5));
}

/** The input: chat lines, shared (temperature 0: single-flight) or samples, or embeddings. */
type Kind = "shared" | "sample" | "embeddings";

async function batch(n: number, kind: Kind | boolean): Promise<string> {
  const shape: Kind = kind === true ? "shared" : kind === false ? "sample" : kind;
  const path = join(ws.dir, "in.jsonl");
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify(
      shape === "embeddings"
        ? {
            custom_id: `c-${i}`,
            method: "POST",
            url: "/v1/embeddings",
            // embeddings always go through single-flight (they are deterministic)
            body: { model: "text-embedding-3-small", input: `passage ${i}` },
          }
        : {
            custom_id: `c-${i}`,
            method: "POST",
            url: "/v1/chat/completions",
            body: {
              model: "gpt-4o-mini",
              max_tokens: 8,
              // temperature 0: every call goes through single-flight (the defect's path)
              ...(shape === "shared" ? { temperature: 0 } : {}),
              messages: [{ role: "user", content: `question ${i}` }],
            },
          },
    ),
  );
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

describe("salvo run, interrupted", () => {
  for (const [name, kind, grace, extra] of [
    ["shared requests (temperature 0), grace 30s", "shared", "30s", []],
    ["embeddings (always shared)", "embeddings", "30s", []],
    ["samples shared by --cache-force", "sample", "30s", ["--cache", "cache", "--cache-force"]],
    ["samples, grace 1000h (longer than any timer)", "sample", "1000h", []],
  ] as const) {
    it(`answers that arrive during the grace period are kept: ${name}`, async () => {
      const sim = await ws.simulator();
      const input = await batch(20, kind);
      const output = join(ws.dir, "out.jsonl");
      const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
      const args = [
        "run",
        input,
        "-o",
        output,
        "--concurrency",
        "5",
        "--grace",
        grace,
        ...extra.map((arg) => (arg === "cache" ? join(ws.dir, "cache") : arg)),
      ];
      const stop = new AbortController();
      const io = memoryIo(env, stop.signal);
      const first = runCli([...args, "--progress", "none"], io);
      await arrivals(sim, 5);
      stop.abort(new Error("received SIGINT"));
      expect(await first, io.err).toBe(130);
      const answered = sim.stats({ timeline: false }).completions;
      expect(answered).toBe(5);
      expect(io.err).toMatch(/interrupted: finishing 5 call\(s\) in flight/);

      const rerun = memoryIo(env);
      expect(await runCli([...args, "--progress", "none"], rerun), rerun.err).toBe(0);
      // Every answer of the first run was kept: the rerun called only the other 15.
      expect(sim.stats({ timeline: false }).arrivals).toBe(20);
      const lines = (await readFile(output, "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 20 }, (_, i) => `c-${i}`));
      expect(lines.every((l) => l.error === null)).toBe(true);
    });
  }

  it("every answer kept by an interrupted run is in the cache when the run returns: no write left behind", async () => {
    const sim = await ws.simulator();
    const input = await batch(20, true);
    const output = join(ws.dir, "out.jsonl");
    const cache = join(ws.dir, "cache");
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const stop = new AbortController();
    const io = memoryIo(env, stop.signal);
    const args = ["run", input, "-o", output, "--concurrency", "5", "--cache", cache];
    const first = runCli([...args, "--progress", "none"], io);
    await arrivals(sim, 5);
    stop.abort(new Error("received SIGINT"));
    expect(await first, io.err).toBe(130);
    // At once, with nothing awaited since: the five answers are stored, no write is pending.
    const { ResponseCache } = await import("../src/cache/response-cache.ts");
    const stats = await (await ResponseCache.open(cache)).stats();
    expect(stats.entries).toBe(5);
    expect(await readdir(join(cache, "tmp"))).toEqual([]);
  });
});

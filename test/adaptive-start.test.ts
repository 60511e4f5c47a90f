// Auto concurrency starts from what is known: a run's learned limit is kept beside its output
// (or in the cache directory), keyed by endpoint and model, and the next run against them starts
// there, saying so in its summary. End to end through runBatchFile against the simulator.
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runBatchFile } from "../src/batch/run-batch-file.ts";
import { endpointKey, rememberLimit } from "../src/probe/limit-memory.ts";
import { chatLines } from "./support/chat-lines.ts";
import { useWorkspace } from "./support/workspace.ts";

// 4 hidden slots with a FIFO queue.
const ws = useWorkspace("salvo-adaptive-start-", {
  seed: 5,
  latency: { ttftMs: 20 },
  output: { tokens: 8 },
  capacity: { slots: 4 },
});

const KEY = "sk-adaptive-start-not-a-key";

function requests(n: number, tag: string): string {
  return chatLines(n, { tag, maxTokens: 8, content: (i, t) => `${t} ${i}` });
}

describe("auto concurrency's start", () => {
  it("a short job starts where the last run against the endpoint settled, and says so", async () => {
    const sim = await ws.simulator();
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const first = join(ws.dir, "first.jsonl");
    await writeFile(first, requests(160, "a"));
    const output = join(ws.dir, "out.jsonl");
    const learnt = await runBatchFile({ input: first, output, env });
    expect(learnt.status).toBe("completed");
    expect(learnt.concurrency).toMatchObject({ start: 1, source: "search" });
    expect(learnt.text).toContain("concurrency auto started from one call alone");
    // What it settled on is the controller's business (the fake-clock tests and the bench
    // measure it); here, that it is kept and used.
    const learned = learnt.concurrency?.learned;
    expect(learned).toBeGreaterThanOrEqual(1);
    // Kept beside the output, 0600, with no key in it.
    const memory = `${output}.limits.json`;
    expect(learnt.concurrency?.memory).toBe(memory);
    expect((await stat(memory)).mode & 0o777).toBe(0o600);
    expect(await readFile(memory, "utf8")).not.toContain(KEY);
    expect(learnt.text).toContain(`settled at ${learned}, kept in ${memory}`);

    // The next job on the same output file (a rerun with new lines) starts there.
    const second = join(ws.dir, "second.jsonl");
    await writeFile(second, requests(8, "b"));
    const short = await runBatchFile({ input: second, output, env, fresh: true });
    expect(short.concurrency).toMatchObject({ start: learned, source: "previous-run" });
    expect(short.text).toContain(
      `concurrency auto started at ${learned}, where the last run against this endpoint and model settled`,
    );
  });

  it("with a cache directory, the memory lives there, shared by every output", async () => {
    const sim = await ws.simulator();
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const cache = join(ws.dir, "cache");
    await rememberLimit(
      join(cache, "limits.json"),
      { endpoint: sim.baseUrl, model: "gpt-4o-mini" },
      { limit: 3, source: "probe" },
    );
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, requests(6, "c"));
    const result = await runBatchFile({ input, output: join(ws.dir, "x.jsonl"), env, cache });
    expect(result.concurrency).toMatchObject({ start: 3, source: "probe" });
    expect(result.text).toContain("concurrency auto started at 3, at salvo probe's recommendation");
    // Another model at the same endpoint has its own entry: nothing known, a search.
    expect(endpointKey({ endpoint: sim.baseUrl, model: "gpt-4o-mini" })).toContain(sim.baseUrl);
  });

  it("a fixed limit has no start to report, and limitMemory: false keeps nothing", async () => {
    const sim = await ws.simulator();
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, requests(40, "d"));
    const fixed = await runBatchFile({
      input,
      output: join(ws.dir, "f.jsonl"),
      env,
      concurrency: 4,
    });
    expect(fixed.concurrency).toBeUndefined();
    expect(fixed.text).not.toContain("concurrency auto");
    const none = await runBatchFile({
      input,
      output: join(ws.dir, "n.jsonl"),
      env,
      limitMemory: false,
    });
    expect(none.concurrency?.memory).toBeUndefined();
    await expect(stat(join(ws.dir, "n.jsonl.limits.json"))).rejects.toThrow();
  });
});

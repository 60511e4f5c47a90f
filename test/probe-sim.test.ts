// `salvo probe` end to end against the simulator: the sweep over HTTP, the recommendation, the
// rate-limit headers, and the command's output and validation.
import { afterEach, describe, expect, it } from "vitest";
import { probeCommand } from "../src/cli/commands/probe.ts";
import { ConfigError } from "../src/errors.ts";
import { recommend } from "../src/probe/knee.ts";
import { sweep } from "../src/probe/sweep.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import { type SimHandle, startSimulator } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { asTheProvider } from "./support/provider-priority.ts";

const FAKE_KEY = "sk-test-salvo-not-a-real-key";
let sim: SimHandle | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

const request = {
  path: "/chat/completions",
  body: { model: "gpt-4o-mini", max_tokens: 8, messages: [{ role: "user", content: "probe" }] },
};

describe("salvo probe against the simulator", () => {
  it("hidden slots 4: recommends 3 to 6, and the sweep stops on the plateau", async () => {
    // 100 ms answers: long enough that a loaded machine's client overhead (a few ms a call on
    // 2 shared cores) does not blur the plateau.
    sim = await startSimulator({
      latency: { ttftMs: 100 },
      output: { tokens: 8 },
      capacity: { slots: 4 },
    });
    const provider = new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY });
    // The simulator (in this thread, with the client) runs ahead of the machine's other work: a
    // stall of a few hundred ms on a busy machine lifted one level's mean latency enough that the
    // next read as growth, and the sweep ran out of levels before it saw two flat ones.
    const result = await asTheProvider(() => sweep({ provider, request, maxRequests: 200 }));
    const rec = recommend(result);
    console.info(
      result.levels
        .map(
          (l) =>
            `${l.concurrency}: ${l.throughputRps.toFixed(1)}/s (server ${l.serverRps?.toFixed(1)}/s) p50 ${Math.round(l.p50Ms)}`,
        )
        .join("; "),
      `-> ${rec.flags}`,
    );
    expect(rec.concurrency).toBeGreaterThanOrEqual(3);
    expect(rec.concurrency).toBeLessThanOrEqual(6);
    expect(result.stoppedBecause).toBe("plateau");
    expect(result.requestsSent).toBeLessThanOrEqual(200);
    expect(sim.stats().maxInService).toBeLessThanOrEqual(4);
  });

  it("an RPM-limited server: reports the limit read from the headers and stops at the first 429", async () => {
    sim = await startSimulator({
      latency: { ttftMs: 20 },
      output: { tokens: 8 },
      limits: { rpm: 600, burstSeconds: 1 },
    });
    const provider = new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY });
    const result = await sweep({ provider, request, maxRequests: 200 });
    const rec = recommend(result);
    expect(result.limits.requestsPerMinute).toBe(600);
    expect(result.stoppedBecause).toBe("rate-limited");
    expect(rec.flags).toContain("--rpm 600");
    // 600 RPM = 10/s; at ~20-40 ms per call the quota feeds one call at a time, with headroom 2.
    expect(rec.concurrency).toBeLessThanOrEqual(2);
  });

  it("the command: --sim with --json prints the curve and the recommendation", async () => {
    const io = memoryIo();
    await probeCommand(io).parseAsync(
      ["--sim", "slots-4", "--levels", "1,2,4,8", "--max-requests", "60", "--json"],
      { from: "user" },
    );
    const out = JSON.parse(io.out) as {
      levels: Array<{ concurrency: number }>;
      recommendation: { concurrency: number; flags: string };
    };
    expect(out.levels.map((l) => l.concurrency)).toEqual([1, 2, 4, 8]);
    expect(out.recommendation.concurrency).toBeGreaterThanOrEqual(3);
    expect(out.recommendation.concurrency).toBeLessThanOrEqual(6);
    expect(io.err).toBe("");
  });

  it("the command: the table, the chart and the recommendation", async () => {
    const io = memoryIo();
    await probeCommand(io).parseAsync(["--sim", "rpm-600", "--levels", "1,2"], { from: "user" });
    expect(io.out).toMatch(/concurrency {2}requests/);
    expect(io.out).toMatch(/^ ?1 \|#+/m);
    expect(io.out).toContain("limits from headers: 600 requests/min");
    expect(io.out).toMatch(/recommendation: --concurrency \d+ --rpm 600/);
  });

  it("validates every option with a ConfigError naming it", async () => {
    const cases: Array<[string[], string]> = [
      [["--model", "m", "--levels", "4,2"], "--levels"],
      [["--model", "m", "--levels", "0"], "--levels"],
      [["--model", "m", "--max-requests", "0"], "--max-requests"],
      [["--model", "m", "--max-tokens", "x"], "--max-tokens"],
      [["--model", "m", "--provider", "gemini"], "--provider"],
      [["--model", "m", "--base-url", "ftp://x"], "--base-url"],
      [["--model", "m", "--api-key-env", "NOT A NAME"], "--api-key-env"],
      [["--base-url", "http://127.0.0.1:9"], "--model"],
      [["--sim", "--base-url", "http://127.0.0.1:9"], "--base-url"],
      [["--model", "m"], "OPENAI_API_KEY"],
    ];
    for (const [args, field] of cases) {
      const error = await probeCommand(memoryIo())
        .parseAsync(args, { from: "user" })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error, args.join(" ")).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe(field);
    }
  });
});

// Adaptive concurrency end to end: the Salvo client over HTTP against the simulator. Wall-clock
// figures on a shared 2-core machine are noisy, so each configuration runs once and the asserts
// keep margins; the exact 10% makespan figure is asserted on fake time in
// adaptive-fake-server.test.ts and measured by the bench.
import { afterEach, describe, expect, it } from "vitest";
import { AdaptiveConcurrency } from "../src/core/concurrency/adaptive-concurrency.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { CallOptions, Provider, ProviderRequest } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import { type SimConfigInput, type SimHandle, startSimulator } from "../src/sim/index.ts";
import { asTheProvider } from "./support/provider-priority.ts";

const FAKE_KEY = "sk-test-salvo-not-a-real-key";
let sim: SimHandle | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

/** The provider, timing each call as the HTTP client sees it. */
function timed(inner: Provider, latencies: number[]): Provider {
  return {
    name: inner.name,
    estimate: (r) => inner.estimate(r),
    charged: (r, u) => inner.charged(r, u),
    async call(request: ProviderRequest, options: CallOptions) {
      const t0 = performance.now();
      const result = await inner.call(request, options);
      latencies.push(performance.now() - t0);
      return result;
    },
  };
}

const chat = (i: number): ProviderRequest => ({
  path: "/chat/completions",
  body: { model: "gpt-4o-mini", max_tokens: 8, messages: [{ role: "user", content: `item ${i}` }] },
});

type Run = {
  /** The most requests waiting in the server's queue at once (simulator stats). */
  maxQueued: number;
  /**
   * The most requests waiting in the server's queue when one of the second half arrived (the
   * simulator's timeline): the queue once slow start's overshoot is over.
   */
  steadyMaxQueued: number;
  /** The controller's limit at the end. */
  finalLimit: number;
  makespanMs: number;
  p50Ms: number;
  /** p50 of the calls that ended in the second half (slow start's overshoot is over). */
  steadyP50Ms: number;
  maxLimit: number;
  /** The most requests in service at the server at once (simulator stats). */
  maxInService: number;
  failed: number;
};

const median = (values: number[]) =>
  values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function run(
  config: SimConfigInput,
  concurrency: number | AdaptiveConcurrency,
  items: number,
  limits: { requestsPerMinute?: number } = {},
): Promise<Run> {
  sim = await startSimulator(config);
  const latencies: number[] = [];
  const salvo = new Salvo({
    provider: timed(new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }), latencies),
    concurrency,
    ...limits,
  });
  let maxLimit = salvo.scheduler.limit;
  salvo.scheduler.on("limit-changed", (e) => {
    maxLimit = Math.max(maxLimit, e.limit);
  });
  const t0 = performance.now();
  // The simulator serves in this thread, beside the client: ahead of the machine's other work,
  // so its clock is a provider's, not the busy machine's (the controller read a stall of both
  // as a server that kept up at 16 in flight, and held there: once in 14 loaded runs).
  const outcomes = await asTheProvider(() =>
    salvo.map(Array.from({ length: items }, (_, i) => chat(i))),
  );
  const makespanMs = performance.now() - t0;
  const stats = sim.stats();
  const maxQueued = stats.maxInServer - stats.maxInService;
  const arrivals = stats.timeline.slice().sort((a, b) => a.arrivalMs - b.arrivalMs);
  let steadyMaxQueued = 0;
  for (const arrival of arrivals.slice(Math.floor(arrivals.length / 2))) {
    const t = arrival.arrivalMs;
    const waiting = arrivals.filter(
      (e) => e.arrivalMs <= t && (e.startMs === null ? e.endMs : e.startMs) > t,
    ).length;
    steadyMaxQueued = Math.max(steadyMaxQueued, waiting);
  }
  const finalLimit = salvo.scheduler.limit;
  await sim.close();
  sim = undefined;
  return {
    maxQueued,
    steadyMaxQueued,
    finalLimit,
    makespanMs,
    p50Ms: median(latencies),
    steadyP50Ms: median(latencies.slice(Math.floor(latencies.length / 2))),
    maxLimit,
    maxInService: stats.maxInService,
    failed: outcomes.filter((o) => !o.ok).length,
  };
}

const show = (name: string, r: Run) =>
  `${name}: makespan ${Math.round(r.makespanMs)} ms, p50 ${Math.round(r.p50Ms)} ms (second half ${Math.round(r.steadyP50Ms)} ms), max limit ${r.maxLimit}, most queued ${r.maxQueued} (second half ${r.steadyMaxQueued})`;

describe("adaptive concurrency against the simulator", () => {
  it("hidden slots 4 with a queue: auto keeps the server's queue short; static 32 bloats it", async () => {
    const config: SimConfigInput = {
      latency: { ttftMs: 40, msPerToken: 0, loadFactor: 0 },
      output: { tokens: 8 },
      capacity: { slots: 4 },
    };
    const items = 160;
    const s4 = await run(config, 4, items);
    const s32 = await run(config, 32, items);
    const auto = await run(config, new AdaptiveConcurrency(), items);
    console.info([show("static 4", s4), show("static 32", s32), show("auto", auto)].join("; "));
    expect(auto.failed + s4.failed + s32.failed).toBe(0);
    // Queue bloat, from the simulator's own counts (not wall time): static 32 keeps 28 requests
    // waiting at the server; auto settles near the 4 slots after slow start's brief overshoot.
    // That overshoot's height depends on how promptly the client starts a wave's calls: on a
    // busy machine, a wave started slowly reads as a server that keeps up, and one in 14 loaded
    // runs went to 32 before coming back; the queue that stays is judged on the second half.
    expect(s32.maxQueued).toBeGreaterThanOrEqual(28);
    expect(s32.steadyMaxQueued).toBeGreaterThanOrEqual(27);
    expect(auto.steadyMaxQueued).toBeLessThan(s32.steadyMaxQueued / 2);
    expect(auto.maxQueued).toBeLessThanOrEqual(s32.maxQueued);
    // Where exactly it settles depends on the client's own latency on a busy machine (a deeper
    // pipeline hides it): the knee at the slots is asserted on fake time
    // (adaptive-fake-server.test.ts, "FIFO knee held").
    // Latency and makespan ratios are measured by the bench (d) and asserted exactly on fake time
    // in adaptive-fake-server.test.ts; wall-clock ratios on 2 shared cores are not a test.
  });

  it("the controller sees the answer's real length, not the max_tokens OpenAI charges", async () => {
    sim = await startSimulator({ latency: { ttftMs: 5 }, output: { tokens: 8 } });
    const seen: Array<number | undefined> = [];
    const controller = new AdaptiveConcurrency({ initial: 4, max: 4 });
    const onOutcome = controller.onOutcome.bind(controller);
    controller.onOutcome = (sample) => {
      seen.push(sample.outputTokens);
      onOutcome(sample);
    };
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
      concurrency: controller,
    });
    const request = chat(0);
    const outcomes = await salvo.map(
      [0, 1, 2].map(() => ({
        ...request,
        body: { ...request.body, max_tokens: 64 },
      })),
    );
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(seen).toEqual([8, 8, 8]);
  });

  it("known RPM: the limit stays under the Little's-law ceiling, few 429s", async () => {
    // 3000 RPM = 50/s with a 1 s burst of 50; 100 ms calls: X* L = 5, ceiling ceil(1.2 * 5) = 6.
    const config: SimConfigInput = {
      latency: { ttftMs: 100 },
      output: { tokens: 8 },
      limits: { rpm: 3000, burstSeconds: 1 },
    };
    const items = 150;
    const controller = new AdaptiveConcurrency({ requestsPerMinute: 3000 });
    let overCeiling = 0;
    controller.subscribe((limit) => {
      const ceiling = controller.state.ceiling;
      if (ceiling !== undefined && limit > ceiling) overCeiling++;
    });
    const auto = await run(config, controller, items, { requestsPerMinute: 3000 });
    console.info(`${show("auto", auto)}; ceiling ${controller.state.ceiling}`);
    expect(auto.failed).toBe(0);
    // Little's law on the latency seen: ceil(1.2 x 50/s x p50), 6 at an unloaded 100 ms; a busy
    // machine's slower answers raise the median, and the ceiling with it (never above what the
    // median the run ended with gives, plus the slots failures hold).
    expect(controller.state.ceiling).toBeGreaterThanOrEqual(6);
    expect(controller.state.ceiling).toBeLessThanOrEqual(
      Math.ceil((1.2 * 50 * Math.max(auto.steadyP50Ms, auto.p50Ms)) / 1000) + 2,
    );
    // Before the first answer the RPM bucket paces the start: its 1 s burst of 50 requests,
    // plus 50/s refilled during the first (cold, 100-200 ms) round trip.
    expect(auto.maxInService).toBeLessThanOrEqual(60);
    // From the first answer on, the limit never exceeds the ceiling in force, which follows the
    // latency median (early cold-connection latencies raise it briefly).
    expect(overCeiling).toBe(0);
    // A few 429s at most, as a static limit meets them too (bench (b): 2-3 in 400 calls): the
    // client's bucket and the server's start a few milliseconds apart, and the start is a burst.
    expect(controller.state.decreases.rate_limit).toBeLessThanOrEqual(3);
    // The makespan (about the RPM bound, 2-3 s depending on the buckets' burst) is the
    // scheduler's buckets' business and is measured by the bench, not asserted here.
  });
});

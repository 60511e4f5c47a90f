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
  makespanMs: number;
  p50Ms: number;
  /** p50 of the calls that ended in the second half (slow start's overshoot is over). */
  steadyP50Ms: number;
  maxLimit: number;
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
  const outcomes = await salvo.map(Array.from({ length: items }, (_, i) => chat(i)));
  const makespanMs = performance.now() - t0;
  await sim.close();
  sim = undefined;
  return {
    makespanMs,
    p50Ms: median(latencies),
    steadyP50Ms: median(latencies.slice(Math.floor(latencies.length / 2))),
    maxLimit,
    failed: outcomes.filter((o) => !o.ok).length,
  };
}

const show = (name: string, r: Run) =>
  `${name}: makespan ${Math.round(r.makespanMs)} ms, p50 ${Math.round(r.p50Ms)} ms (second half ${Math.round(r.steadyP50Ms)} ms), max limit ${r.maxLimit}`;

describe("adaptive concurrency against the simulator", () => {
  it("hidden slots 4 with a queue: auto keeps latency near static 4's; static 32 bloats it", async () => {
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
    // Once slow start's overshoot (to ~3x the slots for a round trip or two) is corrected, latency
    // stays within 1.5x of static 4's; over the whole short run, within 1.75x.
    expect(auto.steadyP50Ms).toBeLessThanOrEqual(s4.p50Ms * 1.5);
    expect(auto.p50Ms).toBeLessThanOrEqual(s4.p50Ms * 1.75);
    expect(s32.p50Ms).toBeGreaterThan(s4.p50Ms * 3);
    // Loose on wall time (2 shared cores); the 10% figure is asserted on fake time.
    expect(auto.makespanMs).toBeLessThanOrEqual(Math.min(s4.makespanMs, s32.makespanMs) * 1.35);
  });

  it("known RPM: the limit stays under the Little's-law ceiling, no 429s, near the RPM bound", async () => {
    // 3000 RPM = 50/s with a 1 s burst of 50; 100 ms calls: X* L = 5, ceiling ceil(1.2 * 5) = 6.
    const config: SimConfigInput = {
      latency: { ttftMs: 100 },
      output: { tokens: 8 },
      limits: { rpm: 3000, burstSeconds: 1 },
    };
    const items = 150;
    const controller = new AdaptiveConcurrency({ requestsPerMinute: 3000 });
    const auto = await run(config, controller, items, { requestsPerMinute: 3000 });
    console.info(`${show("auto", auto)}; ceiling ${controller.state.ceiling}`);
    expect(auto.failed).toBe(0);
    expect(controller.state.ceiling).toBeGreaterThanOrEqual(6);
    expect(controller.state.ceiling).toBeLessThanOrEqual(8);
    expect(controller.limit).toBeLessThanOrEqual(controller.state.ceiling!);
    // The ceiling follows the latency median: early cold-connection latencies raise it briefly.
    expect(auto.maxLimit).toBeLessThanOrEqual(10);
    expect(controller.state.decreases.rate_limit).toBe(0);
    // The makespan (about the RPM bound, 2-3 s depending on the buckets' burst) is the
    // scheduler's buckets' business and is measured by the bench, not asserted here.
  });
});

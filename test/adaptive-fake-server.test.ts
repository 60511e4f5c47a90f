// Adaptive concurrency against a modelled server on fake time: N slots with a FIFO queue (N can
// change mid-run), optionally refusing with 429 above K requests in the server. Deterministic, so
// makespans and latencies are compared exactly rather than with wall-clock margins.
import { describe, expect, it } from "vitest";
import { AdaptiveConcurrency } from "../src/core/concurrency/adaptive-concurrency.ts";
import type { ConcurrencyController } from "../src/core/concurrency/concurrency-controller.ts";
import { StaticConcurrency } from "../src/core/concurrency/static-concurrency.ts";
import { FakeClock } from "../src/core/fake-clock.ts";
import { Scheduler } from "../src/core/scheduler.ts";
import { RateLimitError } from "../src/errors.ts";

/** A server with `slots` requests in service at once and a FIFO queue for the rest. */
class SlotServer {
  slots: number;
  /** Above this many requests in the server, refuse with a 429 (Infinity: never). */
  rejectAbove: number;
  inServer = 0;
  inService = 0;
  maxInService = 0;
  rejected = 0;
  readonly #clock: FakeClock;
  readonly #serviceMs: (outputTokens: number) => number;
  readonly #waiting: Array<() => void> = [];

  constructor(
    clock: FakeClock,
    options: { slots: number; serviceMs: (tokens: number) => number; rejectAbove?: number },
  ) {
    this.#clock = clock;
    this.slots = options.slots;
    this.#serviceMs = options.serviceMs;
    this.rejectAbove = options.rejectAbove ?? Number.POSITIVE_INFINITY;
  }

  async call(outputTokens: number): Promise<void> {
    if (this.inServer + 1 > this.rejectAbove) {
      this.rejected++;
      await this.#clock.sleep(1);
      throw new RateLimitError(undefined, { retryAfterMs: 40 });
    }
    this.inServer++;
    if (this.inService >= this.slots) await new Promise<void>((r) => this.#waiting.push(r));
    this.inService++;
    this.maxInService = Math.max(this.maxInService, this.inService);
    await this.#clock.sleep(this.#serviceMs(outputTokens));
    this.inService--;
    this.inServer--;
    this.#admit();
  }

  /** Changes the slots; more slots admit waiting requests at once. */
  setSlots(slots: number): void {
    this.slots = slots;
    this.#admit();
  }

  #admit(): void {
    while (this.inService < this.slots && this.#waiting.length > 0) {
      // The woken request counts itself into service when it resumes.
      this.inService++;
      const next = this.#waiting.shift()!;
      queueMicrotask(() => {
        this.inService--;
        next();
      });
    }
  }
}

type RunResult = {
  makespanMs: number;
  p50Ms: number;
  limits: Array<{ at: number; limit: number }>;
  failed: number;
  reasons: unknown[];
};

async function runBatch(
  clock: FakeClock,
  server: SlotServer,
  concurrency: ConcurrencyController,
  items: number,
  schedule: (at: number) => void = () => {},
): Promise<RunResult> {
  const start = clock.now();
  // No retry budget: slow start's one overshoot (2x the knee) must not fail items here; what is
  // measured is how many 429s the controller causes.
  const scheduler = new Scheduler({
    clock,
    concurrency,
    cooldownJitter: 0,
    retry: { budget: false },
  });
  const limits = [{ at: 0, limit: scheduler.limit }];
  scheduler.on("limit-changed", (e) => limits.push({ at: e.at - start, limit: e.limit }));
  const latencies: number[] = [];
  const done = scheduler.map(
    Array.from({ length: items }, (_, i) => i),
    async (_i, ctx) => {
      const t0 = clock.now();
      schedule(t0 - start);
      await server.call(8);
      latencies.push(clock.now() - t0);
      ctx.reportUsage({ outputTokens: 8 });
    },
  );
  await clock.runAll();
  const outcomes = await done;
  latencies.sort((a, b) => a - b);
  return {
    makespanMs: clock.now() - start,
    p50Ms: latencies[Math.floor(latencies.length / 2)] ?? Number.NaN,
    limits,
    failed: outcomes.filter((o) => !o.ok).length,
    reasons: outcomes.flatMap((o) => (o.ok ? [] : [o.reason])),
  };
}

/** The limit in force at time `at`. */
function limitAt(limits: RunResult["limits"], at: number): number {
  let limit = limits[0]!.limit;
  for (const change of limits) if (change.at <= at) limit = change.limit;
  return limit;
}

const service = () => 40;

describe("adaptive concurrency on a modelled server", () => {
  it("slots 4 with a queue: as fast as the best static setting, without queue bloat", async () => {
    const results: Record<string, RunResult> = {};
    for (const [name, concurrency] of [
      ["static 4", new StaticConcurrency(4)],
      ["static 32", new StaticConcurrency(32)],
      ["auto", new AdaptiveConcurrency()],
    ] as const) {
      const clock = new FakeClock();
      const server = new SlotServer(clock, { slots: 4, serviceMs: service });
      results[name] = await runBatch(clock, server, concurrency, 400);
    }
    const s4 = results["static 4"]!;
    const s32 = results["static 32"]!;
    const auto = results.auto!;
    console.info(
      Object.entries(results)
        .map(([k, r]) => `${k}: makespan ${r.makespanMs} ms, p50 ${r.p50Ms} ms`)
        .join("; "),
    );
    expect(auto.failed).toBe(0);
    expect(auto.makespanMs).toBeLessThanOrEqual(Math.min(s4.makespanMs, s32.makespanMs) * 1.1);
    expect(auto.p50Ms).toBeLessThanOrEqual(s4.p50Ms * 1.5);
    expect(s32.p50Ms).toBeGreaterThan(s4.p50Ms * 4);
  });

  it("follows slots that change mid-run (8, then 2, then 8) within a few round trips", async () => {
    const clock = new FakeClock();
    const server = new SlotServer(clock, { slots: 8, serviceMs: service });
    const controller = new AdaptiveConcurrency();
    const phase = 2_000;
    const result = await runBatch(clock, server, controller, 1_000, (at) => {
      const slots = at < phase ? 8 : at < 2 * phase ? 2 : 8;
      if (slots !== server.slots) server.setSlots(slots);
    });
    const rtt = 40;
    const window = (from: number, to: number) => {
      const seen: number[] = [];
      for (let t = from; t < to; t += 10) seen.push(limitAt(result.limits, t));
      return { min: Math.min(...seen), max: Math.max(...seen) };
    };
    console.info(
      `limit timeline: ${result.limits.map((l) => `${l.at}:${l.limit}`).join(" ")}; makespan ${result.makespanMs}`,
    );
    // Settled on 8 slots (a little above them is the queue the brake tolerates).
    expect(window(phase - 10 * rtt, phase)).toMatchObject({ min: expect.any(Number) });
    expect(window(phase - 10 * rtt, phase).min).toBeGreaterThanOrEqual(7);
    expect(window(phase - 10 * rtt, phase).max).toBeLessThanOrEqual(11);
    // Down to about 2 within a few round trips (each now up to limit/2 * 40 ms long).
    expect(window(phase + 20 * rtt, 2 * phase).max).toBeLessThanOrEqual(3);
    expect(window(phase + 20 * rtt, 2 * phase).min).toBeGreaterThanOrEqual(2);
    // Back up to about 8 within a few round trips.
    const end = result.makespanMs;
    expect(
      window(2 * phase + 10 * rtt, Math.min(end, 2 * phase + 25 * rtt)).min,
    ).toBeGreaterThanOrEqual(7);
  });

  it("a server that answers 429 above K in flight: settles at or just under K, few 429s", async () => {
    const K = 8;
    const clock = new FakeClock();
    const server = new SlotServer(clock, { slots: 100, serviceMs: service, rejectAbove: K });
    const controller = new AdaptiveConcurrency();
    const items = 1_000;
    const result = await runBatch(clock, server, controller, items);
    console.info(
      `429s ${server.rejected} of ${items}; final limit ${controller.limit} timeline ${result.limits.map((l) => `${l.at}:${l.limit}`).join(",")}`,
    );
    expect(result.failed).toBe(0);
    expect(controller.limit).toBeGreaterThanOrEqual(K - 2);
    expect(controller.limit).toBeLessThanOrEqual(K + 1);
    const secondHalf: number[] = [];
    for (let t = result.makespanMs / 2; t < result.makespanMs; t += 10)
      secondHalf.push(limitAt(result.limits, t));
    secondHalf.sort((a, b) => a - b);
    expect(secondHalf[Math.floor(secondHalf.length / 2)]).toBeGreaterThanOrEqual(K - 2);
    expect(secondHalf[Math.floor(secondHalf.length / 2)]).toBeLessThanOrEqual(K);
    expect(server.rejected / items).toBeLessThan(0.05);
  });
});

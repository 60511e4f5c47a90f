import { describe, expect, it } from "vitest";
import { ConfigError, RateLimitError } from "../../errors.ts";
import { FakeClock } from "../fake-clock.ts";
import { Scheduler } from "../scheduler.ts";
import type {
  AttemptSample,
  AttemptStart,
  ConcurrencyController,
} from "./concurrency-controller.ts";
import { StaticConcurrency } from "./static-concurrency.ts";

/** A toy adaptive controller: halves on a rate limit. Records what it is told. */
class Halving implements ConcurrencyController {
  limit = 4;
  starts: AttemptStart[] = [];
  samples: AttemptSample[] = [];
  #listeners = new Set<(limit: number) => void>();
  onStart(start: AttemptStart): void {
    this.starts.push(start);
  }
  onOutcome(sample: AttemptSample): void {
    this.samples.push(sample);
    if (sample.result === "rate_limit") {
      this.limit = Math.max(1, this.limit / 2);
      for (const l of this.#listeners) l(this.limit);
    }
  }
  subscribe(listener: (limit: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

describe("ConcurrencyController", () => {
  it("sees every start and every outcome (latency, class, output tokens, in-flight)", async () => {
    const clock = new FakeClock();
    const controller = new Halving();
    const scheduler = new Scheduler({
      clock,
      concurrency: controller,
      cooldownJitter: 0,
      retry: { baseDelayMs: 0 },
    });
    const startedAt: number[] = [];
    scheduler.on("started", (e) => startedAt.push(e.at));
    const changes: number[] = [];
    scheduler.on("limit-changed", (e) => changes.push(e.limit));
    const result = scheduler.map([0, 1, 2], async (i, ctx) => {
      await clock.sleep(100 * (i + 1));
      if (i === 0 && ctx.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs: 50 });
      ctx.reportUsage({ outputTokens: 10 * i });
      return i;
    });
    await clock.runAll();
    await result;
    // The retry is due at 150 (Retry-After 50) but the limit fell to 2 at 100: it waits for a slot.
    expect(controller.starts.map((s) => s.inFlight)).toEqual([1, 2, 3, 2]);
    expect(startedAt).toEqual([0, 0, 0, 200]);
    expect(controller.samples.map((s) => [s.result, s.latencyMs, s.outputTokens])).toEqual([
      ["rate_limit", 100, undefined],
      ["success", 200, 10],
      ["success", 300, 20],
      ["success", 100, 0],
    ]);
    expect(controller.samples[0]!.retryAfterMs).toBe(50);
    expect(changes).toEqual([2]);
    expect(scheduler.limit).toBe(2);
  });

  it("StaticConcurrency validates and notifies", () => {
    expect(() => new StaticConcurrency(0)).toThrow(ConfigError);
    const c = new StaticConcurrency(3);
    const seen: number[] = [];
    const off = c.subscribe((l) => seen.push(l));
    c.setLimit(5);
    c.setLimit(5);
    off();
    c.setLimit(1);
    expect(seen).toEqual([5]);
    expect(c.limit).toBe(1);
  });
});

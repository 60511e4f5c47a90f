import { describe, expect, it } from "vitest";
import { ConfigError } from "../../errors.ts";
import { AdaptiveConcurrency, type AdaptiveConcurrencyOptions } from "./adaptive-concurrency.ts";
import type { AttemptResult } from "./concurrency-controller.ts";

/** Feeds synthetic samples; `now` is advanced by the caller. */
class Driver {
  now = 0;
  readonly controller: AdaptiveConcurrency;
  readonly changes: number[] = [];
  constructor(options: AdaptiveConcurrencyOptions = {}) {
    this.controller = new AdaptiveConcurrency(options);
    this.controller.subscribe((limit) => this.changes.push(limit));
  }
  outcome(
    result: AttemptResult,
    latencyMs: number,
    outputTokens = 10,
    inFlight = this.controller.limit,
    extra: { tokens?: number } = {},
  ): void {
    this.controller.onOutcome({
      result,
      latencyMs,
      outputTokens,
      retryAfterMs: undefined,
      inFlight,
      now: this.now,
      ...extra,
    });
  }
  /** One round trip at a full pipe: `limit` successes, then time moves by the latency. */
  roundTrip(latencyMs: number, outputTokens = 10): void {
    this.now += latencyMs;
    const n = this.controller.limit;
    for (let i = 0; i < n; i++) this.outcome("success", latencyMs, outputTokens);
  }
}

describe("AdaptiveConcurrency", () => {
  it("slow start doubles the limit per round trip while the pipe is full", () => {
    const d = new Driver({ initial: 4 });
    d.roundTrip(100); // the first wave (cold connections) is not a sample
    expect(d.controller.limit).toBe(4);
    const seen = [d.controller.limit];
    for (let i = 0; i < 4; i++) {
      d.roundTrip(100);
      seen.push(d.controller.limit);
    }
    expect(seen).toEqual([4, 8, 16, 32, 64]);
    expect(d.controller.state.phase).toBe("slow-start");
  });

  it("does not grow when the pipe is not full (app-limited)", () => {
    const d = new Driver({ initial: 8 });
    for (let i = 0; i < 20; i++) d.outcome("success", 100, 10, 3);
    expect(d.controller.limit).toBe(8);
  });

  it("a burst of 429s is one decrease per round trip", () => {
    const d = new Driver({ initial: 20 });
    for (let i = 0; i < 5; i++) d.roundTrip(100); // srtt 100 ms, limit grows to the max 256
    const before = d.controller.state.value;
    // 10 calls in flight since t-50 all get a 429 at about the same time.
    for (let i = 0; i < 10; i++) {
      d.now += 1;
      d.outcome("rate_limit", 50);
    }
    expect(d.controller.state.value).toBeCloseTo(before * 0.7, 5);
    expect(d.controller.state.decreases.rate_limit).toBe(1);
    // A 429 of a call that started after the decrease, a round trip later, is a new event.
    d.now += 100;
    d.outcome("rate_limit", 10);
    expect(d.controller.state.value).toBeCloseTo(before * 0.7 * 0.7, 5);
    expect(d.controller.state.phase).toBe("avoidance");
  });

  it("overload (529/503) and timeouts halve the limit", () => {
    const d = new Driver({ initial: 32 });
    d.roundTrip(100);
    d.now += 200;
    d.outcome("overload", 100);
    expect(d.controller.limit).toBe(16); // the first wave does not grow it: 32, halved
    d.now += 1_000;
    d.outcome("timeout", 500);
    expect(d.controller.limit).toBe(8);
  });

  it("quota, client, server, task errors and cancellations do not decrease the limit", () => {
    const d = new Driver({ initial: 10 });
    for (const result of [
      "quota",
      "client",
      "server",
      "network",
      "invalid_response",
      "task_error",
      "cancelled",
    ] as const) {
      d.now += 1_000;
      d.outcome(result, 10);
    }
    expect(d.controller.limit).toBe(10);
    expect(d.changes).toEqual([]);
  });

  it("the latency brake lowers the limit when per-token latency inflates", () => {
    const d = new Driver({ initial: 8 });
    d.roundTrip(100); // baseline: 100 ms for 10 tokens
    d.roundTrip(100);
    const top = d.controller.limit;
    // The server starts queueing: the same answers now take 3x as long.
    for (let i = 0; i < 6; i++) d.roundTrip(300);
    expect(d.controller.limit).toBeLessThan(top / 2);
    expect(d.controller.state.decreases.latency).toBeGreaterThan(0);
  });

  it("longer outputs (same per-token latency) do not trigger the brake", () => {
    const d = new Driver({ initial: 4, max: 64 });
    d.roundTrip(110, 10); // 10 ms per token + 10 ms
    d.roundTrip(110, 10);
    // Outputs 10x longer, latency 10x longer: the per-token latency did not rise.
    for (let i = 0; i < 3; i++) d.roundTrip(1_010, 100);
    expect(d.controller.state.decreases.latency).toBe(0);
    expect(d.controller.limit).toBe(64);
  });

  it("a mix of short and long answers with a fixed time to first token is not queueing", () => {
    // 100 ms to first token + 2 ms per token, 20 to 60 tokens: latency per token varies 1.85x
    // across the mix (6.7 to 3.6 ms), which a per-token brake reads as queueing.
    const d = new Driver({ initial: 4, max: 32 });
    const mixed = (inflation: number) => {
      d.now += 220 * inflation;
      const n = d.controller.limit;
      for (let i = 0; i < n; i++) {
        const tokens = 20 + ((i * 37) % 41);
        d.outcome("success", (100 + 2 * tokens) * inflation, tokens);
      }
    };
    for (let i = 0; i < 12; i++) mixed(1);
    expect(d.controller.state.decreases.latency).toBe(0);
    expect(d.controller.limit).toBe(32);
    // The same mix, now queued at the server: twice as long for every length.
    for (let i = 0; i < 6; i++) mixed(2);
    expect(d.controller.state.decreases.latency).toBeGreaterThan(0);
    expect(d.controller.limit).toBeLessThan(24);
  });

  it("a provider's ordinary noise (+-25% on every call) is not queueing", () => {
    // The demo's scenario: 220 ms to first token, 4 ms per token, 10 to 40 tokens, +-25% jitter.
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const d = new Driver({ initial: 4, max: 32 });
    const limits: number[] = [];
    for (let round = 0; round < 60; round++) {
      d.now += 350;
      const n = d.controller.limit;
      for (let i = 0; i < n; i++) {
        const tokens = 10 + Math.floor(random() * 31);
        d.outcome("success", (220 + 4 * tokens) * (0.75 + 0.5 * random()), tokens);
      }
      limits.push(d.controller.limit);
    }
    // After slow start, the limit holds near the cap: a brake now and then, never a collapse.
    const later = limits.slice(20);
    expect(Math.min(...later)).toBeGreaterThanOrEqual(16);
    expect(later.filter((l) => l >= 24).length).toBeGreaterThan(later.length / 2);
  });

  it("leaving slow start on a queue, goes straight to the limit that drains it", () => {
    const d = new Driver({ initial: 4, max: 256 });
    d.roundTrip(100);
    d.roundTrip(100);
    d.roundTrip(100);
    expect(d.controller.limit).toBe(16);
    // 16 in flight on a server with 4 slots: 4x the unloaded latency.
    d.roundTrip(400);
    // One step, to 1.25 x 16 / 4 = 5, not a series of smoothed steps.
    expect(d.controller.state.decreases.latency).toBe(1);
    expect(d.controller.limit).toBeLessThanOrEqual(6);
    expect(d.controller.limit).toBeGreaterThanOrEqual(4);
  });

  it("with known limits, the buckets pace the start and the first answer sets the ceiling", () => {
    // 600 RPM = 10 requests/s, 200 ms per call: ceil(1.2 * 10 * 0.2) = 3.
    const d = new Driver({ initial: 2, max: 100, requestsPerMinute: 600 });
    expect(d.controller.limit).toBe(100);
    d.now += 200;
    d.outcome("success", 200);
    expect(d.controller.state.ceiling).toBe(3);
    expect(d.controller.limit).toBe(3);
    // Known TPM: the tokens per request come with the first answer, and so does the ceiling.
    const t = new Driver({ initial: 2, max: 100, tokensPerMinute: 60_000 });
    expect(t.controller.limit).toBe(100);
    t.now += 1_000;
    t.outcome("success", 1_000, 10, 1, { tokens: 1_000 });
    expect(t.controller.limit).toBe(2);
  });

  it("caps the limit at the Little's-law ceiling when the rate limits are known", () => {
    // 600 RPM = 10 requests/s, 200 ms per call: ceil(1.2 * 10 * 0.2) = 3.
    const d = new Driver({ initial: 2, requestsPerMinute: 600 });
    for (let i = 0; i < 20; i++) d.roundTrip(200);
    expect(d.controller.state.ceiling).toBe(3);
    expect(d.controller.limit).toBe(3);
  });

  it("learns limits later, and the token ceiling from charged tokens", () => {
    const d = new Driver({ initial: 4 });
    for (let i = 0; i < 6; i++) d.roundTrip(1_000);
    expect(d.controller.limit).toBe(128);
    // 60k TPM at 1,000 tokens per request = 1 request/s; 1 s per call: ceil(1.2) = 2.
    for (let i = 0; i < 10; i++) d.outcome("success", 1_000, 10, 1, { tokens: 1_000 });
    d.controller.setRateLimits({ tokensPerMinute: 60_000 });
    expect(d.controller.limit).toBe(2);
    expect(d.changes.at(-1)).toBe(2);
  });

  it("notifies only when the integer limit changes", () => {
    const d = new Driver({ initial: 4 });
    d.outcome("success", 10); // the first wave
    d.now += 20;
    d.outcome("success", 10); // slow start: 5
    expect(d.changes).toEqual([5]);
    expect(Number.isInteger(d.controller.limit)).toBe(true);
  });

  it("validates its options", () => {
    const bad: AdaptiveConcurrencyOptions[] = [
      { min: 0 },
      { max: 0 },
      { initial: 300 },
      { rateLimitBackoff: 1 },
      { overloadBackoff: 0 },
      { tolerance: 1 },
      { brakeSmoothing: 0 },
      { shortWindow: 0.5 },
      { headroom: 0.5 },
      { requestsPerMinute: -1 },
    ];
    for (const options of bad) expect(() => new AdaptiveConcurrency(options)).toThrow(ConfigError);
    expect(() => new AdaptiveConcurrency({ min: 0 })).toThrow(/concurrency\.min/);
  });
});

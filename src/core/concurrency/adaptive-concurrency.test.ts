// The controller fed synthetic samples (its search against modelled servers is in
// test/adaptive-fake-server.test.ts). A "wave" starts `n` attempts at once and answers them.
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../errors.ts";
import { AdaptiveConcurrency, type AdaptiveConcurrencyOptions } from "./adaptive-concurrency.ts";
import type { AttemptResult } from "./concurrency-controller.ts";

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
    options: { tokens?: number; inFlight?: number; charged?: number } = {},
  ): void {
    const inFlight = options.inFlight ?? this.controller.limit;
    this.controller.onOutcome({
      result,
      latencyMs,
      outputTokens: options.tokens ?? 10,
      retryAfterMs: undefined,
      inFlight,
      meanInFlight: inFlight,
      now: this.now,
      tokens: options.charged,
    });
  }
  /** `limit` attempts start now; after `latencyMs(i)` each answers, in order of latency. */
  wave(latencyMs: (i: number, n: number) => number, tokens = 10): void {
    const n = this.controller.limit;
    const start = this.now;
    for (let i = 0; i < n; i++) this.controller.onStart({ inFlight: i + 1, now: start });
    const ends = Array.from({ length: n }, (_, i) => latencyMs(i, n)).sort((a, b) => a - b);
    for (const latency of ends) {
      this.now = start + latency;
      this.outcome("success", latency, { tokens, inFlight: n });
    }
  }
  /** One steady round trip at a full pipe: `limit` starts, then as many successes. */
  roundTrip(latencyMs: number, tokens = 10): void {
    const n = this.controller.limit;
    for (let i = 0; i < n; i++) this.controller.onStart({ inFlight: n, now: this.now });
    this.now += latencyMs;
    for (let i = 0; i < n; i++) this.outcome("success", latencyMs, { tokens });
  }
}

describe("AdaptiveConcurrency: the search", () => {
  it("nothing known: one call alone, then 2, then x8 per wave while throughput keeps up", () => {
    const d = new Driver();
    expect(d.controller.limit).toBe(1);
    expect(d.controller.state.start).toEqual({ limit: 1, source: "search" });
    const seen = [d.controller.limit];
    for (let i = 0; i < 4; i++) {
      d.wave(() => 100);
      seen.push(d.controller.limit);
    }
    expect(seen).toEqual([1, 2, 16, 128, 256]);
    // A wave at the maximum: nothing higher to try, it holds there.
    d.wave(() => 100);
    expect(d.controller.state.phase).toBe("hold");
    expect(d.controller.limit).toBe(256);
  });

  it("FIFO slots: where throughput stops growing, Little's law places the knee at the slots", () => {
    const d = new Driver();
    const slots = 4;
    // A wave of n on 4 slots: the i-th answer comes after ceil((i + 1) / 4) service times.
    const fifo = (i: number) => 100 * Math.ceil((i + 1) / slots);
    d.wave(fifo); // 1
    d.wave(fifo); // 2
    d.wave(fifo); // 16: four times the latency at the back, P = 4
    expect(d.controller.state.phase).toBe("hold");
    expect(d.controller.limit).toBe(slots);
  });

  it("contention: a call alone does more than two together, so it stays at 1", () => {
    const d = new Driver();
    d.wave(() => 100);
    // Two at once take 2.7x as long each (seed 004's server: 5 workers were 54% slower).
    d.wave(() => 270);
    expect(d.controller.limit).toBe(1);
    expect(d.controller.state.phase).toBe("hold");
  });

  it("answers of different lengths are not queueing: the work model sees their tokens", () => {
    // 200 ms to the first token + 4 ms per token, answers of 10 to 300 tokens (0.24 to 1.4 s):
    // each wave's slowest answer is 5x its fastest, on a server that does not slow with load.
    const d = new Driver({ max: 64 });
    for (let w = 0; w < 4; w++) {
      const n = d.controller.limit;
      const start = d.now;
      for (let i = 0; i < n; i++) d.controller.onStart({ inFlight: i + 1, now: start });
      const answers = Array.from({ length: n }, (_, i) => 10 + ((i * 97 + w * 31) % 291));
      const ends = answers.map((tokens) => ({ tokens, latency: 200 + 4 * tokens }));
      ends.sort((a, b) => a.latency - b.latency);
      for (const { tokens, latency } of ends) {
        d.now = start + latency;
        d.outcome("success", latency, { tokens, inFlight: n });
      }
    }
    expect(d.controller.limit).toBe(64);
  });
});

describe("AdaptiveConcurrency: congestion", () => {
  it("a burst of 429s is one decrease per round trip", () => {
    const d = new Driver({ initial: 20 });
    d.now += 100;
    for (let i = 0; i < 10; i++) d.outcome("success", 100); // srtt 100 ms, mid-epoch
    for (let i = 0; i < 10; i++) {
      d.now += 1;
      d.outcome("rate_limit", 50);
    }
    expect(d.controller.limit).toBe(14); // 20 x 0.7
    expect(d.controller.state.decreases.rate_limit).toBe(1);
    // A 429 of a call that started after the decrease, a round trip later, is a new event.
    d.now += 100;
    d.outcome("rate_limit", 10);
    expect(d.controller.limit).toBe(9);
  });

  it("overloads and timeouts on most outcomes halve the limit; scattered faults do not", () => {
    const d = new Driver({ initial: 32 });
    d.roundTrip(100);
    // 30% faults of every kind, spread: retried, not a reason to slow down.
    for (let i = 0; i < 64; i++) {
      d.now += 5;
      const kinds = ["server", "network", "overload", "timeout", "invalid_response"] as const;
      d.outcome(i % 10 < 3 ? kinds[i % 5]! : "success", 100);
    }
    expect(d.controller.limit).toBeGreaterThanOrEqual(32);
    expect(d.controller.state.decreases).toMatchObject({ overload: 0, timeout: 0 });
    // The server drowns: nearly every answer is a 503.
    for (let i = 0; i < 40; i++) {
      d.now += 5;
      d.outcome("overload", 50);
    }
    expect(d.controller.limit).toBeLessThanOrEqual(16);
    expect(d.controller.state.decreases.overload).toBeGreaterThan(0);
  });

  it("quota, client, task errors and cancellations say nothing about capacity", () => {
    const d = new Driver({ initial: 10 });
    for (const result of ["quota", "client", "task_error", "cancelled"] as const) {
      for (let i = 0; i < 20; i++) {
        d.now += 100;
        d.outcome(result, 10);
      }
    }
    expect(d.controller.limit).toBe(10);
    expect(d.changes).toEqual([]);
  });
});

describe("AdaptiveConcurrency: what is known", () => {
  it("a known start (a previous run's limit) holds there from the first call", () => {
    const d = new Driver({ initial: 12, initialSource: "previous-run" });
    expect(d.controller.limit).toBe(12);
    expect(d.controller.state).toMatchObject({
      phase: "hold",
      knee: 12,
      start: { limit: 12, source: "previous-run" },
    });
    expect(d.controller.learnedLimit).toBeUndefined();
    for (let i = 0; i < 8; i++) d.roundTrip(100);
    expect(d.controller.learnedLimit).toBeGreaterThanOrEqual(12);
  });

  it("a known start given after construction holds there, until the first answer only", () => {
    const d = new Driver({ max: 64 });
    expect(d.controller.startFrom(100, "previous-run")).toBe(true);
    expect(d.controller.state).toMatchObject({
      limit: 64,
      phase: "hold",
      start: { limit: 64, source: "previous-run" },
    });
    d.roundTrip(100);
    expect(d.controller.startFrom(3, "probe")).toBe(false);
    expect(d.controller.state.start.source).toBe("previous-run");
    expect(() => new AdaptiveConcurrency().startFrom(0, "probe")).toThrow(ConfigError);
  });

  it("with known limits, the buckets pace a first wave of 16 and the first answer sets the ceiling", () => {
    // 600 RPM = 10 requests/s, 200 ms per call: ceil(1.2 * 10 * 0.2) = 3.
    const d = new Driver({ max: 100, requestsPerMinute: 600 });
    // Not the maximum: calls the provider has not seen yet may reach it all at once.
    expect(d.controller.limit).toBe(16);
    expect(d.controller.state.start.source).toBe("rate-limits");
    d.now += 200;
    d.outcome("success", 200);
    expect(d.controller.state.ceiling).toBe(3);
    expect(d.controller.limit).toBe(3);
    // Known TPM: the tokens per request come with the first answer, and so does the ceiling.
    const t = new Driver({ max: 100, tokensPerMinute: 60_000 });
    expect(t.controller.limit).toBe(16);
    t.now += 1_000;
    t.outcome("success", 1_000, { inFlight: 1, charged: 1_000 });
    expect(t.controller.limit).toBe(2);
  });

  it("limits learned during the search end it at the Little's-law ceiling", () => {
    const d = new Driver();
    d.wave(() => 1_000);
    d.wave(() => 1_000);
    expect(d.controller.limit).toBe(16);
    for (let i = 0; i < 10; i++) d.outcome("success", 1_000, { charged: 1_000 });
    // 60k TPM at 1,000 tokens per request = 1 request/s; 1 s per call: ceil(1.2) = 2.
    d.controller.setRateLimits({ tokensPerMinute: 60_000 });
    expect(d.controller.limit).toBe(2);
    expect(d.controller.state.phase).toBe("hold");
    expect(d.changes.at(-1)).toBe(2);
  });

  it("caps the limit at the ceiling when the rate limits are known", () => {
    const d = new Driver({ requestsPerMinute: 600 });
    for (let i = 0; i < 20; i++) d.roundTrip(200);
    expect(d.controller.state.ceiling).toBe(3);
    expect(d.controller.limit).toBe(3);
  });

  it("notifies only when the integer limit changes", () => {
    const d = new Driver();
    d.wave(() => 10);
    expect(d.changes).toEqual([2]);
    expect(Number.isInteger(d.controller.limit)).toBe(true);
  });

  it("validates its options", () => {
    const bad: AdaptiveConcurrencyOptions[] = [
      { min: 0 },
      { max: 0 },
      { initial: 300 },
      { rateLimitBackoff: 1 },
      { overloadBackoff: 0 },
      { efficiency: 1 },
      { growth: 1.5 },
      { headroom: 0.5 },
      { requestsPerMinute: -1 },
    ];
    for (const options of bad) expect(() => new AdaptiveConcurrency(options)).toThrow(ConfigError);
    expect(() => new AdaptiveConcurrency({ min: 0 })).toThrow(/concurrency\.min/);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TokenBucket } from "./token-bucket.ts";

describe("TokenBucket", () => {
  it("starts full with capacity = rate x burstSeconds and refills continuously", () => {
    const bucket = new TokenBucket({ dimension: "requests", limitPerMinute: 600, now: 0 });
    expect(bucket.capacity).toBe(10);
    expect(bucket.waitMs(10, 0)).toBe(0);
    bucket.take(10, 0);
    expect(bucket.waitMs(1, 0)).toBe(100); // 10 per second
    expect(bucket.level(50)).toBeCloseTo(0.5);
    expect(bucket.level(100_000)).toBe(10); // never above capacity
  });

  it("a limit below one request per minute still admits one at a time, at its pace", () => {
    // Regression: --rpm 0.5 made every request "too large" (a cost of 1 above a limit of 0.5).
    const bucket = new TokenBucket({ dimension: "requests", limitPerMinute: 0.5, now: 0 });
    expect(bucket.largestCost).toBe(1);
    expect(bucket.waitMs(1, 0)).toBe(0);
    bucket.take(1, 0);
    // One request every two minutes: the next waits for the bucket to be full again.
    expect(bucket.waitMs(1, 0)).toBeGreaterThan(119_000);
    expect(bucket.waitMs(1, 0)).toBeLessThanOrEqual(120_000);
    expect(bucket.waitMs(2, 0)).toBe(Number.POSITIVE_INFINITY);
  });

  it("admits a cost above capacity only when full, and drives the level negative", () => {
    const bucket = new TokenBucket({
      dimension: "tokens",
      limitPerMinute: 60_000,
      burstSeconds: 1,
      now: 0,
    });
    bucket.take(1, 0);
    expect(bucket.waitMs(5_000, 0)).toBe(1); // waits for a full bucket (1000), not for 5000
    expect(bucket.waitMs(5_000, 1)).toBe(0);
    bucket.take(5_000, 1);
    expect(bucket.level(1)).toBe(-4_000);
    expect(bucket.waitMs(1, 1)).toBe(4_001);
  });

  it("a cost above the per-minute limit never fits", () => {
    const bucket = new TokenBucket({ dimension: "tokens", limitPerMinute: 1_000, now: 0 });
    expect(bucket.waitMs(1_001, 0)).toBe(Number.POSITIVE_INFINITY);
  });

  it("property: takes over any window never exceed rate x window + max(capacity, largest cost)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 60, max: 100_000 }),
        fc.double({ min: 0.1, max: 10, noNaN: true }),
        fc.array(fc.record({ gap: fc.nat(5_000), cost: fc.integer({ min: 1, max: 5_000 }) }), {
          minLength: 1,
          maxLength: 80,
        }),
        (limit, burstSeconds, requests) => {
          const bucket = new TokenBucket({
            dimension: "tokens",
            limitPerMinute: limit,
            burstSeconds,
            now: 0,
          });
          const rate = limit / 60_000;
          const taken: Array<{ at: number; cost: number }> = [];
          let now = 0;
          let maxCost = 0;
          for (const r of requests) {
            if (r.cost > limit) continue;
            now += r.gap;
            const wait = bucket.waitMs(r.cost, now);
            now += wait; // wait exactly as the scheduler would
            expect(bucket.waitMs(r.cost, now)).toBe(0);
            bucket.take(r.cost, now);
            taken.push({ at: now, cost: r.cost });
            maxCost = Math.max(maxCost, r.cost);
          }
          const burst = Math.max(bucket.capacity, maxCost);
          for (let i = 0; i < taken.length; i++) {
            let sum = 0;
            for (let j = i; j < taken.length; j++) {
              sum += taken[j]!.cost;
              const window = taken[j]!.at - taken[i]!.at;
              expect(sum).toBeLessThanOrEqual(rate * window + burst + 1e-6);
            }
          }
        },
      ),
    );
  });
});

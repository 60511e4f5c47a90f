import { describe, expect, it } from "vitest";
import { outputLength, sampleTiming, serviceMs } from "./latency-model.ts";
import { seededRandom } from "./seeded-random.ts";

const base = { ttftMs: 100, msPerToken: 10, jitter: 0, loadFactor: 0 };

describe("latency model", () => {
  it("without jitter or load, returns the configured times", () => {
    const timing = sampleTiming(base, () => 0.5, 1);
    expect(timing).toEqual({ ttftMs: 100, msPerToken: 10 });
    expect(serviceMs(timing, 1)).toBe(100);
    expect(serviceMs(timing, 11)).toBe(200);
  });

  it("applies jitter within +-jitter, symmetric around the setting", () => {
    const settings = { ...base, jitter: 0.2 };
    expect(sampleTiming(settings, () => 0, 1)).toEqual({ ttftMs: 80, msPerToken: 8 });
    const high = sampleTiming(settings, () => 0.999_999, 1);
    expect(high.ttftMs).toBeCloseTo(120, 3);
    const random = seededRandom(7);
    for (let i = 0; i < 1000; i++) {
      const t = sampleTiming(settings, random, 1);
      expect(t.ttftMs).toBeGreaterThanOrEqual(80);
      expect(t.ttftMs).toBeLessThan(120);
    }
  });

  it("grows with load: a factor per other request in service", () => {
    const settings = { ...base, loadFactor: 0.1 };
    expect(sampleTiming(settings, () => 0.5, 1).ttftMs).toBe(100);
    expect(sampleTiming(settings, () => 0.5, 11).ttftMs).toBe(200);
    expect(sampleTiming(settings, () => 0.5, 11).msPerToken).toBe(20);
  });

  it("grows faster than linearly with loadExponent: contention whose throughput peaks", () => {
    // Seed 004's extractor: best alone or two at a time, worse beyond.
    const settings = { ...base, loadFactor: 1, loadExponent: 2 };
    const throughput = (n: number) => n / sampleTiming(settings, () => 0.5, n).ttftMs;
    expect(sampleTiming(settings, () => 0.5, 3).ttftMs).toBe(500);
    expect(throughput(2)).toBe(throughput(1));
    expect(throughput(3)).toBeLessThan(throughput(2));
  });

  it("is deterministic for a seed", () => {
    const settings = { ...base, jitter: 0.5 };
    const a = seededRandom(42);
    const b = seededRandom(42);
    for (let i = 0; i < 10; i++)
      expect(sampleTiming(settings, a, 3)).toEqual(sampleTiming(settings, b, 3));
  });

  it("draws the output length uniformly in the range and caps it at max_tokens", () => {
    expect(outputLength({ min: 50, max: 50 }, 1000, 0.7)).toEqual({ tokens: 50, capped: false });
    expect(outputLength({ min: 10, max: 19 }, 1000, 0)).toEqual({ tokens: 10, capped: false });
    expect(outputLength({ min: 10, max: 19 }, 1000, 0.999)).toEqual({ tokens: 19, capped: false });
    expect(outputLength({ min: 10, max: 19 }, 1000, 0.5)).toEqual({ tokens: 15, capped: false });
    expect(outputLength({ min: 50, max: 50 }, 16, 0.1)).toEqual({ tokens: 16, capped: true });
    expect(outputLength({ min: 16, max: 16 }, 16, 0.1)).toEqual({ tokens: 16, capped: false });
  });
});

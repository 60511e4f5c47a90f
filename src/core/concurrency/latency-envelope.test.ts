import { describe, expect, it } from "vitest";
import { LatencyEnvelope } from "./latency-envelope.ts";

describe("LatencyEnvelope", () => {
  it("knows a length once its bin has three samples, and keeps the fastest", () => {
    const e = new LatencyEnvelope(100);
    e.add(40, 190);
    e.add(40, 180);
    expect(e.expected(40)).toBeUndefined();
    e.add(39, 200);
    expect(e.expected(40)).toBe(180);
    expect(e.expected(38)).toBe(180); // the same quarter-octave bin
    expect(e.expected(44)).toBeUndefined(); // the next one
  });

  it("interpolates between the nearest known lengths on either side, and does not extrapolate", () => {
    const e = new LatencyEnvelope(100);
    for (let i = 0; i < 3; i++) {
      e.add(15, 130); // 100 ms + 2 ms per token
      e.add(63, 226);
    }
    const mid = e.expected(31) as number;
    expect(mid).toBeGreaterThan(150);
    expect(mid).toBeLessThan(175); // the true 162 ms, within the bins' width
    expect(e.expected(200)).toBeUndefined();
    expect(e.expected(2)).toBeUndefined();
  });

  it("forgets a minimum older than two windows: a slower provider is learned", () => {
    const e = new LatencyEnvelope(5);
    for (let i = 0; i < 5; i++) e.add(10, 100);
    for (let i = 0; i < 10; i++) e.add(10, 300);
    expect(e.expected(10)).toBe(300);
  });
});

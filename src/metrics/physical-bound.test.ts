import { describe, expect, it } from "vitest";
import { physicalBound } from "./physical-bound.ts";

describe("physicalBound", () => {
  it("is the longest call when nothing else binds", () => {
    const bound = physicalBound({
      calls: 10,
      latencySumMs: 10_000,
      latencyMinMs: 900,
      latencyMaxMs: 1100,
    });
    expect(bound).toMatchObject({ boundMs: 1100, binding: "latency" });
  });

  it("seed 002: 91 calls of 0.5 s at concurrency 10 -> sum/C = 4.55 s", () => {
    const bound = physicalBound({
      calls: 91,
      latencySumMs: 91 * 500,
      latencyMinMs: 500,
      latencyMaxMs: 500,
      concurrency: 10,
    });
    expect(bound.binding).toBe("concurrency");
    expect(bound.boundMs).toBeCloseTo(4550);
  });

  it("the llm_anchors example: N=10,000, L=8 s, C=64, R=500, T=200k, k=1,500 -> TPM binds at 4,500 s", () => {
    const bound = physicalBound({
      calls: 10_000,
      latencySumMs: 10_000 * 8000,
      latencyMinMs: 8000,
      latencyMaxMs: 8000,
      concurrency: 64,
      requestsPerMinute: 500,
      tokensPerMinute: 200_000,
      tokensCharged: 10_000 * 1500,
    });
    expect(bound.binding).toBe("tokens");
    expect(bound.terms.concurrencyMs).toBeCloseTo(1_250_000);
    expect(bound.terms.requestsMs).toBeCloseTo(1_200_000 + 8000);
    expect(bound.boundMs).toBeCloseTo(4_500_000 + 8000);
  });

  it("subtracts the burst the buckets allow at the start", () => {
    const bound = physicalBound({
      calls: 120,
      latencySumMs: 120 * 10,
      latencyMinMs: 10,
      latencyMaxMs: 10,
      requestsPerMinute: 600,
      burstSeconds: 1,
    });
    // 10 go at once; the other 110 at 10/s take 11 s, then the last call's latency.
    expect(bound.boundMs).toBeCloseTo(11_010);
  });
});

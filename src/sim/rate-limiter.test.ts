import { describe, expect, it } from "vitest";
import { RateLimiter } from "./rate-limiter.ts";
import { type LimitsInput, resolveSimConfig } from "./sim-config.ts";

function limiter(limits: LimitsInput) {
  const clock = { t: 0, now: () => clock.t };
  const pool = resolveSimConfig({ limits }).pools.openai;
  return { clock, limiter: new RateLimiter(pool, clock.now) };
}

describe("RateLimiter", () => {
  it("admits everything when no limit is set", () => {
    const { limiter: l } = limiter({});
    for (let i = 0; i < 1000; i++)
      expect(l.admit({ tokens: 1e9, inputTokens: 1e9 })).toBeUndefined();
    expect(l.charged.requests).toBe(1000);
  });

  it("charges all buckets or none", () => {
    const { limiter: l } = limiter({ rpm: 600, tpm: 60_000 }); // 10 requests, 1000 tokens of burst
    expect(l.admit({ tokens: 600, inputTokens: 0 })).toBeUndefined();
    const refusal = l.admit({ tokens: 600, inputTokens: 0 });
    expect(refusal).toMatchObject({ dimension: "tokens", limit: 60_000, cost: 600, level: 400 });
    expect(refusal?.retryAfterMs).toBeCloseTo(200, 6); // 200 tokens at 1 per ms
    expect(l.requests?.level()).toBe(9); // the refused request was not charged
    expect(l.charged).toEqual({ requests: 1, tokens: 600, inputTokens: 0, outputTokens: 0 });
  });

  it("reports the longest wait over every refusing bucket", () => {
    const { limiter: l } = limiter({ rpm: 60, tpm: 6000 }); // 1 request, 100 tokens
    expect(l.admit({ tokens: 100, inputTokens: 0 })).toBeUndefined();
    const refusal = l.admit({ tokens: 100, inputTokens: 0 });
    expect(refusal?.dimension).toBe("requests");
    expect(refusal?.retryAfterMs).toBeCloseTo(1000, 6);
  });

  it("refuses a cost above the per-minute limit outright", () => {
    const { limiter: l } = limiter({ tpm: 1000, itpm: 500 });
    expect(l.admit({ tokens: 1001, inputTokens: 1 })).toMatchObject({
      dimension: "tokens",
      tooLarge: true,
    });
    expect(l.admit({ tokens: 10, inputTokens: 501 })).toMatchObject({
      dimension: "input_tokens",
      tooLarge: true,
      retryAfterMs: 0,
    });
  });

  it("OTPM admits while positive and is charged by actual output afterwards", () => {
    const { clock, limiter: l } = limiter({ otpm: 600 }); // capacity 10, 0.01 per ms
    expect(l.admit({ tokens: 0, inputTokens: 0 })).toBeUndefined();
    l.settleOutput(25);
    expect(l.outputTokens?.level()).toBe(-15);
    const refusal = l.admit({ tokens: 0, inputTokens: 0 });
    expect(refusal?.dimension).toBe("output_tokens");
    expect(refusal?.retryAfterMs).toBeCloseTo(1600, 6);
    clock.t += 1600;
    expect(l.admit({ tokens: 0, inputTokens: 0 })).toBeUndefined();
    expect(l.charged.outputTokens).toBe(25);
  });

  it("reset refills and zeroes the totals", () => {
    const { limiter: l } = limiter({ rpm: 60 });
    l.admit({ tokens: 0, inputTokens: 0 });
    l.reset();
    expect(l.requests?.level()).toBe(1);
    expect(l.charged.requests).toBe(0);
  });
});

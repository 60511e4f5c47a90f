import { describe, expect, it } from "vitest";
import { FakeClock } from "../core/fake-clock.ts";
import { isRefusal, type RateHold, TenantLimiter } from "./tenant-limiter.ts";

function held(value: ReturnType<TenantLimiter["reserve"]>): RateHold {
  if (isRefusal(value)) throw new Error(`refused: ${JSON.stringify(value)}`);
  return value;
}

describe("TenantLimiter", () => {
  it("spaces requests at the tenant's rate, in arrival order, with the wait known up front", () => {
    const clock = new FakeClock();
    // 60 RPM, burst 1 s: one request now, then one a second.
    const limiter = new TenantLimiter({ requestsPerMinute: 60 }, clock);
    const waits = [0, 1, 2, 3].map(
      () => held(limiter.reserve(10, Number.POSITIVE_INFINITY)).waitMs,
    );
    expect(waits[0]).toBe(0);
    expect(waits[1]).toBeCloseTo(1000, -1);
    expect(waits[2]).toBeCloseTo(2000, -1);
    expect(waits[3]).toBeCloseTo(3000, -1);
  });

  it("refuses a request that would wait longer than allowed, with when it could go", async () => {
    const clock = new FakeClock();
    const limiter = new TenantLimiter({ requestsPerMinute: 60 }, clock);
    held(limiter.reserve(1, 0));
    const refusal = limiter.reserve(1, 500);
    expect(isRefusal(refusal)).toBe(true);
    if (!isRefusal(refusal)) return;
    expect(refusal.dimension).toBe("requests");
    expect(refusal.limitPerMinute).toBe(60);
    expect(refusal.retryAfterMs).toBeCloseTo(500, -1);
    // A refusal takes nothing: after a second the next one goes at once.
    await clock.advance(1000);
    expect(held(limiter.reserve(1, 0)).waitMs).toBe(0);
  });

  it("a cancelled hold gives its place back", () => {
    const clock = new FakeClock();
    const limiter = new TenantLimiter({ requestsPerMinute: 60 }, clock);
    held(limiter.reserve(1, 0));
    const second = held(limiter.reserve(1, 10_000));
    expect(second.waitMs).toBeGreaterThan(900);
    second.cancel();
    expect(held(limiter.reserve(1, 10_000)).waitMs).toBeCloseTo(second.waitMs, -1);
  });

  it("reconciles tokens with what the answer used", () => {
    const clock = new FakeClock();
    // 6,000 TPM, burst 1 s = 100 tokens.
    const limiter = new TenantLimiter({ tokensPerMinute: 6000 }, clock);
    const first = held(limiter.reserve(100, 0));
    expect(isRefusal(limiter.reserve(50, 0))).toBe(true);
    first.settle(40); // 60 tokens come back
    expect(held(limiter.reserve(50, 0)).waitMs).toBe(0);
  });

  it("a request larger than a whole minute's tokens can never go", () => {
    const limiter = new TenantLimiter({ tokensPerMinute: 1000 }, new FakeClock());
    const refusal = limiter.reserve(5000, Number.POSITIVE_INFINITY);
    expect(isRefusal(refusal) && refusal.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
  });

  it("without limits, nothing waits", () => {
    const limiter = new TenantLimiter({}, new FakeClock());
    for (let i = 0; i < 100; i++) expect(held(limiter.reserve(1e6, 0)).waitMs).toBe(0);
  });
});

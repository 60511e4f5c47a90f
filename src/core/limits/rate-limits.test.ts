import { describe, expect, it } from "vitest";
import type { Charge } from "./limit.ts";
import { RateLimits } from "./rate-limits.ts";

const charge = (c: Partial<Charge>): Charge => ({
  requests: 1,
  tokens: 0,
  inputTokens: 0,
  outputTokens: 0,
  ...c,
});

describe("RateLimits", () => {
  it("waits for the slowest bucket: one wait for all dimensions", () => {
    const limits = new RateLimits({
      limits: { requests: 600, tokens: 60_000 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    limits.take(charge({ tokens: 1_000 }), 0); // tokens bucket empty, requests at 9
    expect(limits.waitMs(charge({ tokens: 500 }), 0)).toBe(500);
    expect(limits.waitMs(charge({ tokens: 0 }), 0)).toBe(0);
  });

  it("names the dimension a request can never fit", () => {
    const limits = new RateLimits({
      limits: { inputTokens: 10_000 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    expect(limits.tooLarge(charge({ inputTokens: 20_000 }))).toEqual({
      dimension: "inputTokens",
      limit: 10_000,
      cost: 20_000,
    });
    expect(limits.tooLarge(charge({ inputTokens: 9_000 }))).toBeUndefined();
  });

  it("reconciles: refunds an over-estimate, charges an under-estimate", () => {
    const limits = new RateLimits({
      limits: { tokens: 60_000 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    const estimate = charge({ tokens: 800 });
    limits.take(estimate, 0);
    const after = limits.reconcile(estimate, { inputTokens: 100, outputTokens: 100 }, 0, true);
    expect(after.tokens).toBe(200);
    expect(limits.bucket("tokens")!.level(0)).toBe(800);
    limits.reconcile(after, { tokens: 1_200 }, 0, true);
    expect(limits.bucket("tokens")!.level(0)).toBe(-200);
  });

  it("lowers levels from a snapshot, minus what the provider cannot have seen yet", () => {
    const limits = new RateLimits({
      limits: { requests: 600 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    const mine = charge({});
    limits.take(mine, 0);
    limits.take(charge({}), 0);
    limits.take(charge({}), 0); // level 7, three reserved
    // Two other attempts started after the reporting one: the provider has not counted them.
    limits.applySnapshot({ requests: { remaining: 5 } }, charge({ requests: 2 }), 0);
    expect(limits.bucket("requests")!.level(0)).toBe(3); // 5 - 2 unseen
    limits.applySnapshot({ requests: { remaining: 100 } }, charge({ requests: 2 }), 0);
    expect(limits.bucket("requests")!.level(0)).toBe(3); // never raised
    // A reading from outside any attempt: every reservation counts as unseen.
    limits.applySnapshot({ requests: { remaining: 4 } }, undefined, 0);
    expect(limits.bucket("requests")!.level(0)).toBe(1); // 4 - 3 reserved
    void mine;
  });

  it("a fixed window (Azure) holds the level until the reset", () => {
    const limits = new RateLimits({
      limits: { requests: 600 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    // Azure: 0 left, the window resets in 40 s (a continuous refill of 600 would take 60 s).
    limits.applySnapshot(
      { requests: { limit: 600, remaining: 0, resetMs: 40_000, fixedWindow: true } },
      undefined,
      0,
    );
    expect(limits.waitMs(charge({}), 0)).toBe(40_100);
    expect(limits.bucket("requests")!.level(39_999)).toBe(0);
    expect(limits.waitMs(charge({}), 40_100)).toBe(0);
  });

  it("a continuous provider's reset changes nothing, however short (the simulator's 1 s bucket)", () => {
    const limits = new RateLimits({
      limits: { requests: 600 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    // OpenAI: 0 left, full again in 60 s at 10 per second: the next request fits in 100 ms.
    limits.applySnapshot({ requests: { limit: 600, remaining: 0, resetMs: 60_000 } }, undefined, 0);
    expect(limits.waitMs(charge({}), 0)).toBe(100);
    limits.applySnapshot({ requests: { limit: 600, remaining: 0, resetMs: 1_000 } }, undefined, 0);
    expect(limits.waitMs(charge({}), 0)).toBe(100);
  });

  it("learns a limit it did not have, and lowers one set too high", () => {
    const limits = new RateLimits({
      limits: { requests: 1_000 },
      burstSeconds: 1,
      learnLimits: true,
      now: 0,
    });
    limits.applySnapshot(
      { tokens: { limit: 6_000, remaining: 50 }, requests: { limit: 600 } },
      undefined,
      0,
    );
    expect(limits.bucket("tokens")!.limitPerMinute).toBe(6_000);
    expect(limits.bucket("tokens")!.level(0)).toBe(50);
    expect(limits.bucket("requests")!.limitPerMinute).toBe(600);
    const noLearning = new RateLimits({ limits: {}, burstSeconds: 1, learnLimits: false, now: 0 });
    noLearning.applySnapshot({ tokens: { limit: 6_000 } }, undefined, 0);
    expect(noLearning.bucket("tokens")).toBeUndefined();
  });
});

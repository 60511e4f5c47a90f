import { describe, expect, it } from "vitest";
import { RateLimitError, ServerError } from "../../errors.ts";
import { seededRandom } from "../random.ts";
import { backoffDelay } from "./backoff.ts";
import { DefaultRetryPolicy } from "./default-retry-policy.ts";
import { RetryBudget } from "./retry-budget.ts";

const ctx = (error: unknown, attempt: number, now = 0) => ({
  error,
  result: "server" as const,
  attempt,
  previousDelayMs: 0,
  now,
});

describe("backoffDelay", () => {
  it("full jitter stays under min(max, base * 2^(n-1))", () => {
    const random = seededRandom(1);
    const options = { jitter: "full" as const, baseDelayMs: 100, maxDelayMs: 1_000 };
    for (let attempt = 1; attempt <= 10; attempt++) {
      const d = backoffDelay(options, attempt, 0, random);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(1_000, 100 * 2 ** (attempt - 1)));
    }
  });

  it("decorrelated jitter stays in [base, min(max, 3 * previous)]", () => {
    const random = seededRandom(2);
    const options = { jitter: "decorrelated" as const, baseDelayMs: 100, maxDelayMs: 10_000 };
    let previous = 0;
    for (let attempt = 1; attempt <= 20; attempt++) {
      const d = backoffDelay(options, attempt, previous, random);
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(Math.min(10_000, Math.max(100, previous * 3)));
      previous = d;
    }
  });
});

describe("DefaultRetryPolicy", () => {
  it("gives up after maxAttempts, and on non-retryable errors", () => {
    const policy = new DefaultRetryPolicy({ maxAttempts: 3, budget: false }, seededRandom(1));
    expect(policy.decide(ctx(new ServerError(), 1)).retry).toBe(true);
    expect(policy.decide(ctx(new ServerError(), 3))).toEqual({
      retry: false,
      reason: "attempts-exhausted",
    });
    expect(policy.decide(ctx(new Error("bug"), 1))).toEqual({
      retry: false,
      reason: "not-retryable",
    });
  });

  it("retryOn overrides the classification both ways", () => {
    const policy = new DefaultRetryPolicy(
      {
        budget: false,
        retryOn: (e) =>
          e instanceof TypeError ? true : e instanceof ServerError ? false : undefined,
      },
      seededRandom(1),
    );
    expect(policy.decide(ctx(new TypeError("flaky"), 1)).retry).toBe(true);
    expect(policy.decide(ctx(new ServerError(), 1)).retry).toBe(false);
    expect(policy.decide(ctx(new RateLimitError(), 1)).retry).toBe(true);
  });

  it("uses Retry-After as a minimum, even beyond maxDelayMs", () => {
    const policy = new DefaultRetryPolicy({ maxDelayMs: 1_000, budget: false }, seededRandom(1));
    const decision = policy.decide(ctx(new RateLimitError(undefined, { retryAfterMs: 90_000 }), 1));
    expect(decision).toEqual({ retry: true, delayMs: 90_000 });
  });
});

describe("RetryBudget", () => {
  it("allows max(minRetries, ratio * first attempts) retries per sliding window", () => {
    const budget = new RetryBudget({ ratio: 0.2, windowMs: 10_000, minRetries: 2 });
    for (let i = 0; i < 20; i++) budget.recordAttempt(0);
    const allowed = Array.from({ length: 10 }, () => budget.tryRetry(0)).filter(Boolean).length;
    expect(allowed).toBe(4); // 20% of 20
    expect(budget.tryRetry(5_000)).toBe(false);
    // Once the window has slid past the old traffic, only the minimum is left, then refills.
    expect(budget.tryRetry(10_500)).toBe(true);
    expect(budget.tryRetry(10_500)).toBe(true);
    expect(budget.tryRetry(10_500)).toBe(false);
  });
});

describe("DefaultRetryPolicy: the retry budget", () => {
  it("an empty budget stops server-error retries but not 429 retries (the cooldown paces those)", () => {
    const policy = new DefaultRetryPolicy(
      { maxAttempts: 5, budget: { ratio: 0, windowMs: 10_000, minRetries: 0 } },
      seededRandom(1),
    );
    policy.onAttempt(1, 0);
    expect(policy.decide(ctx(new ServerError(undefined, { status: 500 }), 1))).toEqual({
      retry: false,
      reason: "retry-budget-exhausted",
    });
    const rateLimited = policy.decide(
      ctx(new RateLimitError(undefined, { retryAfterMs: 2_000 }), 1),
    );
    expect(rateLimited).toMatchObject({ retry: true });
    expect((rateLimited as { delayMs: number }).delayMs).toBeGreaterThanOrEqual(2_000);
  });
});

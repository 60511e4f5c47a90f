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
  it("successes earn retries; a dry bucket makes a retry wait for its turn, never refuses it", () => {
    const budget = new RetryBudget({ perSuccess: 1, perSecond: 2, burst: 3 });
    // The burst: three retries at once.
    expect([budget.tryTake(0), budget.tryTake(0), budget.tryTake(0)]).toEqual([0, 0, 0]);
    // Dry, nothing succeeding: the next retry waits 0.5 s (one retry's worth at 2/s), then goes.
    expect(budget.tryTake(0)).toBe(500);
    expect(budget.tryTake(500)).toBe(0);
    // A success pays for a retry at once.
    budget.recordSuccess(500);
    expect(budget.tryTake(500)).toBe(0);
  });

  it("while calls succeed, a dry bucket refills at their pace, not at perSecond", () => {
    const budget = new RetryBudget({ perSuccess: 1, perSecond: 2, burst: 1 });
    for (let t = 0; t < 1_000; t += 10) budget.recordSuccess(t); // 100 successes a second
    expect(budget.tryTake(1_000)).toBe(0);
    // About one success every 10 ms: the next token is expected within tens of ms (the rate is
    // smoothed over 2 s, so it reads low after only 1 s), not 500 ms.
    expect(budget.tryTake(1_000)).toBeLessThan(50);
  });

  it("new work waits only while a burst of retries waits and nothing succeeds", () => {
    const budget = new RetryBudget({ perSecond: 2, burst: 2 });
    budget.tryTake(0);
    budget.tryTake(0);
    expect(budget.admissionWaitMs(0, 1)).toBe(0); // fewer retries waiting than a burst
    expect(budget.admissionWaitMs(0, 2)).toBe(500); // the provider is down: slow down
    for (let t = 0; t < 100; t += 10) budget.recordSuccess(t);
    expect(budget.admissionWaitMs(100, 5)).toBe(0); // calls succeed: their successes pay
  });
});

describe("DefaultRetryPolicy: the retry budget", () => {
  it("a dry budget delays server-error retries (never refuses them), and not 429 retries", () => {
    const policy = new DefaultRetryPolicy(
      { maxAttempts: 5, baseDelayMs: 0, budget: { perSecond: 1, burst: 0 } },
      seededRandom(1),
    );
    const server = new ServerError(undefined, { status: 500 });
    expect(policy.decide(ctx(server, 1))).toEqual({ retry: true, delayMs: 0 });
    expect(policy.retryWaitMs(0, server)).toBe(1_000);
    expect(policy.retryWaitMs(1_000, server)).toBe(0);
    // A 429's retry waits for its Retry-After (the cooldown paces those), not for the budget.
    const rateLimited = new RateLimitError(undefined, { retryAfterMs: 500 });
    expect(policy.decide(ctx(rateLimited, 1))).toEqual({ retry: true, delayMs: 500 });
    expect(policy.retryWaitMs(1_000, rateLimited)).toBe(0);
  });

  it("while the provider answers most calls, an item's backoff stops growing after two failures", () => {
    const options = { baseDelayMs: 100, maxDelayMs: 10_000, maxAttempts: 10 };
    const healthy = new DefaultRetryPolicy(options, () => 0.999);
    const failing = new DefaultRetryPolicy({ ...options, budget: { burst: 4 } }, () => 0.999);
    for (let i = 0; i < 4; i++) failing.retryWaitMs(0, new ServerError()); // drain its budget
    const server = new ServerError(undefined, { status: 500 });
    const delay = (p: DefaultRetryPolicy, attempt: number) =>
      (p.decide(ctx(server, attempt)) as { delayMs: number }).delayMs;
    expect(delay(healthy, 6)).toBeLessThanOrEqual(200);
    expect(delay(failing, 6)).toBeGreaterThan(3_000);
  });
});

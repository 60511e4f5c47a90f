// The standard retry policy: classification (`classifyFailure`, overridable with `retryOn`),
// a maximum number of attempts, exponential backoff with jitter, the provider's Retry-After as a
// minimum (never discarded, however long), and a retry budget.

import { ProviderError } from "../../errors.ts";
import type { Random } from "../random.ts";
import { backoffDelay, type Jitter } from "./backoff.ts";
import { classifyFailure } from "./classify-failure.ts";
import { RetryBudget, type RetryBudgetOptions } from "./retry-budget.ts";
import type { RetryContext, RetryDecision, RetryPolicy } from "./retry-policy.ts";

export type RetryOptions = {
  /** Attempts per item, the first included; 1 disables retries. @default 5 */
  maxAttempts?: number;
  /** The first backoff ceiling (full jitter) or floor (decorrelated), ms. @default 500 */
  baseDelayMs?: number;
  /** The longest backoff, ms. A longer Retry-After is still honoured. @default 30_000 */
  maxDelayMs?: number;
  /** @default "full" */
  jitter?: Jitter;
  /**
   * The retry budget for failures other than 429s (whose retries the shared cooldown paces);
   * `false` turns it off. @default { ratio: 0.2, windowMs: 10_000, minRetries: 10 }
   */
  budget?: RetryBudgetOptions | false;
  /**
   * Overrides the classification: return true to retry, false not to, undefined for the default
   * (see `classifyFailure`). This is how a custom task's own exceptions become retryable.
   * @default undefined
   */
  retryOn?: ((error: unknown, attempt: number) => boolean | undefined) | undefined;
};

export class DefaultRetryPolicy implements RetryPolicy {
  readonly #maxAttempts: number;
  readonly #backoff: { jitter: Jitter; baseDelayMs: number; maxDelayMs: number };
  readonly #budget: RetryBudget | undefined;
  readonly #retryOn: RetryOptions["retryOn"];
  readonly #random: Random;

  constructor(options: RetryOptions = {}, random: Random = Math.random) {
    this.#maxAttempts = options.maxAttempts ?? 5;
    this.#backoff = {
      jitter: options.jitter ?? "full",
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 30_000,
    };
    this.#budget = options.budget === false ? undefined : new RetryBudget(options.budget);
    this.#retryOn = options.retryOn;
    this.#random = random;
  }

  onAttempt(attempt: number, now: number): void {
    if (attempt === 1) this.#budget?.recordAttempt(now);
  }

  decide(context: RetryContext): RetryDecision {
    const { error, attempt } = context;
    const retryable = this.#retryOn?.(error, attempt) ?? classifyFailure(error).retryable;
    if (!retryable) return { retry: false, reason: "not-retryable" };
    if (attempt >= this.#maxAttempts) return { retry: false, reason: "attempts-exhausted" };
    // A 429's retry is paced by the shared cooldown and the buckets: it cannot hammer the
    // provider, so it does not spend the budget, which guards against amplifying failures.
    const rateLimited = error instanceof ProviderError && error.failureClass === "rate_limit";
    if (!rateLimited && this.#budget !== undefined && !this.#budget.tryRetry(context.now)) {
      return { retry: false, reason: "retry-budget-exhausted" };
    }
    let delayMs = backoffDelay(this.#backoff, attempt, context.previousDelayMs, this.#random);
    const hint = error instanceof ProviderError ? error.retryAfterMs : undefined;
    if (hint !== undefined && hint > delayMs) delayMs = hint;
    return { retry: true, delayMs };
  }
}

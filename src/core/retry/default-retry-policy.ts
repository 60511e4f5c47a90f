// The standard retry policy: classification (`classifyFailure`, overridable with `retryOn`),
// a maximum number of attempts, exponential backoff with jitter, the provider's Retry-After as a
// minimum (the scheduler fails an item at once when it is longer than its `maxRetryAfterMs`), and
// a retry budget that paces retries (and, deep in debt, new work) but never fails an item.

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
  /**
   * The longest backoff, ms (the provider SDKs' own cap). A longer Retry-After is still
   * honoured, up to the scheduler's `maxRetryAfterMs`. A provider that keeps failing is slowed
   * by the retry budget, not by ever longer sleeps. @default 8_000
   */
  maxDelayMs?: number;
  /** @default "full" */
  jitter?: Jitter;
  /**
   * The retry budget for failures other than 429s (whose retries the shared cooldown paces): it
   * delays retries when the provider fails more than it answers, never refuses one; `false` turns
   * it off. @default { perSuccess: 1, perSecond: 2, burst: 20 }
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
      maxDelayMs: options.maxDelayMs ?? 8_000,
    };
    this.#budget = options.budget === false ? undefined : new RetryBudget(options.budget);
    this.#retryOn = options.retryOn;
    this.#random = random;
  }

  onAttempt(_attempt: number, _now: number): void {}

  onSuccess(now: number): void {
    this.#budget?.recordSuccess(now);
  }

  retryWaitMs(now: number, error: unknown): number {
    // A 429's retry is paced by the shared cooldown and the buckets: it cannot hammer the
    // provider, so it does not spend the budget.
    if (error instanceof ProviderError && error.failureClass === "rate_limit") return 0;
    return this.#budget?.tryTake(now) ?? 0;
  }

  admissionWaitMs(now: number, waitingRetries: number): number {
    return this.#budget?.admissionWaitMs(now, waitingRetries) ?? 0;
  }

  decide(context: RetryContext): RetryDecision {
    const { error, attempt } = context;
    const retryable = this.#retryOn?.(error, attempt) ?? classifyFailure(error).retryable;
    if (!retryable) return { retry: false, reason: "not-retryable" };
    if (attempt >= this.#maxAttempts) return { retry: false, reason: "attempts-exhausted" };
    // Backoff spares a struggling provider; the budget says whether it struggles. While it
    // answers most calls (the budget at least half full), an item's own bad luck is no reason
    // to wait long: its backoff grows for two failures at most. As the budget drains, the
    // exponential backoff applies in full.
    const healthy = this.#budget?.healthy(context.now) ?? false;
    const exponent = healthy ? Math.min(attempt, 2) : attempt;
    let delayMs = backoffDelay(this.#backoff, exponent, context.previousDelayMs, this.#random);
    const hint = error instanceof ProviderError ? error.retryAfterMs : undefined;
    if (hint !== undefined && hint > delayMs) delayMs = hint;
    return { retry: true, delayMs };
  }
}

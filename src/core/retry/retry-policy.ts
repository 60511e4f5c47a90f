// The retry family: one `RetryPolicy` decides, after each failed attempt, whether the item gets
// another attempt and after how long. It is the only retry authority in the process (provider SDKs
// run with retries off); a retry goes back through admission like any other attempt.

import type { AttemptResult } from "../concurrency/concurrency-controller.ts";

/**
 * Why an item stopped retrying and failed: its error is not worth a retry, it used its attempts,
 * or the provider asked to wait longer than the scheduler's `maxRetryAfterMs`.
 */
export type GiveUpReason = "not-retryable" | "attempts-exhausted" | "retry-after-too-long";

export type RetryContext = {
  /** What the failed attempt threw (or the TimeoutError the scheduler raised). */
  error: unknown;
  /** How it failed (never `success` or `cancelled`). */
  result: AttemptResult;
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** The delay before that attempt, ms (0 for the first). For decorrelated jitter. */
  previousDelayMs: number;
  /** Clock time, ms. */
  now: number;
};

export type RetryDecision =
  | { retry: true; delayMs: number }
  | { retry: false; reason: Exclude<GiveUpReason, "retry-after-too-long"> };

export interface RetryPolicy {
  /** Called when an attempt starts; first attempts are the traffic a retry budget is a share of. */
  onAttempt(attempt: number, now: number): void;
  /** Called when an attempt succeeds (a retry budget earns from successes). */
  onSuccess?(now: number): void;
  /** Decides after a failed attempt: give up, or retry after a delay (backoff, Retry-After). */
  decide(context: RetryContext): RetryDecision;
  /**
   * Called when a retry's delay has ended, before it re-enters admission (`error`: what its last
   * attempt threw): 0 to let it go (a budget spends one retry), else how long it waits before
   * asking again, ms. A retry is delayed, never refused.
   */
  retryWaitMs?(now: number, error: unknown): number;
  /**
   * How long new work should wait before it is admitted, ms (0: not at all), given how many
   * retries are waiting on `retryWaitMs`: a provider that keeps failing lowers admission for all.
   */
  admissionWaitMs?(now: number, waitingRetries: number): number;
}

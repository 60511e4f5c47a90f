// The retry family: one `RetryPolicy` decides, after each failed attempt, whether the item gets
// another attempt and after how long. It is the only retry authority in the process (provider SDKs
// run with retries off); a retry goes back through admission like any other attempt.

import type { AttemptResult } from "../concurrency/concurrency-controller.ts";

/** Why an item stopped retrying and failed. */
export type GiveUpReason = "not-retryable" | "attempts-exhausted" | "retry-budget-exhausted";

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
  | { retry: false; reason: GiveUpReason };

export interface RetryPolicy {
  /** Called when an attempt starts; first attempts are the traffic a retry budget is a share of. */
  onAttempt(attempt: number, now: number): void;
  /** Decides after a failed attempt. A `retry: true` answer is a commitment (budget is spent). */
  decide(context: RetryContext): RetryDecision;
}

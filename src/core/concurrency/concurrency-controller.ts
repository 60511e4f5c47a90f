// How many attempts may hold a slot at once. A controller sees every start and every outcome and
// owns the limit; the scheduler only reads `limit` and listens for changes. The static controller
// is `StaticConcurrency`; an adaptive one (AIMD with a latency brake) implements the same
// interface in a later issue.

import type { FailureClass } from "../../errors.ts";

/**
 * How an attempt ended, as a controller sees it: `success`, a provider `FailureClass`,
 * `task_error` (a non-provider exception from the task) or `cancelled` (aborted by the caller,
 * a deadline or close, or a task that nested work and gave its slot back: neither says anything
 * about the provider's health).
 */
export type AttemptResult = "success" | FailureClass | "task_error" | "cancelled";

export type AttemptStart = {
  /** Attempts holding a slot, including this one. */
  inFlight: number;
  /** Clock time, ms. */
  now: number;
};

export type AttemptSample = {
  result: AttemptResult;
  /** From the attempt's start to its outcome, ms (for a timeout: the timeout). */
  latencyMs: number;
  /** Output tokens, when the task reported usage. */
  outputTokens: number | undefined;
  /** The provider's retry hint, ms, when it gave one. */
  retryAfterMs: number | undefined;
  /** Attempts holding a slot when the outcome was known (this one included). */
  inFlight: number;
  /** Clock time, ms. */
  now: number;
};

export interface ConcurrencyController {
  /** The current limit, >= 1. May be fractional; the scheduler uses its floor. */
  readonly limit: number;
  /** Called when an attempt takes a slot. */
  onStart(start: AttemptStart): void;
  /** Called once per attempt, when its outcome is known. */
  onOutcome(sample: AttemptSample): void;
  /** Calls `listener` whenever `limit` changes; returns a function that unsubscribes. */
  subscribe(listener: (limit: number) => void): () => void;
}

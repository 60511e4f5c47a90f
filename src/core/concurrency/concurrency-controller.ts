// How many attempts may hold a slot at once. A controller sees every start and every outcome and
// owns the limit; the scheduler only reads `limit` and listens for changes. `StaticConcurrency`
// keeps a fixed limit; `AdaptiveConcurrency` (a search for the knee of throughput against the
// limit, with backoff on 429s and a Little's-law ceiling) finds the provider's capacity.

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
  /** Input + output tokens the attempt was charged against the limits (after reconcile). */
  tokens?: number | undefined;
  /** Input tokens the attempt was charged. */
  inputTokens?: number | undefined;
  /** Attempts holding a slot when the outcome was known (this one included). */
  inFlight: number;
  /**
   * The mean number of attempts holding a slot while this one ran (itself included): the load
   * it met. @default inFlight
   */
  meanInFlight?: number | undefined;
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
  /** The rate limits in force, whenever they are set or learned from a provider's headers. */
  setRateLimits?(limits: RateLimitsInForce): void;
}

/** Per-minute limits by dimension; undefined where a dimension is not limited. */
export type RateLimitsInForce = {
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  inputTokensPerMinute?: number | undefined;
  outputTokensPerMinute?: number | undefined;
};

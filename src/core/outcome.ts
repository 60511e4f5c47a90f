// How an item ended. Every item submitted to a scheduler ends in exactly one outcome.

import type { GiveUpReason } from "./retry/retry-policy.ts";

/** An item's id: the caller's `id`, or a number the scheduler assigns in submission order. */
export type ItemId = string | number;

/**
 * Why an item failed: the retry policy gave up (`not-retryable`, `attempts-exhausted`,
 * `retry-budget-exhausted`; `error` is the last attempt's error), or the scheduler stopped it
 * (`aborted`, `deadline-exceeded`, `request-too-large`, `closed`; `error` is the matching
 * SalvoError with the last attempt's error, if any, as its `cause`).
 */
export type FailureReason =
  | GiveUpReason
  | "aborted"
  | "deadline-exceeded"
  | "request-too-large"
  | "closed";

type OutcomeBase = {
  id: ItemId;
  /** The item's position in the input of `map`/`stream`; 0 for `settle`. */
  index: number;
  /** Attempts started (0 if it never started). */
  attempts: number;
  /** From submission to settlement, ms. */
  latencyMs: number;
};

export type Succeeded<T> = OutcomeBase & { ok: true; value: T };

/**
 * A failed item. With a `fallback` option, `fallback` holds the value to use instead; the outcome
 * stays `ok: false`, so a fallback (e.g. REVIEW_NEEDED) is never mistaken for a real answer.
 *
 * `E` is what `error` can be. The scheduler runs any task, and a task's own error ends its item
 * as it was thrown (`unknown`); the scheduler's own stops are SalvoErrors. A `Salvo` client's
 * outcomes are `Outcome<SalvoResult, SalvoError>`: every error is a typed SalvoError.
 */
export type Failed<T, E = unknown> = OutcomeBase & {
  ok: false;
  error: E;
  reason: FailureReason;
  fallback?: T | undefined;
};

export type Outcome<T, E = unknown> = Succeeded<T> | Failed<T, E>;

// The scheduler's typed events. Progress, metrics and audit subscribe; none is called from the
// scheduler's logic. Every payload carries the counts a progress bar needs at that moment, and
// every item ends in exactly one terminal event: `succeeded` or `failed`.
//
// Per item: `queued` (attempt 1) -> `started` -> [`attempt-failed` (-> `rate-limited`)
// -> `retry-scheduled` -> `queued` (attempt n) -> `started` ...] -> `succeeded` | `failed`.
// An item refused at once (closed, too large, already aborted) goes `queued` -> `failed`.

import type { AttemptResult } from "./concurrency/concurrency-controller.ts";
import type { FailureReason, ItemId } from "./outcome.ts";

export type Counts = {
  /** Clock time, ms. */
  at: number;
  /** Attempts holding a slot (including timed-out attempts that have not ended yet). */
  inFlight: number;
  /** Items waiting for admission. */
  queued: number;
  /** The current concurrency limit. */
  limit: number;
};

type ItemRef = {
  id: ItemId;
  /** Input position for `map`/`stream`, else 0. */
  index: number;
  /** The scope's name, if the item was submitted through a named scope. */
  scope: string | undefined;
};

export type QueuedEvent = Counts & ItemRef & { attempt: number; priority: number };
export type StartedEvent = Counts & ItemRef & { attempt: number; waitedMs: number };
export type AttemptFailedEvent = Counts &
  ItemRef & {
    attempt: number;
    error: unknown;
    result: AttemptResult;
    latencyMs: number;
    willRetry: boolean;
  };
export type RetryScheduledEvent = Counts &
  ItemRef & {
    nextAttempt: number;
    /** How long the retry waits outside the queue, ms (backoff, Retry-After, retry budget). */
    delayMs: number;
    /** Clock time the wait ends and the retry re-enters admission (`at + delayMs`; always set by the scheduler). */
    retryAt?: number;
    /** The provider's Retry-After hint, ms, when it gave one (the wait is at least this). */
    retryAfterMs?: number | undefined;
    error: unknown;
  };
export type RateLimitedEvent = Counts &
  ItemRef & { attempt: number; error: unknown; retryAfterMs: number | undefined };
/** Admission for the whole key is paused until `until` (a 429, or a 529/503 with a hint). */
export type CooldownEvent = Counts & { until: number; durationMs: number };
export type SucceededEvent = Counts &
  ItemRef & { attempts: number; latencyMs: number; value: unknown };
export type FailedEvent = Counts &
  ItemRef & { attempts: number; latencyMs: number; error: unknown; reason: FailureReason };
export type LimitChangedEvent = Counts & { previous: number };
/** Nothing is queued, waiting or in flight. */
export type IdleEvent = Counts;

export type SchedulerEvents = {
  queued: QueuedEvent;
  started: StartedEvent;
  "attempt-failed": AttemptFailedEvent;
  "retry-scheduled": RetryScheduledEvent;
  "rate-limited": RateLimitedEvent;
  cooldown: CooldownEvent;
  succeeded: SucceededEvent;
  failed: FailedEvent;
  "limit-changed": LimitChangedEvent;
  idle: IdleEvent;
};

export type SchedulerEventName = keyof SchedulerEvents;

/** Every event name, in the order an item meets them. */
export const SCHEDULER_EVENT_NAMES: ReadonlyArray<SchedulerEventName> = [
  "queued",
  "started",
  "attempt-failed",
  "retry-scheduled",
  "rate-limited",
  "cooldown",
  "succeeded",
  "failed",
  "limit-changed",
  "idle",
];

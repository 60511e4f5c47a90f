// What a task receives for each attempt.

import type { Usage } from "./limits/rate-limits.ts";
import type { ItemId } from "./outcome.ts";
import type { RateLimitSnapshot } from "./rate-limit-snapshot.ts";

export interface TaskContext {
  /**
   * Aborted when this attempt must stop: its timeout, the item's deadline, the caller's signal,
   * or `close()`. Pass it to the HTTP call. The attempt keeps its slot until the task's promise
   * settles, so a task that ignores it still counts against the limit.
   */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  readonly id: ItemId;
  /** The item's input position for `map`/`stream`, else 0. */
  readonly index: number;
  /** Reports the real usage: the reservation is reconciled (refund or extra charge). */
  reportUsage(usage: Usage): void;
  /** Reports the provider's rate-limit headers of this attempt's response. */
  reportRateLimits(snapshot: RateLimitSnapshot): void;
  /**
   * Says the provider has answered: what the task still does (write the answer down) is its
   * own work, not the call's, and the attempt's timeout stops. The attempt keeps its slot until
   * the task settles. The caller's signal still applies; the item's deadline, if it passes
   * meanwhile, gives the writing a grace (the attempt's timeout, at most the deadline again)
   * before it fails the item, so an answer being written down is kept.
   */
  answered(): void;
}

/** A task for `run`/`settle`: one call, attempted once per attempt. */
export type Task<T> = (context: TaskContext) => T | PromiseLike<T>;

/** A task for `map`/`stream`: one call per input item. */
export type ItemTask<I, T> = (input: I, context: TaskContext) => T | PromiseLike<T>;

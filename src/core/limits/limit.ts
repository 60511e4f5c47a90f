// The rate-limit family: one `Limit` per dimension (requests, tokens, input tokens, output
// tokens), composed by `RateLimits` into one atomic admission decision.

import type { RateDimension } from "../../errors.ts";

export type { RateDimension } from "../../errors.ts";

/** Every dimension, in a fixed order. */
export const RATE_DIMENSIONS: readonly RateDimension[] = [
  "requests",
  "tokens",
  "inputTokens",
  "outputTokens",
];

/** What one attempt is charged, per dimension. Internal form; every field is set. */
export type Charge = {
  requests: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
};

/** A per-minute budget in one dimension, refilled continuously. Times are clock milliseconds. */
export interface Limit {
  readonly dimension: RateDimension;
  /** The sustained rate, per minute. */
  readonly limitPerMinute: number;
  /** The most the budget can hold: the burst. */
  readonly capacity: number;
  /** The largest cost it can ever admit (its per-minute limit, but at least one unit). */
  readonly largestCost: number;
  /** The current level (may be negative after a large request or an extra charge). */
  level(now: number): number;
  /** 0 if `cost` can be taken now; else milliseconds until it can; Infinity if it never can. */
  waitMs(cost: number, now: number): number;
  /** Takes `cost`; the level may go negative. Call only when `waitMs` returned 0. */
  take(cost: number, now: number): void;
  /** Gives back `amount` (a refund), never above capacity. */
  give(amount: number, now: number): void;
  /** Lowers the level to `level` if it is higher. */
  lowerTo(level: number, now: number): void;
  /** Refills nothing before `until` (a provider's fixed window); refilling resumes from then. */
  hold(until: number, now: number): void;
  /** Changes the per-minute limit (and so the rate and capacity); keeps the level within capacity. */
  setLimit(limitPerMinute: number, now: number): void;
}

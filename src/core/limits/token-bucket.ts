// A continuously refilled token bucket with a bounded burst.
//
// Invariants: the level refills at `limitPerMinute / 60_000` per ms and never exceeds `capacity`
// (= limitPerMinute * burstSeconds / 60). A cost up to capacity is admitted when the level covers
// it. A cost above capacity is admitted only when the bucket is full and drives it negative, so a
// big request is never starved (it waits for at most one full refill) and the long-run rate is
// still respected: total takes over any window of length T are at most rate*T + max(capacity,
// largest cost). A cost above the whole per-minute limit never fits (`waitMs` = Infinity), except
// a single unit: a limit below one request (or token) per minute still admits one at a time, at
// its pace (`--rpm 0.5` is one request every two minutes, not "every request is too large").

import type { Limit, RateDimension } from "./limit.ts";

// Floating-point slack so a wake-up computed for exactly "enough" is not a hair short.
const EPSILON = 1e-9;

export type TokenBucketOptions = {
  dimension: RateDimension;
  /** The sustained rate, per minute; > 0. */
  limitPerMinute: number;
  /** Seconds of the per-minute rate the bucket holds (the burst). @default 1 */
  burstSeconds?: number;
  /** The clock time the bucket starts at (full). */
  now: number;
  /**
   * How far the provider's clock may lag ours, ms: a request is admitted only when the level
   * covers it and this much refill besides (never more than the bucket holds beyond the cost),
   * so a request that reaches the provider sooner than its admission order implied (network
   * jitter, a connection set up for another) still finds its token there. It costs the first
   * burst this much refill, once; the steady rate is the limit's. @default 0
   */
  marginMs?: number;
};

export class TokenBucket implements Limit {
  readonly dimension: RateDimension;
  readonly #burstSeconds: number;
  readonly #marginMs: number;
  #limit = 0;
  #capacity = 0;
  #perMs = 0;
  #level = 0;
  /** The time the level is refilled up to; later than now while held (see `hold`). */
  #updatedAt: number;

  constructor(options: TokenBucketOptions) {
    this.dimension = options.dimension;
    this.#burstSeconds = options.burstSeconds ?? 1;
    this.#marginMs = options.marginMs ?? 0;
    this.#updatedAt = options.now;
    this.#configure(options.limitPerMinute);
    this.#level = this.#capacity;
  }

  get limitPerMinute(): number {
    return this.#limit;
  }

  get capacity(): number {
    return this.#capacity;
  }

  level(now: number): number {
    this.#refill(now);
    return this.#level;
  }

  /** The largest cost this bucket can ever admit: its per-minute limit, or one unit. */
  get largestCost(): number {
    return Math.max(1, this.#limit);
  }

  waitMs(cost: number, now: number): number {
    if (cost <= 0) return 0;
    if (cost > this.largestCost) return Number.POSITIVE_INFINITY;
    this.#refill(now);
    const need = Math.min(this.#capacity, cost + this.#marginMs * this.#perMs);
    if (this.#level + EPSILON >= need) return 0;
    const held = this.#updatedAt > now ? this.#updatedAt - now : 0;
    return Math.max(1, Math.ceil(held + (need - this.#level) / this.#perMs));
  }

  take(cost: number, now: number): void {
    this.#refill(now);
    this.#level -= cost;
  }

  give(amount: number, now: number): void {
    this.#refill(now);
    this.#level = Math.min(this.#capacity, this.#level + amount);
  }

  lowerTo(level: number, now: number): void {
    this.#refill(now);
    if (level < this.#level) this.#level = level;
  }

  hold(until: number, now: number): void {
    this.#refill(now);
    if (until > this.#updatedAt) this.#updatedAt = until;
  }

  setLimit(limitPerMinute: number, now: number): void {
    this.#refill(now);
    this.#configure(limitPerMinute);
    if (this.#level > this.#capacity) this.#level = this.#capacity;
  }

  #configure(limitPerMinute: number): void {
    this.#limit = limitPerMinute;
    this.#perMs = limitPerMinute / 60_000;
    this.#capacity = (limitPerMinute * this.#burstSeconds) / 60;
  }

  #refill(now: number): void {
    const elapsed = now - this.#updatedAt;
    if (elapsed <= 0) return;
    this.#updatedAt = now;
    if (this.#level < this.#capacity) {
      const level = this.#level + elapsed * this.#perMs;
      this.#level = level < this.#capacity ? level : this.#capacity;
    }
  }
}

// A provider-side token bucket with continuous refill, as OpenAI and Anthropic enforce RPM and
// TPM: "continuously replenished ... rather than being reset at fixed intervals".

/** Monotonic milliseconds; injected so the rules can be tested on fake time. */
export type Now = () => number;

/**
 * Holds up to `capacity` units and refills at `limitPerMinute / 60_000` units per millisecond.
 * Starts full.
 *
 * Admission rule: a cost that fits the capacity is admitted when the level covers it; a cost
 * larger than the capacity is admitted only when the bucket is full, and then drives the level
 * negative, so large requests are never starved and the long-run rate still holds. Rejecting a
 * cost larger than the whole per-minute limit is the caller's decision (see `exceedsLimit`).
 */
export class TokenBucket {
  /** The configured limit per minute, as reported in `*-limit-*` headers. */
  readonly limitPerMinute: number;
  /** The most the bucket holds: the limit times the burst window. */
  readonly capacity: number;
  readonly #perMs: number;
  readonly #now: Now;
  #level: number;
  #at: number;

  constructor(limitPerMinute: number, burstSeconds: number, now: Now) {
    this.limitPerMinute = limitPerMinute;
    this.capacity = (limitPerMinute * burstSeconds) / 60;
    this.#perMs = limitPerMinute / 60_000;
    this.#now = now;
    this.#level = this.capacity;
    this.#at = now();
  }

  /** The current level after refill; negative while a large request's debt is being repaid. */
  level(): number {
    const now = this.#now();
    if (now > this.#at) {
      this.#level = Math.min(this.capacity, this.#level + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
    return this.#level;
  }

  /** Whether `cost` would be admitted now (see the class comment for the rule). */
  canTake(cost: number): boolean {
    return this.level() >= this.#threshold(cost);
  }

  /** Charges `cost` unconditionally; the level may go negative. */
  take(cost: number): void {
    this.level();
    this.#level -= cost;
  }

  /** Whether `cost` can never be admitted: it exceeds the whole per-minute limit. */
  exceedsLimit(cost: number): boolean {
    return cost > this.limitPerMinute;
  }

  /** Milliseconds until `cost` would be admitted; 0 when it would be admitted now. */
  waitMs(cost: number): number {
    const missing = this.#threshold(cost) - this.level();
    return missing > 0 ? missing / this.#perMs : 0;
  }

  /** Milliseconds until the bucket is full again. */
  msUntilFull(): number {
    return (this.capacity - this.level()) / this.#perMs;
  }

  /** Refills the bucket completely. */
  reset(): void {
    this.#level = this.capacity;
    this.#at = this.#now();
  }

  #threshold(cost: number): number {
    // A tiny epsilon absorbs float error in the refill, so "full" is reached on time.
    return Math.min(cost, this.capacity) - 1e-9;
  }
}

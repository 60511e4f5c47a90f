// A retry budget that paces retries instead of refusing them. Retries are paid from a bucket
// that successes fill (each success earns `perSuccess` retries) and time fills (`perSecond`,
// however the calls go), up to `burst`. While the provider answers most calls, successes keep
// the bucket full and retries go as soon as their backoff ends: a storm of 30% transient faults
// is retried at full speed. When it stops answering, the bucket runs dry and a retry whose
// backoff has ended waits for the next token (and asks again then), so retries fall to the pace
// of what time and the last successes earn, down to `perSecond`. Once a burst's worth of retries
// are waiting, new work waits too (`admissionWaitMs`): a failing provider is not hammered, and no
// item fails for want of budget. An item fails only when it used its attempts, met its deadline
// or a non-retryable error. (Finagle's and gRPC's budgets refuse the retry instead; for a batch
// that must finish, refusing turns a provider's bad minute into failed lines.)

export type RetryBudgetOptions = {
  /** Retries each successful attempt earns: failures up to perSuccess / (1 + perSuccess) of the attempts retry freely. @default 1 */
  perSuccess?: number;
  /** Retries earned per second whatever the outcomes: the pace of retries when nothing succeeds. @default 2 */
  perSecond?: number;
  /** Retries saved up at most (the bucket's size), and the waiting retries beyond which new work waits. @default 20 */
  burst?: number;
};

/** The span over which the recent success rate is counted, ms. */
const RATE_MS = 2_000;

export class RetryBudget {
  readonly #perSuccess: number;
  readonly #perMs: number;
  readonly #burst: number;
  #level: number;
  #at: number | undefined;
  /** Successes per ms lately (an exponentially decaying count over RATE_MS), and when. */
  #successRate = 0;
  #successAt = 0;

  constructor(options: RetryBudgetOptions = {}) {
    this.#perSuccess = options.perSuccess ?? 1;
    this.#perMs = (options.perSecond ?? 2) / 1000;
    // A bucket holds at least one retry, or a dry one could never pay for any.
    this.#burst = Math.max(1, options.burst ?? 20);
    this.#level = options.burst ?? 20;
  }

  /** Whether the provider answers most calls: the bucket is at least half full. */
  healthy(now: number): boolean {
    this.#refill(now);
    return this.#level >= this.#burst / 2;
  }

  /** Retries available now. */
  level(now: number): number {
    this.#refill(now);
    return this.#level;
  }

  /** A successful attempt: it earns retries. */
  recordSuccess(now: number): void {
    this.#refill(now);
    this.#level = Math.min(this.#burst, this.#level + this.#perSuccess);
    this.#successRate = this.#rate(now) + 1 / RATE_MS;
    this.#successAt = now;
  }

  /**
   * A retry that is ready to run: 0 when the bucket has one (it is spent), else how long until
   * it should have one at the current pace, ms (then ask again).
   */
  tryTake(now: number): number {
    this.#refill(now);
    if (this.#level >= 1) {
      this.#level -= 1;
      return 0;
    }
    return this.#untilOne(now);
  }

  /**
   * How long new work should wait, ms: while a burst's worth of retries are `waiting` for the
   * budget and hardly anything succeeds (fewer successes lately than `perSecond`): the provider
   * is down, and new first attempts would only add to the failures. While calls still succeed,
   * new work goes on: its successes are what pays for the retries.
   */
  admissionWaitMs(now: number, waiting: number): number {
    if (waiting < Math.max(1, this.#burst) || this.#rate(now) >= this.#perMs) return 0;
    this.#refill(now);
    return this.#untilOne(now);
  }

  #untilOne(now: number): number {
    const payback = this.#perMs + this.#perSuccess * this.#rate(now);
    return Math.max(1, Math.ceil((1 - this.#level) / payback));
  }

  #rate(now: number): number {
    return this.#successRate * Math.exp(-Math.max(0, now - this.#successAt) / RATE_MS);
  }

  #refill(now: number): void {
    if (this.#at === undefined || now <= this.#at) {
      this.#at ??= now;
      return;
    }
    this.#level = Math.min(this.#burst, this.#level + (now - this.#at) * this.#perMs);
    this.#at = now;
  }
}

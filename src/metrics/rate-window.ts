// Events per minute over a sliding window, in one-second buckets: O(1) per record, fixed memory.

export class RateWindow {
  readonly #buckets: Float64Array;
  readonly #seconds: Float64Array;

  /** @param windowSeconds the window's length, in whole seconds. @default 60 */
  constructor(windowSeconds = 60) {
    this.#buckets = new Float64Array(windowSeconds);
    this.#seconds = new Float64Array(windowSeconds).fill(-1);
  }

  /** Adds `amount` at clock time `nowMs`. */
  record(nowMs: number, amount = 1): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.#buckets.length;
    if (this.#seconds[slot] !== second) {
      this.#buckets[slot] = 0;
      this.#seconds[slot] = second;
    }
    this.#buckets[slot] = (this.#buckets[slot] ?? 0) + amount;
  }

  /** The total over the last `windowSeconds` up to `nowMs`, scaled to a per-minute rate. */
  perMinute(nowMs: number, elapsedMs: number): number {
    const second = Math.floor(nowMs / 1000);
    const size = this.#buckets.length;
    let total = 0;
    for (let i = 0; i < size; i++) {
      const at = this.#seconds[i] ?? -1;
      if (at >= 0 && second - at < size) total += this.#buckets[i] ?? 0;
    }
    // Early in a run the window is not yet full: scale by the time actually covered.
    const coveredMs = Math.min(size * 1000, Math.max(elapsedMs, 1000));
    return (total * 60_000) / coveredMs;
  }
}

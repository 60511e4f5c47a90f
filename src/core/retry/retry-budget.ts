// A retry budget: retries may not exceed a share of recent traffic, so a failing provider is not
// hammered. Over a sliding window, retries allowed = max(minRetries, ratio * first attempts).
// The window is a ring of slices, so recording and checking are O(1).

export type RetryBudgetOptions = {
  /** Retries allowed per first attempt in the window. @default 0.2 */
  ratio?: number;
  /** The sliding window, ms. @default 10_000 */
  windowMs?: number;
  /** Retries always allowed per window, so light traffic can still retry. @default 10 */
  minRetries?: number;
};

const SLICES = 10;

export class RetryBudget {
  readonly #ratio: number;
  readonly #minRetries: number;
  readonly #sliceMs: number;
  readonly #firsts = new Float64Array(SLICES);
  readonly #retries = new Float64Array(SLICES);
  #firstsTotal = 0;
  #retriesTotal = 0;
  // The absolute slice number the ring's newest entry belongs to.
  #slice = Number.NEGATIVE_INFINITY;

  constructor(options: RetryBudgetOptions = {}) {
    this.#ratio = options.ratio ?? 0.2;
    this.#minRetries = options.minRetries ?? 10;
    this.#sliceMs = (options.windowMs ?? 10_000) / SLICES;
  }

  /** Records a first attempt (traffic). */
  recordAttempt(now: number): void {
    const i = this.#advance(now);
    this.#firsts[i]!++;
    this.#firstsTotal++;
  }

  /** Spends one retry if the budget allows; returns whether it did. */
  tryRetry(now: number): boolean {
    const i = this.#advance(now);
    if (this.#retriesTotal >= Math.max(this.#minRetries, this.#ratio * this.#firstsTotal)) {
      return false;
    }
    this.#retries[i]!++;
    this.#retriesTotal++;
    return true;
  }

  #advance(now: number): number {
    const slice = Math.floor(now / this.#sliceMs);
    if (slice > this.#slice) {
      if (slice - this.#slice >= SLICES) {
        // A quiet spell longer than the window (or the first call): everything expired.
        this.#firsts.fill(0);
        this.#retries.fill(0);
        this.#firstsTotal = 0;
        this.#retriesTotal = 0;
      } else {
        for (let s = this.#slice + 1; s <= slice; s++) {
          const j = ((s % SLICES) + SLICES) % SLICES;
          this.#firstsTotal -= this.#firsts[j]!;
          this.#retriesTotal -= this.#retries[j]!;
          this.#firsts[j] = 0;
          this.#retries[j] = 0;
        }
      }
      this.#slice = slice;
    }
    return ((slice % SLICES) + SLICES) % SLICES;
  }
}

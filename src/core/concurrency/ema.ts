// Exponential moving averages and a windowed minimum over samples, for the adaptive controller.
// Both count samples, not time: an LLM call's latency is the clock that matters.

/**
 * An exponential moving average over about `window` samples (alpha = 2 / (window + 1)). Until it
 * has seen `window` samples it is the plain mean of what it has seen, so early values are not
 * biased towards the first sample.
 */
export class Ema {
  readonly #alpha: number;
  #value = 0;
  #count = 0;

  /** @param window samples the average spans, >= 1. */
  constructor(window: number) {
    this.#alpha = 2 / (window + 1);
  }

  /** The average, or undefined before the first sample. */
  get value(): number | undefined {
    return this.#count === 0 ? undefined : this.#value;
  }

  /** Samples seen since the last reset. */
  get count(): number {
    return this.#count;
  }

  add(sample: number): number {
    this.#count++;
    const alpha = Math.max(this.#alpha, 1 / this.#count);
    this.#value += alpha * (sample - this.#value);
    return this.#value;
  }

  /** Scales the current value (Gradient2 decays its long average this way). */
  scale(factor: number): void {
    this.#value *= factor;
  }

  reset(): void {
    this.#value = 0;
    this.#count = 0;
  }
}

/**
 * The minimum of the last `window` to `2 * window` samples, in O(1): two buckets of `window`
 * samples each; the oldest is dropped when the newest fills. A permanent rise in the samples is
 * learned within `2 * window` samples.
 */
export class WindowedMin {
  readonly #window: number;
  #current = Number.POSITIVE_INFINITY;
  #previous = Number.POSITIVE_INFINITY;
  #inCurrent = 0;

  constructor(window: number) {
    this.#window = window;
  }

  /** The minimum, or undefined before the first sample. */
  get value(): number | undefined {
    const min = Math.min(this.#current, this.#previous);
    return min === Number.POSITIVE_INFINITY ? undefined : min;
  }

  add(sample: number): void {
    if (this.#inCurrent >= this.#window) {
      this.#previous = this.#current;
      this.#current = Number.POSITIVE_INFINITY;
      this.#inCurrent = 0;
    }
    this.#inCurrent++;
    if (sample < this.#current) this.#current = sample;
  }
}

// One measurement of the adaptive controller: a cohort of attempts that ran while the limit held
// one value, with the pipe full. From them comes the throughput at that limit, by Little's law:
// with `load` attempts in flight on average and each taking `q` (latency per unit of work), the
// server completes load / q units of work per ms. In units of what one call alone gets done
// (1 / u0, u0 the unloaded latency per unit of work) that is the effective parallelism
//
//     P = load * u0 / q * (successes / attempts)
//
// which is c on a server that does not slow down with load, S on a server with S slots once the
// limit is past them, and peaks and falls on a server whose calls contend for one resource.
// Failed attempts held a slot too: their time counts, their answers do not (goodput). A fault
// that strikes every load alike lowers P everywhere and does not move the best limit.
//
// The cohort is fixed when its attempts start (the next `target` starts after `skip`), and the
// epoch ends when every one of them has answered: counting the first n answers instead would
// keep the fast ones and leave the slow ones for the next epoch, and flatter every limit.
// `skip` leaves out the burst of starts a raised limit lets in at once: they found the queue
// shorter than it will be.
//
// A startup epoch is a wave, not a steady state: its calls start together, and the first of a
// FIFO queue have not waited, the first into a contended server did not contend yet. Their mean
// latency flatters the limit (up to 2x past a FIFO server's slots). The calls at the back of the
// wave met what the limit will bring in steady state: a wave's P is n * u0 / q at the back,
// the (1 + n/8)-th slowest latency per unit of work (the slowest but for an outlier or two): S on
// a FIFO server with S slots, c / q(c) on a contended one, about c where load costs nothing.

import type { RegressionSums } from "./work-model.ts";

export type EpochKind = "startup" | "hold" | "probe";

/** Floating-point slack when matching an answer's start time with a start seen earlier. */
const EPSILON = 1e-6;

export class Epoch {
  readonly level: number;
  readonly kind: EpochKind;
  /** Starts before this are not counted (they saw another limit). */
  cleanFrom: number;
  /** Latency on tokens at this load, for the work model. */
  readonly regression: RegressionSums;
  readonly #skip: number;
  readonly #target: number;
  #seen = 0;
  #from = Number.POSITIVE_INFINITY;
  #to = Number.POSITIVE_INFINITY;
  #size = 0;
  #closed = false;
  /** Cohort attempts that answered, measured or not. */
  #returned = 0;
  successes = 0;
  failures = 0;
  /** Cohort attempts answered 429. */
  rateLimited = 0;
  #load = 0;
  #q = 0;
  #q2 = 0;
  #failedQ = 0;
  /** A wave's latencies per unit of work, and the most in flight as it started. */
  readonly #wave: number[] = [];
  #peak = 0;

  constructor(
    level: number,
    kind: EpochKind,
    cleanFrom: number,
    options: { skip: number; target: number },
    regression: RegressionSums,
  ) {
    this.level = level;
    this.kind = kind;
    this.cleanFrom = cleanFrom;
    this.#skip = options.skip;
    this.#target = options.target;
    this.regression = regression;
    regression.reset();
  }

  /** Attempts measured (successes and transient failures). */
  get samples(): number {
    return this.successes + this.failures;
  }

  /** The cohort's attempts, counted as they start. */
  get size(): number {
    return this.#size;
  }

  /** A wave's calls in flight at once: its own, and those of the level before still running. */
  get inFlight(): number {
    return Math.max(this.#size, this.#peak);
  }

  /** Every attempt of the cohort has answered. */
  get done(): boolean {
    return this.#closed && this.#size > 0 && this.#returned >= this.#size;
  }

  /** A wave's fastest latency per unit of work (Infinity before its first success). */
  get fastest(): number {
    return Math.min(...this.#wave);
  }

  /** The mean latency per unit of work of the successes, ms. */
  get meanQ(): number {
    return this.#q / this.successes;
  }

  /** The mean number of attempts in flight during the measured attempts. */
  get load(): number {
    return this.#load / this.samples;
  }

  /**
   * An attempt started. Hold and probe epochs take the `target` starts after `skip`; a startup
   * wave takes every start of the scheduler's turn that began it (within a millisecond or 2% of
   * a round trip), and the first start begins a wave whose time was not known.
   */
  started(now: number, rttMs: number, inFlight: number): void {
    if (this.kind === "startup") {
      if (this.cleanFrom === Number.NEGATIVE_INFINITY) {
        this.cleanFrom = now;
        this.#from = now;
      }
      if (now - this.cleanFrom <= Math.max(1, 0.02 * rttMs)) {
        this.#size++;
        this.#to = now;
        if (inFlight > this.#peak) this.#peak = inFlight;
      }
      this.#closed = true;
      return;
    }
    if (now < this.cleanFrom) return;
    this.#seen++;
    if (this.#seen <= this.#skip) return;
    if (this.#closed) {
      // Starts tied with the cohort's last one cannot be told apart from it: they join.
      if (now <= this.#to + EPSILON) this.#size++;
      return;
    }
    if (this.#size === 0) this.#from = now;
    this.#size++;
    this.#to = now;
    if (this.#size >= this.#target) this.#closed = true;
  }

  /** Whether an attempt that started at `startedAt` is one of the cohort. */
  member(startedAt: number): boolean {
    if (this.kind === "startup" && this.cleanFrom === Number.NEGATIVE_INFINITY) return false;
    const to = this.#closed ? this.#to : Number.POSITIVE_INFINITY;
    return startedAt >= this.#from - EPSILON && startedAt <= to + EPSILON;
  }

  /** A cohort attempt answered, whether it is measured or not (cancelled, app-limited, 429). */
  returned(): void {
    this.#returned++;
  }

  /** A success: its latency per unit of work `q` and the load it met. */
  success(q: number, load: number): void {
    this.successes++;
    this.#load += load;
    this.#q += q;
    this.#q2 += q * q;
    if (this.kind === "startup") this.#wave.push(q);
  }

  /** A transient failure that held its slot for `q` (its duration over a usual answer's work). */
  failure(q: number, load: number): void {
    this.failures++;
    this.#load += load;
    this.#failedQ += q;
  }

  /** Effective parallelism, in unloaded calls (see the file comment); 0 without a success. */
  parallelism(u0: number): number {
    if (this.successes === 0) return 0;
    if (this.kind === "startup") {
      // A failed attempt of the wave counts as if it had done as well as the others: a slot
      // freed by a fast failure takes the next call at once, and in a wave of a few calls one
      // failure more or less is luck, not capacity.
      const sorted = this.#wave.slice().sort((a, b) => b - a);
      const back = sorted[Math.min(sorted.length - 1, Math.floor(this.samples / 8))]!;
      // In flight: the wave's calls and those of the level before still running (fewer than the
      // limit when the work ran out).
      return (Math.max(this.#size, this.#peak) * u0) / back;
    }
    return (this.load * u0 * this.successes) / (this.#q + this.#failedQ);
  }

  /**
   * The relative standard error of `parallelism`, from the spread of the successes' latencies;
   * at least 3% per sample's worth, so one or two alike samples are not taken for certainty.
   */
  relativeError(): number {
    const n = this.successes;
    if (n === 0) return 1;
    const mean = this.#q / n;
    const variance = n > 1 ? Math.max(0, (this.#q2 - n * mean * mean) / (n - 1)) : 0;
    const cv = Math.max(0.03, Math.sqrt(variance) / mean);
    return cv / Math.sqrt(n);
  }
}

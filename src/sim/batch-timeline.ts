// When a simulated batch does what: its phases (validating, in progress, finalizing, cancelling,
// ended) and which of its requests are processed by a given time. A pure function of the batch's
// size, the settings and the times it was created and cancelled, so the simulator computes a
// batch's state when asked, with no timer, and tests run it on any clock.

import type { BatchApiConfig } from "./batch-config.ts";
import { hashUniform } from "./seeded-random.ts";

/** How a batch ended. */
export type BatchOutcome = "completed" | "expired" | "cancelled" | "failed";

export type BatchPhase =
  | { phase: "validating" }
  | { phase: "in_progress"; since: number }
  | { phase: "finalizing"; since: number }
  | { phase: "cancelling"; since: number }
  | { phase: "ended"; outcome: BatchOutcome; at: number };

export type TimelineTimes = {
  /** When the batch was created, ms on the simulator's monotonic clock. */
  createdMs: number;
  /** Requests in the batch. */
  requests: number;
  /** Spreads the requests' processing order; any integer. */
  salt: number;
  /** The simulator's seed. */
  seed: number;
  /** Whether validation failed: the batch ends `failed` when validation ends, nothing processed. */
  invalid?: boolean | undefined;
};

/** One batch's schedule. Times are ms on the simulator's monotonic clock. */
export class BatchTimeline {
  readonly createdMs: number;
  /** Validation ends and processing starts. */
  readonly startMs: number;
  /** The completion window closes. */
  readonly expiresMs: number;
  /** When each request (in input order) is processed, if nothing stops the batch first. */
  readonly #doneMs: Float64Array;
  readonly #lastMs: number;
  readonly #config: BatchApiConfig;
  readonly #invalid: boolean;
  #cancelMs: number | undefined;

  constructor(config: BatchApiConfig, times: TimelineTimes) {
    const n = times.requests;
    this.#config = config;
    this.#invalid = times.invalid ?? false;
    this.createdMs = times.createdMs;
    this.startMs = times.createdMs + config.validatingMs;
    this.expiresMs = times.createdMs + config.expiryMs;
    const processingMs = config.completionMs + n * config.msPerRequest;
    // A seeded order: request i is the rank[i]-th to finish, spread evenly over processing.
    const order = Array.from({ length: n }, (_, i) => i);
    const key = order.map((i) => hashUniform(times.seed ^ times.salt, i));
    order.sort((a, b) => key[a]! - key[b]! || a - b);
    this.#doneMs = new Float64Array(n);
    order.forEach((index, rank) => {
      this.#doneMs[index] = this.startMs + (processingMs * (rank + 1)) / n;
    });
    this.#lastMs = n === 0 ? this.startMs : this.startMs + processingMs;
  }

  /** When request `index` is processed if nothing stops the batch first. */
  doneMs(index: number): number {
    return this.#doneMs[index]!;
  }

  /** When the last request is processed, if nothing stops the batch first. */
  get lastMs(): number {
    return this.#lastMs;
  }

  get requests(): number {
    return this.#doneMs.length;
  }

  /** When cancellation was asked, if it was. */
  get cancelMs(): number | undefined {
    return this.#cancelMs;
  }

  /**
   * Asks to cancel at `at`. Only a batch validating or in progress can be cancelled; returns the
   * phase that refused it otherwise.
   */
  cancel(at: number): BatchPhase | undefined {
    const phase = this.phaseAt(at);
    if (phase.phase !== "validating" && phase.phase !== "in_progress") return phase;
    this.#cancelMs = at;
    return undefined;
  }

  /** The phase at time `t`. */
  phaseAt(t: number): BatchPhase {
    if (this.#invalid) {
      return t < this.startMs
        ? { phase: "validating" }
        : { phase: "ended", outcome: "failed", at: this.startMs };
    }
    const cancel = this.#cancelMs;
    if (cancel !== undefined && t >= cancel) {
      const end = cancel + this.#config.cancellingMs;
      return t < end
        ? { phase: "cancelling", since: cancel }
        : { phase: "ended", outcome: "cancelled", at: end };
    }
    if (t < this.startMs) return { phase: "validating" };
    if (this.#lastMs > this.expiresMs) {
      return t < this.expiresMs
        ? { phase: "in_progress", since: this.startMs }
        : { phase: "ended", outcome: "expired", at: this.expiresMs };
    }
    if (t < this.#lastMs) return { phase: "in_progress", since: this.startMs };
    const end = this.#lastMs + this.#config.finalizingMs;
    if (t < end) return { phase: "finalizing", since: this.#lastMs };
    return { phase: "ended", outcome: "completed", at: end };
  }

  /**
   * The time up to which requests count as processed at `t`: `t` while the batch runs, the
   * moment processing stopped once it has (expiry, the end of cancelling), `-Infinity` for a
   * batch that failed validation.
   */
  cutoffAt(t: number): number {
    if (this.#invalid) return Number.NEGATIVE_INFINITY;
    const phase = this.phaseAt(t);
    if (phase.phase !== "ended") return t;
    if (phase.outcome === "completed") return this.#lastMs;
    return phase.at;
  }

  /** Whether request `index` is processed by time `t`. */
  processedAt(index: number, t: number): boolean {
    return this.#doneMs[index]! <= this.cutoffAt(t);
  }
}

// Latency percentiles over the last minute, for a service that runs for weeks: a ring of
// ten-second HDR histograms (Node's built-in), merged when read.
import type { RecordableHistogram } from "node:perf_hooks";
import {
  type LatencySummary,
  latencyHistogram,
  recordMs,
  summariseLatency,
} from "../metrics/latency-histogram.ts";

const SLICE_MS = 10_000;

export class WindowedLatency {
  readonly #slices: RecordableHistogram[];
  readonly #starts: number[];

  /** @param windowMs the window, ms (a multiple of ten seconds). @default 60_000 */
  constructor(windowMs = 60_000) {
    const n = Math.max(1, Math.round(windowMs / SLICE_MS));
    this.#slices = Array.from({ length: n }, () => latencyHistogram());
    this.#starts = new Array<number>(n).fill(Number.NEGATIVE_INFINITY);
  }

  record(ms: number, now: number): void {
    recordMs(this.#slice(now), ms);
  }

  /** p50/p95/p99 (ms) of what was recorded in the window up to `now`. */
  summary(now: number): LatencySummary {
    return WindowedLatency.merge([this], now);
  }

  /** The percentiles of several windows together (e.g. every tenant of one upstream). */
  static merge(windows: readonly WindowedLatency[], now: number): LatencySummary {
    const merged = latencyHistogram();
    for (const window of windows) window.#addTo(merged, now);
    return summariseLatency(merged);
  }

  #addTo(merged: RecordableHistogram, now: number): void {
    const oldest = Math.floor(now / SLICE_MS) * SLICE_MS - (this.#slices.length - 1) * SLICE_MS;
    for (let i = 0; i < this.#slices.length; i++)
      if ((this.#starts[i] ?? Number.NEGATIVE_INFINITY) >= oldest) merged.add(this.#slices[i]!);
  }

  #slice(now: number): RecordableHistogram {
    const start = Math.floor(now / SLICE_MS) * SLICE_MS;
    const at = Math.floor(start / SLICE_MS) % this.#slices.length;
    if (this.#starts[at] !== start) {
      this.#slices[at]!.reset();
      this.#starts[at] = start;
    }
    return this.#slices[at]!;
  }
}

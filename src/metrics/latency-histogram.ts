// Latency percentiles from Node's built-in HDR histogram (node:perf_hooks): values recorded in
// microseconds from 1 µs to 1 hour with 3 significant digits, reported in milliseconds.
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";

export type LatencySummary = {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
};

export function latencyHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: 3_600_000_000, figures: 3 });
}

/** Records a latency given in milliseconds. */
export function recordMs(histogram: RecordableHistogram, ms: number): void {
  histogram.record(Math.max(1, Math.round(ms * 1000)));
}

export function summariseLatency(histogram: RecordableHistogram): LatencySummary {
  if (histogram.count === 0) return { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: histogram.count,
    p50: ms(histogram.percentile(50)),
    p95: ms(histogram.percentile(95)),
    p99: ms(histogram.percentile(99)),
    max: ms(histogram.max),
    mean: ms(histogram.mean),
  };
}

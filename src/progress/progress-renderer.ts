// Progress displays. Each one reads the run's metrics (derived from scheduler events) on its own
// timer, or streams the events themselves; none is called from the scheduler's logic.
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import { BarProgress } from "./bar-progress.ts";
import { JsonProgress } from "./json-progress.ts";
import { PlainProgress } from "./plain-progress.ts";

export type ProgressMode = "auto" | "bar" | "plain" | "json" | "none";
export const PROGRESS_MODES: readonly ProgressMode[] = ["auto", "bar", "plain", "json", "none"];

/** Where progress goes: a stream (stderr) and whether it is a terminal. */
export type ProgressOutput = {
  write(text: string): unknown;
  isTTY: boolean;
  /** Terminal width in columns, when known. */
  columns?: number | undefined;
};

export interface ProgressRenderer {
  /** Starts displaying; `now` reads the run's clock. */
  start(metrics: RunMetrics, events: EventSource, now: () => number): void;
  /** Stops, leaving the last state on screen. */
  stop(): void;
}

export type ProgressOptions = {
  /** How often a bar redraws, ms. @default 200 */
  barIntervalMs?: number;
  /** How often plain mode prints a line, ms. @default 5_000 */
  plainIntervalMs?: number;
};

/** The renderer for a mode; `auto` is a bar on a terminal and plain lines otherwise. */
export function createProgress(
  mode: ProgressMode,
  output: ProgressOutput,
  options: ProgressOptions = {},
): ProgressRenderer | undefined {
  const resolved = mode === "auto" ? (output.isTTY ? "bar" : "plain") : mode;
  switch (resolved) {
    case "bar":
      return new BarProgress(output, options.barIntervalMs ?? 200);
    case "plain":
      return new PlainProgress(output, options.plainIntervalMs ?? 5_000);
    case "json":
      return new JsonProgress(output);
    default:
      return undefined;
  }
}

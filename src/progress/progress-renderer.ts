// Progress displays. Each one reads the run's metrics (derived from scheduler events) on its own
// timer, or streams the events themselves; none is called from the scheduler's logic.
import { type Clock, realClock } from "../core/clock.ts";
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import { BarProgress } from "./bar-progress.ts";
import { JsonProgress } from "./json-progress.ts";
import { PlainProgress } from "./plain-progress.ts";
import type { ProgressGroups } from "./progress-groups.ts";

export type ProgressMode = "auto" | "bar" | "plain" | "json" | "none";
export const PROGRESS_MODES: readonly ProgressMode[] = ["auto", "bar", "plain", "json", "none"];

/** Where progress goes: a stream (stderr) and whether it is a terminal. */
export type ProgressOutput = {
  write(text: string): unknown;
  isTTY: boolean;
  /** Terminal width in columns, when known (read at every redraw: it may change). */
  columns?: number | undefined;
};

export interface ProgressRenderer {
  /** Starts displaying; `now` reads the run's clock. */
  start(metrics: RunMetrics, events: EventSource, now: () => number): void;
  /**
   * Prints a message (a line or more) where progress goes, without breaking the display: a live
   * bar prints it above itself. Anything written to the same stream otherwise may be drawn over.
   */
  print(text: string): void;
  /**
   * A note on the run's state shown with the counts from now on (e.g. `interrupted: finishing
   * 5 calls in flight`); undefined removes it. The ETA is not shown while there is a note.
   */
  note(text: string | undefined): void;
  /** Stops, leaving the last state on screen; nothing is drawn after it. Idempotent. */
  stop(): void;
}

export type ProgressOptions = {
  /** How often a bar redraws, ms. @default 200 */
  barIntervalMs?: number;
  /** How often plain mode prints a line, ms. @default 5_000 */
  plainIntervalMs?: number;
  /** Lines per group under the overall one (a pipeline's stages, named scopes). @default none */
  groups?: ProgressGroups | undefined;
  /** At most this many groups get a line of their own in a bar. @default 8 */
  maxGroupLines?: number | undefined;
  /** A finished group keeps its line this long before it collapses, ms. @default 2_000 */
  lingerMs?: number | undefined;
  /** The clock the redraw timers run on. @default realClock (unref'd timers) */
  clock?: Clock | undefined;
};

/**
 * The renderer for a mode; `auto` is a bar on a terminal and plain lines otherwise. A bar needs a
 * terminal to redraw in place: `bar` to anything else prints plain lines, and says so once.
 */
export function createProgress(
  mode: ProgressMode,
  output: ProgressOutput,
  options: ProgressOptions = {},
): ProgressRenderer | undefined {
  const clock = options.clock ?? realClock;
  const plainIntervalMs = options.plainIntervalMs ?? 5_000;
  const plain = (intro?: string) =>
    new PlainProgress(output, { ...options, clock, intervalMs: plainIntervalMs, intro });
  switch (mode) {
    case "auto":
      return output.isTTY ? createProgress("bar", output, options) : plain();
    case "bar":
      if (!output.isTTY)
        return plain(
          `salvo: --progress bar needs a terminal and this output is not one: a status line every ${plainIntervalMs / 1000}s instead\n`,
        );
      return new BarProgress(output, {
        ...options,
        clock,
        intervalMs: options.barIntervalMs ?? 200,
      });
    case "plain":
      return plain();
    case "json":
      return new JsonProgress(output);
    default:
      return undefined;
  }
}

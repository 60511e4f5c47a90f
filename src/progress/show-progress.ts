// Progress for a program's own scheduler: the overall line and, under it, one line per named
// scope (claims x items: `scheduler.scope({name: claim.id})` per claim), all drawn by one owner
// from one moment's counts, failures counted on each, a scope's line collapsing once it is done.
import { type Clock, realClock } from "../core/clock.ts";
import { type EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import { ProgressGroups } from "./progress-groups.ts";
import {
  createProgress,
  type ProgressMode,
  type ProgressOutput,
  type ProgressRenderer,
} from "./progress-renderer.ts";

export type ShowProgressOptions = {
  /** Where it is drawn: a stream with `write`, `isTTY` and `columns` (e.g. `process.stderr`). */
  output: ProgressOutput;
  /** A live bar on a terminal, plain lines elsewhere (`auto`), or one of them. @default "auto" */
  mode?: ProgressMode | undefined;
  /** Items expected in all, for the overall total and the ETA. @default those submitted so far */
  total?: number | undefined;
  /** One line per named scope under the overall one. @default true */
  scopes?: boolean | undefined;
  /** The scheduler's clock (a `FakeClock` in tests). @default realClock */
  clock?: Clock | undefined;
  /** How often a bar redraws, ms. @default 200 */
  barIntervalMs?: number | undefined;
  /** How often plain mode prints, ms. @default 5_000 */
  plainIntervalMs?: number | undefined;
  /** At most this many scopes get a line of their own; the rest are added up. @default 8 */
  maxScopeLines?: number | undefined;
  /** A finished scope keeps its line this long before it collapses, ms. @default 2_000 */
  lingerMs?: number | undefined;
};

/** A display started by `showProgress`. */
export type ProgressHandle = {
  /** The run's counters, latency and summary, from the same events. */
  readonly metrics: RunMetrics;
  /** Prints a message without breaking the display (above a live bar). */
  print(text: string): void;
  /** Draws a last time and lets go: nothing is drawn after it. Idempotent. */
  stop(): void;
};

/**
 * Shows a scheduler's progress until `stop()`: `showProgress(salvo.scheduler, {output:
 * process.stderr})`. Reads only its events; the scheduler never waits for the display.
 */
export function showProgress(scheduler: EventSource, options: ShowProgressOptions): ProgressHandle {
  const clock = options.clock ?? realClock;
  const now = () => clock.now();
  const metrics = new RunMetrics({ startedAt: now(), total: options.total });
  const detach = metrics.attach(scheduler);
  const groups =
    options.scopes === false
      ? undefined
      : new ProgressGroups({ groupOf: (item) => item.scope, noun: "scopes" });
  const renderer: ProgressRenderer | undefined = createProgress(
    options.mode ?? "auto",
    options.output,
    {
      clock,
      groups,
      barIntervalMs: options.barIntervalMs,
      plainIntervalMs: options.plainIntervalMs,
      maxGroupLines: options.maxScopeLines,
      lingerMs: options.lingerMs,
    },
  );
  renderer?.start(metrics, scheduler, now);
  let stopped = false;
  return {
    metrics,
    print: (text) => (renderer ? renderer.print(text) : options.output.write(text)),
    stop: () => {
      if (stopped) return;
      stopped = true;
      renderer?.stop();
      detach();
    },
  };
}

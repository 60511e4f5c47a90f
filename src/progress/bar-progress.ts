// A live display on a terminal: the overall bar (done / total, failed, in flight / limit, rates,
// 429s, retries, ETA) and, under it, one line per group (a pipeline's stages, named scopes), all
// from one moment's counts, redrawn together on a timer and fitted to the terminal's width.
// Salvo's own renderer over plain ANSI (see live-display.ts): one owner for every line.
import type { Clock, TimerHandle } from "../core/clock.ts";
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import { LiveDisplay } from "./live-display.ts";
import type { ProgressGroups } from "./progress-groups.ts";
import { groupLines, overallLine } from "./progress-lines.ts";
import type { ProgressOutput, ProgressRenderer } from "./progress-renderer.ts";

export type BarProgressOptions = {
  /** How often the lines are redrawn, ms. */
  intervalMs: number;
  clock: Clock;
  groups?: ProgressGroups | undefined;
  maxGroupLines?: number | undefined;
  lingerMs?: number | undefined;
};

export class BarProgress implements ProgressRenderer {
  readonly #display: LiveDisplay;
  readonly #options: BarProgressOptions;
  #metrics: RunMetrics | undefined;
  #now: (() => number) | undefined;
  #timer: TimerHandle | undefined;
  #detach: (() => void) | undefined;
  #note: string | undefined;
  #stopped = false;

  constructor(output: ProgressOutput, options: BarProgressOptions) {
    this.#display = new LiveDisplay(output);
    this.#options = options;
  }

  start(metrics: RunMetrics, events: EventSource, now: () => number): void {
    if (this.#metrics !== undefined || this.#stopped) return;
    this.#metrics = metrics;
    this.#now = now;
    this.#detach = this.#options.groups?.attach(events);
    this.#redraw();
  }

  print(text: string): void {
    if (this.#metrics === undefined || this.#stopped) this.#display.print(text);
    else this.#display.print(text, this.#lines());
  }

  note(text: string | undefined): void {
    this.#note = text;
    if (this.#metrics !== undefined && !this.#stopped) this.#display.draw(this.#lines());
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#display.close(this.#metrics === undefined ? undefined : this.#lines());
    this.#detach?.();
  }

  readonly #redraw = (): void => {
    if (this.#stopped) return;
    this.#display.draw(this.#lines());
    this.#timer = this.#options.clock.setTimeout(this.#redraw, this.#options.intervalMs);
  };

  #lines(): string[] {
    const now = this.#now!();
    const width = this.#display.width;
    const lines = [overallLine(this.#metrics!.snapshot(now), width, { note: this.#note })];
    const groups = this.#options.groups;
    if (groups !== undefined) {
      const view = groups.view(now, {
        maxLines: this.#options.maxGroupLines,
        lingerMs: this.#options.lingerMs,
      });
      lines.push(...groupLines(view, groups.noun, width));
    }
    return lines;
  }
}

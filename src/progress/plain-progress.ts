// Plain mode: a status line every few seconds, for logs and CI (no cursor movement); with groups,
// a second line with each running group's counts.
import type { Clock, TimerHandle } from "../core/clock.ts";
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import type { GroupSnapshot, ProgressGroups } from "./progress-groups.ts";
import type { ProgressOutput, ProgressRenderer } from "./progress-renderer.ts";
import { statusLine } from "./status-fields.ts";

export type PlainProgressOptions = {
  /** How often a line is printed, ms. */
  intervalMs: number;
  clock: Clock;
  groups?: ProgressGroups | undefined;
  lingerMs?: number | undefined;
  /** Printed once when the display starts. */
  intro?: string | undefined;
};

function groupText(g: GroupSnapshot): string {
  const done = g.succeeded + g.failed + g.skipped + g.resumed;
  const parts = [`${g.failed} failed`];
  if (g.stopped > 0) parts.push(`${g.stopped} stopped`);
  if (!g.finished) parts.push(`${g.inFlight} in flight`);
  return `${g.name} ${done}/${g.total}${g.declared ? "" : "+"} (${parts.join(", ")})`;
}

export class PlainProgress implements ProgressRenderer {
  readonly #output: ProgressOutput;
  readonly #options: PlainProgressOptions;
  #timer: TimerHandle | undefined;
  #print: (() => void) | undefined;
  #detach: (() => void) | undefined;
  #note: string | undefined;
  #stopped = false;

  constructor(output: ProgressOutput, options: PlainProgressOptions) {
    this.#output = output;
    this.#options = options;
  }

  start(metrics: RunMetrics, events: EventSource, now: () => number): void {
    if (this.#print !== undefined || this.#stopped) return;
    if (this.#options.intro) this.#output.write(this.#options.intro);
    const groups = this.#options.groups;
    this.#detach = groups?.attach(events);
    this.#print = () => {
      const at = now();
      let text = `salvo: ${statusLine(metrics.snapshot(at), { note: this.#note })}\n`;
      if (groups !== undefined) {
        const view = groups.view(at, { maxLines: 50, lingerMs: this.#options.lingerMs });
        const live = view.lines.filter((g) => !g.finished).map(groupText);
        const done = view.done === undefined ? "" : `${view.done.groups} done; `;
        if (live.length > 0 || view.more) {
          const more = view.more ? `, +${view.more.groups} more` : "";
          text += `salvo:   ${groups.noun}: ${done}${live.join(", ")}${more}\n`;
        }
      }
      this.#output.write(text);
    };
    const tick = () => {
      this.#print?.();
      this.#timer = this.#options.clock.setTimeout(tick, this.#options.intervalMs);
    };
    this.#timer = this.#options.clock.setTimeout(tick, this.#options.intervalMs);
  }

  print(text: string): void {
    this.#output.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  note(text: string | undefined): void {
    this.#note = text;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#print?.();
    this.#print = undefined;
    this.#detach?.();
  }
}

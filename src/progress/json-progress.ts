// JSON mode: every scheduler event as one JSON line, for other programs. Errors become
// `{code, message, status}`; a succeeded event's value is left out (it is in the output file).
import type { SchedulerEvents } from "../core/events.ts";
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import type { ProgressOutput, ProgressRenderer } from "./progress-renderer.ts";

const EVENTS: ReadonlyArray<keyof SchedulerEvents> = [
  "queued",
  "started",
  "attempt-failed",
  "retry-scheduled",
  "rate-limited",
  "cooldown",
  "succeeded",
  "failed",
  "limit-changed",
  "idle",
];

function errorJson(error: unknown): unknown {
  if (!(error instanceof Error)) return { message: String(error) };
  const { code, status } = error as Error & { code?: unknown; status?: unknown };
  return { code, message: error.message, status };
}

export class JsonProgress implements ProgressRenderer {
  readonly #output: ProgressOutput;
  #offs: Array<() => void> = [];

  constructor(output: ProgressOutput) {
    this.#output = output;
  }

  start(_metrics: RunMetrics, events: EventSource, _now: () => number): void {
    for (const event of EVENTS) {
      this.#offs.push(
        events.on(event, (payload) => {
          const { value: _value, error, ...rest } = payload as Record<string, unknown>;
          const line: Record<string, unknown> = { event, ...rest };
          if (error !== undefined) line.error = errorJson(error);
          this.#output.write(`${JSON.stringify(line)}\n`);
        }),
      );
    }
  }

  stop(): void {
    for (const off of this.#offs) off();
    this.#offs = [];
  }
}

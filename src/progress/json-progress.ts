// JSON mode: every scheduler event as one JSON line, for other programs. Errors become
// `{code, message, status}`; a succeeded event's value is left out (it is in the output file).
import { SCHEDULER_EVENT_NAMES } from "../core/events.ts";
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import type { ProgressOutput, ProgressRenderer } from "./progress-renderer.ts";

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
    for (const event of SCHEDULER_EVENT_NAMES) {
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

  print(text: string): void {
    this.#output.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  note(_text: string | undefined): void {
    // The events say it all; a consumer sees the interrupt in the events that follow.
  }

  stop(): void {
    for (const off of this.#offs) off();
    this.#offs = [];
  }
}

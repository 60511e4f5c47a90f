// Plain mode: a status line every few seconds, for logs and CI (no cursor movement).
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import type { ProgressOutput, ProgressRenderer } from "./progress-renderer.ts";
import { statusLine } from "./status-line.ts";

export class PlainProgress implements ProgressRenderer {
  readonly #output: ProgressOutput;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #print: (() => void) | undefined;

  constructor(output: ProgressOutput, intervalMs: number) {
    this.#output = output;
    this.#intervalMs = intervalMs;
  }

  start(metrics: RunMetrics, _events: EventSource, now: () => number): void {
    this.#print = () => this.#output.write(`salvo: ${statusLine(metrics.snapshot(now()))}\n`);
    this.#timer = setInterval(this.#print, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#print?.();
    this.#print = undefined;
  }
}

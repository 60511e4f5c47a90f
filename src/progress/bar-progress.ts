// A live bar on a terminal (cli-progress): done / total, failed, in flight / limit, rates, 429s,
// retries and ETA, redrawn on a timer from the run's metrics.
import { SingleBar } from "cli-progress";
import type { EventSource, RunMetrics } from "../metrics/run-metrics.ts";
import { formatCount, formatDuration } from "./format.ts";
import type { ProgressOutput, ProgressRenderer } from "./progress-renderer.ts";

export class BarProgress implements ProgressRenderer {
  readonly #output: ProgressOutput;
  readonly #intervalMs: number;
  #bar: SingleBar | undefined;
  #timer: NodeJS.Timeout | undefined;
  #draw: (() => void) | undefined;

  constructor(output: ProgressOutput, intervalMs: number) {
    this.#output = output;
    this.#intervalMs = intervalMs;
  }

  start(metrics: RunMetrics, _events: EventSource, now: () => number): void {
    const bar = new SingleBar({
      format:
        "{bar} {value}/{total} | {failed} failed | in flight {inFlight}/{limit} | {rpm} req/min {tpm} tok/min | 429s {r429} | retries {retries} | {elapsed} eta {eta}{paused}",
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      noTTYOutput: true,
      // cli-progress writes to a stream; it only needs write() and the TTY fields.
      stream: this.#output as unknown as NodeJS.WritableStream,
      fps: 1000 / this.#intervalMs,
    });
    this.#bar = bar;
    this.#draw = () => {
      const s = metrics.snapshot(now());
      const done = s.succeeded + s.failed + s.skipped;
      bar.setTotal(s.total ?? Math.max(done, 1));
      bar.update(done, {
        failed: s.failed,
        inFlight: s.inFlight,
        limit: Number.isFinite(s.limit) ? s.limit : "∞",
        rpm: formatCount(s.requestsPerMinute),
        tpm: formatCount(s.tokensPerMinute),
        r429: s.rateLimited,
        retries: s.retries,
        elapsed: formatDuration(s.elapsedMs),
        eta: s.etaMs === undefined ? "?" : formatDuration(s.etaMs),
        paused: s.paused ? " | paused (rate limit)" : "",
      });
    };
    const first = metrics.snapshot(now());
    bar.start(first.total ?? 1, 0);
    this.#draw();
    this.#timer = setInterval(this.#draw, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#draw?.();
    this.#bar?.stop();
    this.#bar = undefined;
    this.#draw = undefined;
  }
}

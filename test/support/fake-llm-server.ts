// A modelled LLM server on fake time, for the adaptive controller's tests: slots with a FIFO queue
// (a bounded queue answers 503 beyond it), contention (each call's service time grows with the
// calls in service when it starts: 1 + factor * (n - 1)^exponent, as the simulator's latency
// model), 429s above K calls in the server, seeded jitter, and transient faults (500s at once,
// hangs until the attempt's timeout). Deterministic: the same seed gives the same run.

import type { FakeClock } from "../../src/core/fake-clock.ts";
import { OverloadedError, RateLimitError, ServerError } from "../../src/errors.ts";

export type FakeServerOptions = {
  /** Service time of one call alone, ms, by output tokens. */
  serviceMs: (outputTokens: number) => number;
  /** Calls in service at once; the rest wait in a FIFO queue. @default Infinity */
  slots?: number;
  /** Calls allowed to wait; beyond, 503. @default Infinity */
  queue?: number;
  /** Contention: service time x (1 + factor * (n - 1)^exponent). @default 0 */
  contention?: number;
  /** @default 1 */
  exponent?: number;
  /** Above this many calls in the server, answer 429 at once. @default Infinity */
  rejectAbove?: number;
  /** The Retry-After of those 429s, ms. @default 50 */
  retryAfterMs?: number;
  /** Relative jitter of service times, uniform in [1 - j, 1 + j]. @default 0 */
  jitter?: number;
  /** Share of calls that fail with a 500 at once. @default 0 */
  pFail?: number;
  /** Share of calls that never answer (until aborted). @default 0 */
  pHang?: number;
  /** @default 1 */
  seed?: number;
};

export class FakeLlmServer {
  inServer = 0;
  inService = 0;
  maxInServer = 0;
  maxInService = 0;
  rejected = 0;
  calls = 0;
  /** In-server count sampled at each arrival, with the arrival time. */
  readonly arrivals: Array<{ at: number; inServer: number }> = [];
  slots: number;
  readonly #clock: FakeClock;
  readonly #options: FakeServerOptions;
  readonly #waiting: Array<() => void> = [];
  #seed: number;

  constructor(clock: FakeClock, options: FakeServerOptions) {
    this.#clock = clock;
    this.#options = options;
    this.slots = options.slots ?? Number.POSITIVE_INFINITY;
    this.#seed = options.seed ?? 1;
  }

  /** One call; resolves after its service time, or throws the server's error. */
  async call(outputTokens: number, signal?: AbortSignal): Promise<void> {
    const o = this.#options;
    this.calls++;
    this.arrivals.push({ at: this.#clock.now(), inServer: this.inServer });
    if (this.inServer + 1 > (o.rejectAbove ?? Number.POSITIVE_INFINITY)) {
      this.rejected++;
      await this.#clock.sleep(1);
      throw new RateLimitError(undefined, { status: 429, retryAfterMs: o.retryAfterMs ?? 50 });
    }
    const queued = this.inService >= this.slots;
    if (queued && this.#waiting.length >= (o.queue ?? Number.POSITIVE_INFINITY)) {
      await this.#clock.sleep(1);
      throw new OverloadedError(undefined, { status: 503 });
    }
    this.inServer++;
    this.maxInServer = Math.max(this.maxInServer, this.inServer);
    try {
      if (queued) await new Promise<void>((r) => this.#waiting.push(r));
      this.inService++;
      this.maxInService = Math.max(this.maxInService, this.inService);
      try {
        const u = this.#random();
        if (u < (o.pFail ?? 0)) {
          await this.#clock.sleep(1);
          throw new ServerError(undefined, { status: 500 });
        }
        if (u < (o.pFail ?? 0) + (o.pHang ?? 0)) {
          await new Promise<void>((_, reject) => {
            signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
          });
        }
        const load = 1 + (o.contention ?? 0) * (this.inService - 1) ** (o.exponent ?? 1);
        const jitter = 1 + (o.jitter ?? 0) * (2 * this.#random() - 1);
        await this.#clock.sleep(o.serviceMs(outputTokens) * load * jitter, signal);
      } finally {
        this.inService--;
        this.#admit();
      }
    } finally {
      this.inServer--;
    }
  }

  /** Changes the slots; more slots admit waiting calls at once. */
  setSlots(slots: number): void {
    this.slots = slots;
    this.#admit();
  }

  #admit(): void {
    while (this.inService < this.slots && this.#waiting.length > 0) {
      // The woken call counts itself into service when it resumes.
      this.inService++;
      const next = this.#waiting.shift()!;
      queueMicrotask(() => {
        this.inService--;
        next();
      });
    }
  }

  #random(): number {
    // mulberry32
    this.#seed = (this.#seed + 0x6d2b79f5) | 0;
    let t = this.#seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
}

// A clock for tests (Salvo's and its users'): time moves only when the test says so, timers fire
// in time order (ties in the order they were set), and pending promise callbacks are drained
// between timers so async code sees the same interleaving it would with real time.

import { setImmediate as realSetImmediate } from "node:timers";
import type { Clock, TimerHandle } from "./clock.ts";

type FakeTimer = { at: number; seq: number; callback: () => void; cancelled: boolean };

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  // Small sorted list; tests keep few timers alive at once (the scheduler multiplexes its own).
  #timers: FakeTimer[] = [];

  /** @param start the initial time in milliseconds. @default 0 */
  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Timers set and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer: FakeTimer = {
      at: this.#now + Math.max(0, delayMs),
      seq: this.#seq++,
      callback,
      cancelled: false,
    };
    // Insert after every timer due at or before `at`: time order, then setting order.
    let i = this.#timers.length;
    while (i > 0 && this.#timers[i - 1]!.at > timer.at) i--;
    this.#timers.splice(i, 0, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle as FakeTimer;
    if (timer.cancelled) return;
    timer.cancelled = true;
    const i = this.#timers.indexOf(timer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /** A promise that resolves after `ms` of fake time, or rejects with the signal's reason. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        this.clearTimeout(handle);
        reject(signal?.reason);
      };
      const handle = this.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Lets every queued promise callback run, without moving time. */
  async flush(): Promise<void> {
    // A macrotask hop drains the whole microtask queue, including microtasks queued by microtasks.
    await new Promise<void>((resolve) => realSetImmediate(resolve));
  }

  /** Moves time forward by `ms`, firing due timers in order and draining promises between them. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await this.flush();
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.cancelled = true;
      next.callback();
      await this.flush();
    }
    this.#now = Math.max(this.#now, target);
    await this.flush();
  }

  /**
   * Fires timers until none is left (time jumps to each one). Throws after `maxTimers` timers, which
   * guards against a timer that keeps re-arming itself.
   */
  async runAll(maxTimers = 1_000_000): Promise<void> {
    await this.flush();
    for (let fired = 0; ; fired++) {
      const next = this.#timers[0];
      if (next === undefined) return;
      if (fired >= maxTimers) throw new Error(`FakeClock.runAll: more than ${maxTimers} timers`);
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.cancelled = true;
      next.callback();
      await this.flush();
    }
  }
}

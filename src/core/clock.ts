// Time, injected. Every timing rule in the scheduler reads time and sets timers only through a
// `Clock`, so tests run on a `FakeClock` deterministically and production uses `realClock`.

/** An opaque timer handle; only the clock that made it can clear it. */
export type TimerHandle = unknown;

export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  now(): number;
  /** Calls `callback` once after `delayMs` (>= 0) milliseconds. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * Keeps the process alive until the returned function is called. The scheduler holds this while
   * it has unsettled work, because its own timers are unref'd: a run waiting out a cooldown with
   * no socket open must not let Node exit. Optional: fake clocks need not implement it.
   */
  keepAlive?(): () => void;
}

const MAX_DELAY = 2_147_483_647;

/** The real clock: `performance.now()` and unref'd Node timers. */
export class RealClock implements Clock {
  #holds = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;

  now(): number {
    return performance.now();
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer = setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_DELAY));
    timer.unref();
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  }

  keepAlive(): () => void {
    // One ref'd interval for every holder: its callback never runs work, it only holds the loop.
    if (this.#holds++ === 0) this.#keepAlive = setInterval(noop, MAX_DELAY);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#holds === 0) {
        clearInterval(this.#keepAlive);
        this.#keepAlive = undefined;
      }
    };
  }
}

function noop(): void {}

/** The process-wide real clock. */
export const realClock: Clock = new RealClock();

/**
 * Waits `ms` on `clock`; resolves true when the time passed, false as soon as `signal` aborts
 * (at once if it already has). The timer never outlives the wait.
 */
export function sleepOn(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

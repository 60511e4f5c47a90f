// Many deadlines, one clock timer. Attempt timeouts, item deadlines, backoff sleeps and admission
// wake-ups all live in one heap ordered by due time; the clock holds a single timer for the
// earliest. Setting and cancelling a deadline is O(log n) with no clock call in the common case,
// which keeps a per-attempt timeout cheap even for instant tasks.

import type { Clock, TimerHandle } from "./clock.ts";
import { Heap, type HeapNode } from "./heap.ts";

/** A reusable deadline: `fire(target)` runs once when it is due, unless cancelled first. */
export class Deadline<T = unknown> implements HeapNode {
  heapIndex = -1;
  at = 0;
  seq = 0;
  readonly fire: (target: T) => void;
  readonly target: T;
  constructor(fire: (target: T) => void, target: T) {
    this.fire = fire;
    this.target = target;
  }
}

export class TimerHeap {
  readonly #clock: Clock;
  readonly #heap = new Heap<Deadline<never>>(
    (a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq),
  );
  #seq = 0;
  #handle: TimerHandle | undefined;
  // When the clock timer is due; Infinity when none is set.
  #armedAt = Number.POSITIVE_INFINITY;
  readonly #onClock = () => this.#run();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get size(): number {
    return this.#heap.size;
  }

  /** Sets (or moves) `deadline` to fire at time `at`. */
  schedule<T>(deadline: Deadline<T>, at: number): void {
    const node = deadline as unknown as Deadline<never>;
    if (this.#heap.has(node)) this.#heap.remove(node);
    node.at = at;
    node.seq = this.#seq++;
    this.#heap.push(node);
    if (at < this.#armedAt) this.#arm(at);
  }

  /** Cancels `deadline` if it is set. The clock timer is cleared once nothing is left. */
  cancel<T>(deadline: Deadline<T>): void {
    if (!this.#heap.remove(deadline as unknown as Deadline<never>)) return;
    // An early clock timer with nothing due is harmless (it re-arms); an idle one must go, so a
    // finished scheduler holds no timer at all.
    if (this.#heap.size === 0) this.#disarm();
  }

  isScheduled<T>(deadline: Deadline<T>): boolean {
    return this.#heap.has(deadline as unknown as Deadline<never>);
  }

  #arm(at: number): void {
    this.#disarm();
    this.#armedAt = at;
    this.#handle = this.#clock.setTimeout(this.#onClock, at - this.#clock.now());
  }

  #disarm(): void {
    if (this.#handle !== undefined) this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  #run(): void {
    this.#handle = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    for (;;) {
      const top = this.#heap.peek();
      if (top === undefined || top.at > now) break;
      this.#heap.pop();
      top.fire(top.target as never);
    }
    const next = this.#heap.peek();
    if (next !== undefined && next.at < this.#armedAt) this.#arm(next.at);
  }
}

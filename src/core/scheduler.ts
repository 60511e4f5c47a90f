// The scheduler: one per provider key, the only admission authority for its calls. It runs
// calls as fast as the key's limits allow and no faster: a concurrency limit (static or adaptive),
// request and token buckets, a shared cooldown on 429s, one retry policy with a budget, per-attempt
// timeouts and per-item deadlines, and ordered, settled results.
//
// Nesting model: a task is a call, and holds one slot per attempt. A task that submits work to
// its own scheduler (a nested `run`/`map`/`stream`, found through AsyncLocalStorage) becomes an
// orchestrator: it gives its slot back at once, stops its attempt timeout, passes its signal
// down to the nested items, and is not retried (its calls are). So an outer `map` over claims
// whose task maps over line items cannot deadlock, and only calls count against the limits (an
// orchestrator's estimate is given back unless it reported usage of a call of its own). Nested
// work ranks with its parent, so it runs depth-first: one claim's line items go before the next
// claims start. Use `scope()` for a job with its own lower cap and a fair share.

import type { ConcurrencyController } from "./concurrency/concurrency-controller.ts";
import type { Listener } from "./emitter.ts";
import { Engine } from "./engine.ts";
import type { SchedulerEvents } from "./events.ts";
import type { RateDimension } from "./limits/limit.ts";
import type { Outcome } from "./outcome.ts";
import type { RateLimitSnapshot } from "./rate-limit-snapshot.ts";
import {
  type MapOptions,
  type RunOptions,
  resolveSchedulerOptions,
  type SchedulerOptions,
  type ScopeOptions,
  type SettleOptions,
  type StreamOptions,
} from "./scheduler-options.ts";
import { checkCap, checkPriority, Scope } from "./scope.ts";
import type { ItemTask, Task } from "./task-context.ts";

/** A bucket's state, for reports and tests. */
export type BucketState = { limitPerMinute: number; capacity: number; level: number };

export class Scheduler {
  readonly #engine: Engine;
  readonly #root: Scope;
  readonly #controller: ConcurrencyController;

  constructor(options: SchedulerOptions = {}) {
    const resolved = resolveSchedulerOptions(options);
    this.#engine = new Engine(resolved);
    this.#controller = resolved.controller;
    this.#root = new Scope(this.#engine, this.#engine.root, 0);
  }

  /** See `Scope.run`. */
  run<T>(task: Task<T>, options?: RunOptions): Promise<T> {
    return this.#root.run(task, options);
  }

  /** See `Scope.settle`. */
  settle<T>(task: Task<T>, options?: SettleOptions<T>): Promise<Outcome<T>> {
    return this.#root.settle(task, options);
  }

  /** See `Scope.map`. */
  map<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options?: MapOptions<I, T>,
  ): Promise<Array<Outcome<T>>> {
    return this.#root.map(inputs, task, options);
  }

  /** See `Scope.stream`. */
  stream<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options?: StreamOptions<I, T>,
  ): AsyncIterableIterator<Outcome<T>> {
    return this.#root.stream(inputs, task, options);
  }

  /**
   * A job's own view: a lower cap (`concurrency`) within this scheduler's limits, a default
   * priority, and a round-robin share against other scopes at equal priority.
   */
  scope(options: ScopeOptions = {}): Scope {
    const cap = checkCap(options.concurrency ?? Number.POSITIVE_INFINITY);
    const lane = this.#engine.newLane(options.name, cap);
    const priority = options.priority === undefined ? 0 : checkPriority(options.priority);
    return new Scope(this.#engine, lane, priority);
  }

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof SchedulerEvents>(
    event: K,
    listener: Listener<SchedulerEvents[K]>,
  ): () => void {
    return this.#engine.events.on(event, listener);
  }

  off<K extends keyof SchedulerEvents>(event: K, listener: Listener<SchedulerEvents[K]>): void {
    this.#engine.events.off(event, listener);
  }

  /** Applies rate-limit readings that arrived outside an attempt. */
  reportRateLimits(snapshot: RateLimitSnapshot): void {
    this.#engine.applySnapshot(snapshot, undefined);
  }

  /** The concurrency controller (e.g. a `StaticConcurrency` to call `setLimit` on). */
  get controller(): ConcurrencyController {
    return this.#controller;
  }

  /** Attempts holding a slot. */
  get inFlight(): number {
    return this.#engine.inFlight;
  }
  /** Items waiting for admission. */
  get queued(): number {
    return this.#engine.queued;
  }
  /** Items submitted and not yet settled (queued, running, or waiting to retry). */
  get pending(): number {
    return this.#engine.pending;
  }
  /** The current concurrency limit. */
  get limit(): number {
    return this.#engine.limit;
  }
  /** Whether admission is paused by a shared cooldown now. */
  get isCoolingDown(): boolean {
    return this.#engine.clock.now() < this.#engine.cooldownUntil;
  }
  /** When the current (or last) cooldown ends, in clock ms; -Infinity if there was none. */
  get cooldownUntil(): number {
    return this.#engine.cooldownUntil;
  }

  /** The state of a dimension's bucket, or undefined if that dimension is not limited. */
  bucket(dimension: RateDimension): BucketState | undefined {
    const bucket = this.#engine.rates.bucket(dimension);
    if (bucket === undefined) return undefined;
    return {
      limitPerMinute: bucket.limitPerMinute,
      capacity: bucket.capacity,
      level: bucket.level(this.#engine.clock.now()),
    };
  }

  /** Resolves when nothing is queued, waiting or in flight. */
  onIdle(): Promise<void> {
    return this.#engine.onIdle();
  }

  /**
   * Stops admitting while the attempts in flight finish (a graceful stop: Ctrl-C, SIGTERM).
   * Queued items and items waiting to retry settle at once with AbortedError (`cause`: `reason`),
   * later submissions are refused the same way, and an attempt that fails from now on is not
   * retried. Resolves when nothing is in flight; `close()` still aborts what runs.
   */
  drain(reason?: unknown): Promise<void> {
    return this.#engine.drain(reason);
  }

  /** Whether `drain()` was called. */
  get draining(): boolean {
    return this.#engine.draining;
  }

  /**
   * Refuses new work (`SchedulerClosedError`), settles queued and waiting items with it, aborts
   * running attempts, and resolves once every attempt has really ended.
   */
  close(reason?: unknown): Promise<void> {
    return this.#engine.close(reason);
  }
}

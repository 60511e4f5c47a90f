// A scope is a job's view of a scheduler: the same entry points (`run`, `settle`, `map`,
// `stream`), drawing on the scheduler's shared limits, with an optional lower cap of its own and
// a fair (round-robin) share against other scopes at equal priority. The scheduler's own entry
// points are those of its root scope.

import { AbortedError, ConfigError } from "../errors.ts";
import type { Engine } from "./engine.ts";
import { type Attempt, Item, type ItemSink } from "./item.ts";
import type { Lane } from "./lane.ts";
import type { Charge } from "./limits/limit.ts";
import type { ItemId, Outcome } from "./outcome.ts";
import type {
  Cost,
  MapOptions,
  RunOptions,
  SettleOptions,
  StreamOptions,
} from "./scheduler-options.ts";
import { nonNegative, positive, positiveInteger } from "./scheduler-options.ts";
import type { ItemTask, Task } from "./task-context.ts";

type Fallback<T> = ((error: unknown, input: unknown, index: number) => T) | undefined;

/**
 * What every item of one entry-point call shares: validated options, the signal (the caller's,
 * combined with the parent attempt's when nesting) and the parent attempt.
 */
type Common = {
  priority: number;
  timeoutMs: number;
  deadlineMs: number;
  signal: AbortSignal | undefined;
  parent: Attempt | undefined;
};

type CommonOptions = {
  priority?: number | undefined;
  timeoutMs?: number | undefined;
  deadlineMs?: number | undefined;
  signal?: AbortSignal | undefined;
};

export class Scope {
  readonly #engine: Engine;
  readonly #lane: Lane<Item>;
  readonly #priority: number;
  /** `Common` for a top-level call with no options of its own (no allocation per call). */
  readonly #defaults: Common;

  /** Made by `Scheduler` (its root scope) and `Scheduler.scope()`; not constructed directly. */
  constructor(engine: Engine, lane: Lane<Item>, priority: number) {
    this.#engine = engine;
    this.#lane = lane;
    this.#priority = priority;
    this.#defaults = Object.freeze({
      priority,
      timeoutMs: engine.options.timeoutMs,
      deadlineMs: engine.options.deadlineMs,
      signal: undefined,
      parent: undefined,
    });
  }

  get name(): string | undefined {
    return this.#lane.name;
  }

  /** This scope's own cap on slots (Infinity: only the scheduler's limit applies). */
  get concurrency(): number {
    return this.#lane.cap;
  }

  set concurrency(cap: number) {
    this.#engine.setLaneCap(this.#lane, checkCap(cap));
  }

  /** Attempts of this scope holding a slot. */
  get inFlight(): number {
    return this.#lane.inFlight;
  }

  /** Items of this scope waiting for admission. */
  get queued(): number {
    return this.#lane.queue.size;
  }

  /**
   * Runs one call: resolves with its value, or rejects with the final error (a `ProviderError`
   * after retries, or `AbortedError`, `DeadlineExceededError`, `RequestTooLargeError`,
   * `SchedulerClosedError`). Use `settle` to get an `Outcome` (attempts, reason) instead.
   */
  run<T>(task: Task<T>, options?: RunOptions): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const charge = options?.cost === undefined ? DEFAULT_CHARGE : toCharge(options.cost);
      const common = this.#common(options);
      const item = this.#item(common, {
        task,
        input: undefined,
        hasInput: false,
        index: 0,
        id: options?.id,
        charge,
        sink: undefined,
      });
      item.resolve = resolve as (value: unknown) => void;
      item.reject = reject;
      this.#engine.submit(item, true);
    });
  }

  /** Runs one call and resolves with its outcome; never rejects (but for invalid options). */
  settle<T>(task: Task<T>, options?: SettleOptions<T>): Promise<Outcome<T>> {
    return new Promise<Outcome<T>>((resolve) => {
      const charge = options?.cost === undefined ? DEFAULT_CHARGE : toCharge(options.cost);
      const common = this.#common(options);
      const fallback = options?.fallback;
      const sink = new SettleSink(
        resolve as (outcome: Outcome<unknown>) => void,
        fallback === undefined ? undefined : (error: unknown) => fallback(error),
      );
      const item = this.#item(common, {
        task,
        input: undefined,
        hasInput: false,
        index: 0,
        id: options?.id,
        charge,
        sink,
      });
      this.#engine.submit(item, true);
    });
  }

  /**
   * Runs `task` once per input (each input is one call, with retries) and resolves with every
   * outcome in input order; never rejects for an item's failure. On abort or `close()`, input
   * is no longer read (not even a sync iterable; a pending read of an async one is abandoned and
   * its iterator's `return()` called without waiting): the items read get exactly one outcome
   * each (unfinished ones `AbortedError` or `SchedulerClosedError`), inputs not read get none.
   * Rejects only if reading the input throws (unfinished items are then aborted).
   */
  async map<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options: MapOptions<I, T> = {},
  ): Promise<Array<Outcome<T>>> {
    const common = this.#common(options);
    const batch = new MapBatch<T>(this.#engine, options.fallback as Fallback<T>);
    batch.listen(common.signal);
    try {
      try {
        let index = 0;
        if (isSyncIterable(inputs)) {
          const iterator = inputs[Symbol.iterator]();
          let done = false;
          try {
            while (!batch.stopped) {
              const next = iterator.next();
              if (next.done) {
                done = true;
                break;
              }
              this.#submitInput(task, next.value, index++, options, common, batch);
            }
          } finally {
            if (!done) closeIterator(iterator);
          }
        } else {
          const iterator = inputs[Symbol.asyncIterator]();
          let done = false;
          try {
            for (;;) {
              const next = await batch.read(iterator);
              if (next === undefined) break;
              if (next.done) {
                done = true;
                break;
              }
              this.#submitInput(task, next.value, index++, options, common, batch);
            }
          } finally {
            if (!done) closeIterator(iterator);
          }
        }
      } catch (error) {
        batch.abortAll(error);
        throw error;
      } finally {
        batch.inputDone();
      }
      return await batch.promise;
    } finally {
      batch.unlisten(common.signal);
    }
  }

  /**
   * Like `map`, as an async iterable of outcomes in input order, for inputs of any size in flat
   * memory: it reads at most `window` inputs ahead of the oldest outcome not yet yielded (a slow
   * item blocks reading, not running). Breaking out of the loop aborts the unfinished items. On
   * abort or `close()`, input is no longer read (as for `map`): the inputs already read are
   * yielded (as `AbortedError`/`SchedulerClosedError` outcomes if unfinished) and the iteration
   * ends.
   */
  stream<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options: StreamOptions<I, T> = {},
  ): AsyncIterableIterator<Outcome<T>> {
    const window =
      options.window === undefined
        ? this.#engine.options.window
        : positiveInteger("window", options.window);
    // Entered now, in the caller's async context, not when iteration starts.
    const common = this.#common(options);
    return this.#stream(inputs, task, options, { common, window });
  }

  async *#stream<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options: StreamOptions<I, T>,
    { common, window }: { common: Common; window: number },
  ): AsyncIterableIterator<Outcome<T>> {
    const ring = new StreamRing<T>(this.#engine, window, options.fallback as Fallback<T>);
    const sync = isSyncIterable(inputs);
    const iterator = sync
      ? (inputs as Iterable<I>)[Symbol.iterator]()
      : (inputs as AsyncIterable<I>)[Symbol.asyncIterator]();
    let inputDone = false;
    let read = 0;
    ring.listen(common.signal);
    try {
      for (;;) {
        while (!inputDone && read - ring.yielded < window && !ring.stopped) {
          const next = sync
            ? (iterator as Iterator<I>).next()
            : await ring.read(iterator as AsyncIterator<I>);
          if (next === undefined) break;
          if (next.done) {
            inputDone = true;
            break;
          }
          this.#submitInput(task, next.value, read++, options, common, ring);
        }
        if (ring.yielded === read) break;
        yield await ring.next();
      }
    } finally {
      ring.unlisten(common.signal);
      ring.abortAll(undefined);
      if (!inputDone) {
        // A read abandoned at a stop may never finish: then `return()` is not waited for.
        if (ring.abandonedRead) closeIterator(iterator);
        else await iterator.return?.();
      }
    }
  }

  /**
   * Validates an entry point's shared options, then (only then) enters nesting: a call with
   * invalid options must not turn its caller into an orchestrator.
   */
  #common(options: CommonOptions | undefined): Common {
    let priority = this.#priority;
    let timeoutMs = this.#defaults.timeoutMs;
    let deadlineMs = this.#defaults.deadlineMs;
    let own: AbortSignal | undefined;
    if (options !== undefined) {
      if (options.priority !== undefined) priority = checkPriority(options.priority);
      if (options.timeoutMs !== undefined)
        timeoutMs = positive("timeoutMs", options.timeoutMs, true);
      if (options.deadlineMs !== undefined) {
        deadlineMs = positive("deadlineMs", options.deadlineMs, true);
      }
      own = options.signal;
    }
    const parent = this.#engine.enterNested();
    if (parent === undefined && own === undefined && options?.priority === undefined) {
      if (timeoutMs === this.#defaults.timeoutMs && deadlineMs === this.#defaults.deadlineMs) {
        return this.#defaults;
      }
    }
    let signal = own;
    if (parent !== undefined) {
      signal = own === undefined ? parent.signal : AbortSignal.any([own, parent.signal]);
    }
    return { priority, timeoutMs, deadlineMs, signal, parent };
  }

  #submitInput<I, T>(
    task: ItemTask<I, T>,
    input: I,
    index: number,
    options: MapOptions<I, T>,
    common: Common,
    batch: Batch,
  ): void {
    const cost = options.cost?.(input, index);
    const item = this.#item(common, {
      task,
      input,
      hasInput: true,
      index,
      id: options.id?.(input, index),
      charge: cost === undefined ? DEFAULT_CHARGE : toCharge(cost),
      sink: batch,
    });
    batch.add(item);
    // The batch listens to the signal once for all its items.
    this.#engine.submit(item, false);
  }

  #item(
    common: Common,
    own: {
      task: (...args: never[]) => unknown;
      input: unknown;
      hasInput: boolean;
      index: number;
      id: ItemId | undefined;
      charge: Charge;
      sink: ItemSink | undefined;
    },
  ): Item {
    const engine = this.#engine;
    return new Item({
      engine,
      lane: this.#lane,
      id: own.id ?? engine.nextId(),
      index: own.index,
      priority: common.priority,
      task: own.task,
      input: own.input,
      hasInput: own.hasInput,
      charge: own.charge,
      timeoutMs: common.timeoutMs,
      deadlineMs: common.deadlineMs,
      signal: common.signal,
      sink: own.sink,
      parent: common.parent,
    });
  }
}

const DEFAULT_CHARGE: Charge = Object.freeze({
  requests: 1,
  tokens: 0,
  inputTokens: 0,
  outputTokens: 0,
});

function toCharge(cost: Cost): Charge {
  const inputTokens = nonNegative("cost.inputTokens", cost.inputTokens ?? 0);
  const outputTokens = nonNegative("cost.outputTokens", cost.outputTokens ?? 0);
  return {
    requests: nonNegative("cost.requests", cost.requests ?? 1),
    tokens: nonNegative("cost.tokens", cost.tokens ?? inputTokens + outputTokens),
    inputTokens,
    outputTokens,
  };
}

export function checkPriority(priority: number): number {
  if (typeof priority !== "number" || Number.isNaN(priority)) {
    throw new ConfigError({ field: "priority", expected: "a number", got: priority });
  }
  return priority;
}

export function checkCap(cap: number): number {
  if (cap === Number.POSITIVE_INFINITY) return cap;
  return positiveInteger("concurrency", cap);
}

/** Ends an iteration early without waiting: an async `return()` may never settle. */
function closeIterator(iterator: Iterator<unknown> | AsyncIterator<unknown>): void {
  try {
    const result = iterator.return?.();
    if (result instanceof Promise) result.catch(() => {});
  } catch {
    // The input's own cleanup failed; the batch's outcomes are already decided.
  }
}

function isSyncIterable<I>(inputs: Iterable<I> | AsyncIterable<I>): inputs is Iterable<I> {
  return typeof (inputs as Iterable<I>)[Symbol.iterator] === "function";
}

function toOutcome<T>(item: Item, fallback: Fallback<T>): Outcome<T> {
  const latencyMs = item.settledAt - item.submittedAt;
  if (item.ok) {
    return {
      ok: true,
      value: item.value as T,
      id: item.id,
      index: item.index,
      attempts: item.attempts,
      latencyMs,
    };
  }
  let value: T | undefined;
  if (fallback !== undefined) {
    try {
      value = fallback(item.error, item.input, item.index);
    } catch {
      // A throwing fallback leaves `fallback` unset; the failure itself is already recorded.
    }
  }
  return {
    ok: false,
    error: item.error,
    reason: item.reason!,
    fallback: value,
    id: item.id,
    index: item.index,
    attempts: item.attempts,
    latencyMs,
  };
}

class SettleSink implements ItemSink {
  readonly #resolve: (outcome: Outcome<unknown>) => void;
  readonly #fallback: Fallback<unknown>;
  constructor(resolve: (outcome: Outcome<unknown>) => void, fallback: Fallback<unknown>) {
    this.#resolve = resolve;
    this.#fallback = fallback;
  }
  settled(item: Item): void {
    this.#resolve(toOutcome(item, this.#fallback));
  }
}

/**
 * The items of one `map`/`stream` call: one abort listener for all, unfinished items tracked, and
 * the reading of its input, which stops (`stopped`) when the signal fires or the scheduler closes.
 */
abstract class Batch implements ItemSink {
  readonly #engine: Engine;
  readonly #live = new Set<Item>();
  /** Reading stops: the signal fired or the scheduler closed. */
  stopped = false;
  /** A read was pending when reading stopped (its iterator may never answer). */
  abandonedRead = false;
  #wake: ((result: undefined) => void) | undefined = undefined;
  constructor(engine: Engine) {
    this.#engine = engine;
  }
  add(item: Item): void {
    this.#live.add(item);
  }
  settled(item: Item): void {
    this.#live.delete(item);
    this.onSettled(item);
  }
  protected abstract onSettled(item: Item): void;
  listen(signal: AbortSignal | undefined): void {
    if (signal?.aborted || this.#engine.closed) this.stopped = true;
    signal?.addEventListener("abort", this, { once: true });
    this.#engine.closeSignal.addEventListener("abort", this, { once: true });
  }
  unlisten(signal: AbortSignal | undefined): void {
    signal?.removeEventListener("abort", this);
    this.#engine.closeSignal.removeEventListener("abort", this);
  }
  /** The signal fired or the scheduler closed (EventTarget listener object). */
  handleEvent(event: Event): void {
    this.#stop();
    // On close the scheduler settles every item itself.
    if (event.target !== this.#engine.closeSignal) {
      this.abortAll((event.target as AbortSignal).reason);
    }
  }
  /**
   * The next input, or undefined once reading has stopped, even if the iterator never answers
   * (an async input that stalls must not keep a stopped batch waiting).
   */
  read<I>(iterator: AsyncIterator<I>): Promise<IteratorResult<I> | undefined> {
    if (this.stopped) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.#wake = resolve;
      iterator.next().then(
        (result) => {
          this.#wake = undefined;
          resolve(result);
        },
        (error: unknown) => {
          this.#wake = undefined;
          reject(error);
        },
      );
    });
  }
  #stop(): void {
    this.stopped = true;
    const wake = this.#wake;
    if (wake !== undefined) {
      this.#wake = undefined;
      this.abandonedRead = true;
      wake(undefined);
    }
  }
  /** Settles every unfinished item with `AbortedError`. */
  abortAll(reason: unknown): void {
    if (this.#live.size === 0) return;
    const reasonOrDefault =
      reason ?? new AbortedError("the stream was closed before this item finished");
    for (const item of [...this.#live]) this.#engine.abortItem(item, reasonOrDefault);
  }
}

class MapBatch<T> extends Batch {
  readonly results: Array<Outcome<T>> = [];
  readonly promise: Promise<Array<Outcome<T>>>;
  readonly #fallback: Fallback<T>;
  #resolve!: (results: Array<Outcome<T>>) => void;
  #unsettled = 0;
  #inputDone = false;
  constructor(engine: Engine, fallback: Fallback<T>) {
    super(engine);
    this.#fallback = fallback;
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }
  override add(item: Item): void {
    this.#unsettled++;
    super.add(item);
  }
  protected onSettled(item: Item): void {
    this.results[item.index] = toOutcome(item, this.#fallback);
    if (--this.#unsettled === 0 && this.#inputDone) this.#resolve(this.results);
  }
  inputDone(): void {
    this.#inputDone = true;
    if (this.#unsettled === 0) this.#resolve(this.results);
  }
}

/** Outcomes of a stream's read-ahead window, by input index modulo the window. */
class StreamRing<T> extends Batch {
  yielded = 0;
  readonly #slots: Array<Outcome<T> | undefined>;
  readonly #window: number;
  readonly #fallback: Fallback<T>;
  #waiting: (() => void) | undefined = undefined;
  constructor(engine: Engine, window: number, fallback: Fallback<T>) {
    super(engine);
    this.#window = window;
    // Grown on demand: a huge window over a short input costs nothing.
    this.#slots = [];
    this.#fallback = fallback;
  }
  protected onSettled(item: Item): void {
    this.#slots[item.index % this.#window] = toOutcome(item, this.#fallback);
    if (this.#waiting !== undefined && item.index === this.yielded) {
      const wake = this.#waiting;
      this.#waiting = undefined;
      wake();
    }
  }
  /** The next outcome in input order, once it has settled. */
  async next(): Promise<Outcome<T>> {
    const slot = this.yielded % this.#window;
    if (this.#slots[slot] === undefined) {
      await new Promise<void>((resolve) => {
        this.#waiting = resolve;
      });
    }
    const outcome = this.#slots[slot]!;
    this.#slots[slot] = undefined;
    this.yielded++;
    return outcome;
  }
}

// A scope is a job's view of a scheduler: the same entry points (`run`, `settle`, `map`,
// `stream`), drawing on the scheduler's shared limits, with an optional lower cap of its own and
// a fair (round-robin) share against other scopes at equal priority. The scheduler's own entry
// points are those of its root scope.

import { AbortedError, ConfigError } from "../errors.ts";
import type { Engine } from "./engine.ts";
import { Item, type ItemSink } from "./item.ts";
import type { Lane } from "./lane.ts";
import type { Charge } from "./limits/limit.ts";
import type { Outcome } from "./outcome.ts";
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

export class Scope {
  readonly #engine: Engine;
  readonly #lane: Lane<Item>;
  readonly #priority: number;

  /** Made by `Scheduler` (its root scope) and `Scheduler.scope()`; not constructed directly. */
  constructor(engine: Engine, lane: Lane<Item>, priority: number) {
    this.#engine = engine;
    this.#lane = lane;
    this.#priority = priority;
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
    const signal = this.#signal(options?.signal);
    return new Promise<T>((resolve, reject) => {
      const item = this.#item(
        task,
        undefined,
        false,
        0,
        options?.id,
        options?.priority,
        options?.cost,
        options?.timeoutMs,
        options?.deadlineMs,
        signal,
        undefined,
      );
      item.resolve = resolve as (value: unknown) => void;
      item.reject = reject;
      this.#engine.submit(item, true);
    });
  }

  /** Runs one call and resolves with its outcome; never rejects. */
  settle<T>(task: Task<T>, options?: SettleOptions<T>): Promise<Outcome<T>> {
    const signal = this.#signal(options?.signal);
    return new Promise<Outcome<T>>((resolve) => {
      const fallback = options?.fallback;
      const sink = new SettleSink(
        resolve as (outcome: Outcome<unknown>) => void,
        fallback === undefined ? undefined : (error: unknown) => fallback(error),
      );
      this.#submit(task, undefined, false, 0, options, signal, sink, true);
    });
  }

  /**
   * Runs `task` once per input (each input is one call, with retries) and resolves with every
   * outcome in input order; never rejects for an item's failure. On abort, unfinished items
   * settle with `AbortedError` and an async input is no longer read. Rejects only if reading the
   * input throws (unfinished items are then aborted).
   */
  async map<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options: MapOptions<I, T> = {},
  ): Promise<Array<Outcome<T>>> {
    const signal = this.#signal(options.signal);
    const batch = new MapBatch<T>(this.#engine, options.fallback as Fallback<T>);
    signal?.addEventListener("abort", batch, { once: true });
    try {
      let index = 0;
      if (isSyncIterable(inputs)) {
        for (const input of inputs) this.#submitInput(task, input, index++, options, signal, batch);
      } else {
        for await (const input of inputs) {
          if (signal?.aborted) break;
          this.#submitInput(task, input, index++, options, signal, batch);
        }
      }
    } catch (error) {
      batch.abortAll(error);
      throw error;
    } finally {
      batch.inputDone();
    }
    try {
      return await batch.promise;
    } finally {
      signal?.removeEventListener("abort", batch);
    }
  }

  /**
   * Like `map`, as an async iterable of outcomes in input order, for inputs of any size in flat
   * memory: it reads at most `window` inputs ahead of the oldest outcome not yet yielded (a slow
   * item blocks reading, not running). Breaking out of the loop aborts the unfinished items. On
   * abort, the inputs already read are yielded (as `AbortedError` outcomes if unfinished) and the
   * iteration ends.
   */
  stream<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options: StreamOptions<I, T> = {},
  ): AsyncIterableIterator<Outcome<T>> {
    // Entered now, in the caller's async context, not when iteration starts.
    const signal = this.#signal(options.signal);
    const window =
      options.window === undefined
        ? this.#engine.options.window
        : positiveInteger("window", options.window);
    return this.#stream(inputs, task, options, signal, window);
  }

  async *#stream<I, T>(
    inputs: Iterable<I> | AsyncIterable<I>,
    task: ItemTask<I, T>,
    options: StreamOptions<I, T>,
    signal: AbortSignal | undefined,
    window: number,
  ): AsyncIterableIterator<Outcome<T>> {
    const ring = new StreamRing<T>(this.#engine, window, options.fallback as Fallback<T>);
    const sync = isSyncIterable(inputs);
    const iterator = sync
      ? (inputs as Iterable<I>)[Symbol.iterator]()
      : (inputs as AsyncIterable<I>)[Symbol.asyncIterator]();
    let inputDone = false;
    let read = 0;
    signal?.addEventListener("abort", ring, { once: true });
    try {
      for (;;) {
        while (!inputDone && read - ring.yielded < window && !signal?.aborted) {
          const next = sync
            ? (iterator as Iterator<I>).next()
            : await (iterator as AsyncIterator<I>).next();
          if (next.done) {
            inputDone = true;
            break;
          }
          this.#submitInput(task, next.value, read++, options, signal, ring);
        }
        if (ring.yielded === read) break;
        yield await ring.next();
      }
    } finally {
      signal?.removeEventListener("abort", ring);
      ring.abortAll(undefined);
      if (!inputDone) await iterator.return?.();
    }
  }

  #signal(own: AbortSignal | undefined): AbortSignal | undefined {
    const inherited = this.#engine.enterNested();
    if (own === undefined) return inherited;
    if (inherited === undefined) return own;
    return AbortSignal.any([own, inherited]);
  }

  #submitInput<I, T>(
    task: ItemTask<I, T>,
    input: I,
    index: number,
    options: MapOptions<I, T>,
    signal: AbortSignal | undefined,
    batch: Batch,
  ): void {
    const item = this.#item(
      task,
      input,
      true,
      index,
      options.id?.(input, index),
      options.priority,
      options.cost?.(input, index),
      options.timeoutMs,
      options.deadlineMs,
      signal,
      batch,
    );
    batch.add(item);
    // The batch listens to the signal once for all its items.
    this.#engine.submit(item, false);
  }

  #submit(
    task: Task<unknown>,
    input: unknown,
    hasInput: boolean,
    index: number,
    options: RunOptions | undefined,
    signal: AbortSignal | undefined,
    sink: ItemSink,
    listen: boolean,
  ): void {
    const item = this.#item(
      task,
      input,
      hasInput,
      index,
      options?.id,
      options?.priority,
      options?.cost,
      options?.timeoutMs,
      options?.deadlineMs,
      signal,
      sink,
    );
    this.#engine.submit(item, listen);
  }

  #item(
    task: (...args: never[]) => unknown,
    input: unknown,
    hasInput: boolean,
    index: number,
    id: string | number | undefined,
    priority: number | undefined,
    cost: Cost | undefined,
    timeoutMs: number | undefined,
    deadlineMs: number | undefined,
    signal: AbortSignal | undefined,
    sink: ItemSink | undefined,
  ): Item {
    const engine = this.#engine;
    const defaults = engine.options;
    return new Item(
      engine,
      this.#lane,
      id ?? engine.nextId(),
      index,
      priority === undefined ? this.#priority : checkPriority(priority),
      task,
      input,
      hasInput,
      cost === undefined ? DEFAULT_CHARGE : toCharge(cost),
      timeoutMs === undefined ? defaults.timeoutMs : positive("timeoutMs", timeoutMs, true),
      deadlineMs === undefined ? defaults.deadlineMs : positive("deadlineMs", deadlineMs, true),
      signal,
      sink,
    );
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

function checkPriority(priority: number): number {
  if (typeof priority !== "number" || Number.isNaN(priority)) {
    throw new ConfigError({ field: "priority", expected: "a number", got: priority });
  }
  return priority;
}

export function checkCap(cap: number): number {
  if (cap === Number.POSITIVE_INFINITY) return cap;
  return positiveInteger("concurrency", cap);
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

/** The items of one `map`/`stream` call: one abort listener for all, unfinished items tracked. */
abstract class Batch implements ItemSink {
  readonly #engine: Engine;
  readonly #live = new Set<Item>();
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
  /** The signal fired (EventTarget listener object). */
  handleEvent(event: Event): void {
    this.abortAll((event.target as AbortSignal).reason);
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

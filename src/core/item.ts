// The scheduler's internal records: an `Item` is one unit of result (one `run`, one input of a
// `map`), an `Attempt` is one try at it holding one slot. Not exported from the package.

import type { GatePass } from "./admission-gate.ts";
import type { AttemptResult } from "./concurrency/concurrency-controller.ts";
import type { Engine } from "./engine.ts";
import type { Lane } from "./lane.ts";
import type { Charge } from "./limits/limit.ts";
import type { Usage } from "./limits/rate-limits.ts";
import type { FailureReason, ItemId } from "./outcome.ts";
import type { Level, QueueEntry } from "./priority-queue.ts";
import type { RateLimitSnapshot } from "./rate-limit-snapshot.ts";
import type { TaskContext } from "./task-context.ts";
import type { Deadline } from "./timer-heap.ts";

/** Receives an item once, when it settles. */
export interface ItemSink {
  settled(item: Item): void;
}

export const NEW = 0;
export const QUEUED = 1;
export const RUNNING = 2;
export const SLEEPING = 3;
export const DONE = 4;

/** What an item is made of; the options are already validated. */
export type ItemInit = {
  engine: Engine;
  lane: Lane<Item>;
  id: ItemId;
  /** Input position for `map`/`stream`, else 0. */
  index: number;
  priority: number;
  task: (...args: never[]) => unknown;
  input: unknown;
  /** Whether `task` takes `input` (a `map`/`stream` item). */
  hasInput: boolean;
  charge: Charge;
  timeoutMs: number;
  deadlineMs: number;
  signal: AbortSignal | undefined;
  /** Receives the item when it settles; undefined for `run` (uses resolve/reject). */
  sink: ItemSink | undefined;
  /** The attempt that submitted it (nested work), if any: the item ranks with its parent. */
  parent: Attempt | undefined;
};

export class Item implements QueueEntry {
  seq = 0;
  /**
   * Its rank within a priority: its own `seq`, or for nested work its parent's `group`, so the
   * work of an item submitted earlier runs before items submitted after it (depth-first), and a
   * batch of claims does not hold every claim's nested work in memory at once. Set on submit.
   */
  group = -1;
  // Queue links (see PriorityQueue) and the engine's list of unsettled items.
  prev: this | undefined = undefined;
  next: this | undefined = undefined;
  level: Level<this> | undefined = undefined;
  heapIndex = -1;
  livePrev: Item | undefined = undefined;
  liveNext: Item | undefined = undefined;
  /** For `run`: settle the caller's promise directly (no sink object per call). */
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((error: unknown) => void) | undefined = undefined;
  state = NEW;
  readonly engine: Engine;
  readonly lane: Lane<Item>;
  readonly id: ItemId;
  readonly index: number;
  readonly priority: number;
  readonly task: (...args: never[]) => unknown;
  readonly input: unknown;
  readonly hasInput: boolean;
  readonly charge: Charge;
  readonly timeoutMs: number;
  readonly deadlineMs: number;
  readonly signal: AbortSignal | undefined;
  /** Receives the item when it settles; undefined for `run` (uses resolve/reject). */
  readonly sink: ItemSink | undefined;

  submittedAt = 0;
  enqueuedAt = 0;
  attempts = 0;
  previousDelayMs = 0;
  current: Attempt | undefined = undefined;
  lastError: unknown = undefined;
  deadlineTimer: Deadline<Item> | undefined = undefined;
  /** The deadline passed while an answered attempt wrote its answer down: its grace runs. */
  deadlineGrace = false;
  timeoutTimer: Deadline<Item> | undefined = undefined;
  sleepTimer: Deadline<Item> | undefined = undefined;
  /** Sleeping because the retry budget had no retry for it yet (its backoff is over). */
  budgetWait = false;

  ok = false;
  value: unknown = undefined;
  error: unknown = undefined;
  reason: FailureReason | undefined = undefined;
  settledAt = 0;

  constructor(init: ItemInit) {
    this.engine = init.engine;
    this.lane = init.lane;
    this.id = init.id;
    this.index = init.index;
    this.priority = init.priority;
    this.task = init.task;
    this.input = init.input;
    this.hasInput = init.hasInput;
    this.charge = init.charge;
    this.timeoutMs = init.timeoutMs;
    this.deadlineMs = init.deadlineMs;
    this.signal = init.signal;
    this.sink = init.sink;
    if (init.parent !== undefined) this.group = init.parent.item.group;
  }
}

export class Attempt implements TaskContext {
  readonly engine: Engine;
  readonly item: Item;
  readonly attempt: number;
  /** When it started: its slot was taken, or, with an admission gate, the gate admitted it. */
  startedAt: number;
  /** The engine's attempts-in-flight integral (attempt-ms) when this attempt started. */
  loadAtStart = 0;
  /** When the task said the provider had answered (`answered()`): its timeout stopped then. */
  answeredAt: number | undefined = undefined;
  /** What this attempt reserved; replaced by the reconciled charge when usage is reported. */
  charge: Charge;
  /** Whether it still holds a slot (and its reservation). */
  holdsSlot = true;
  /** Whether its outcome was decided (by the task settling, a timeout, abort, deadline, close). */
  decided = false;
  /** Whether the task's promise has settled. */
  ended = false;
  /** It submitted work to its own scheduler and gave its slot back (see `Engine.enterNested`). */
  orchestrator = false;
  /** It reported usage: it made a call, whose charge stays even if it becomes an orchestrator. */
  reported = false;
  /** Its estimate was given back when it became an orchestrator (it had reported no usage). */
  refunded = false;
  outputTokens: number | undefined = undefined;
  // With an admission gate (see admission-gate.ts): whether it waits for the gate, whether it got
  // past it (its task started), the gate's pass, and what the pass is told when the slot is freed.
  waitingForGate = false;
  began = true;
  pass: GatePass | undefined = undefined;
  result: AttemptResult | undefined = undefined;
  retryAfterMs: number | undefined = undefined;
  snapshot: RateLimitSnapshot | undefined = undefined;
  #controller: AbortController | undefined = undefined;
  #abortReason: unknown = undefined;
  #aborted = false;

  constructor(engine: Engine, item: Item, attempt: number, startedAt: number) {
    this.engine = engine;
    this.item = item;
    this.attempt = attempt;
    this.startedAt = startedAt;
    this.charge = item.charge;
  }

  get id(): ItemId {
    return this.item.id;
  }

  get index(): number {
    return this.item.index;
  }

  // Created on first use: most of an instant task's cost would otherwise be this controller.
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }

  reportUsage(usage: Usage): void {
    this.engine.reportUsage(this, usage);
  }

  reportRateLimits(snapshot: RateLimitSnapshot): void {
    this.engine.applySnapshot(snapshot, this);
  }

  answered(): void {
    this.engine.answered(this);
  }
}

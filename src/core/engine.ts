// The scheduler's engine: the one admission authority of a provider key. It owns the queue
// (lanes), the concurrency slots, the rate-limit buckets, the shared cooldown, the attempt
// lifecycle (timeouts, retries, deadlines, aborts) and the events. Internal; `Scheduler` and
// `Scope` are its public faces.
//
// Invariants:
// - An attempt starts only when, at that moment, a slot is free under the current limit, its
//   lane is under its cap, the key is not cooling down, and every bucket admits its charge; the
//   slot and the charge are taken together (atomic admission).
// - A slot is freed only when the attempt's promise has settled, or when the attempt hands it
//   back by submitting nested work (see `enterNested`). A timed-out or aborted attempt that
//   ignores its signal keeps its slot.
// - Admission is strictly in queue order (lane order, then priority, then FIFO): a head that must
//   wait for the buckets makes everything behind it wait, so a big request is never starved.
// - Waiting is event driven: a freed slot or a raised limit pumps the queue; a bucket or cooldown
//   wait sets one wake-up deadline. Nothing polls.
// - Every item settles exactly once (`#finish`), with exactly one terminal event.
// - Listeners may call back (abort a signal, `close()`, submit work): every step that emits an
//   event, or calls the controller or the retry policy, re-checks `item.state === DONE` before it
//   touches the item again, and a settled item is never queued, started or settled again.

import { AsyncLocalStorage } from "node:async_hooks";
import {
  AbortedError,
  DeadlineExceededError,
  ProviderError,
  RequestTooLargeError,
  RetryAfterTooLongError,
  SchedulerClosedError,
  TimeoutError,
} from "../errors.ts";
import type { AdmissionGate, GatePass } from "./admission-gate.ts";
import type { Clock } from "./clock.ts";
import type {
  AttemptResult,
  ConcurrencyController,
  RateLimitsInForce,
} from "./concurrency/concurrency-controller.ts";
import { Emitter } from "./emitter.ts";
import type { SchedulerEvents } from "./events.ts";
import { Heap } from "./heap.ts";
import { Attempt, DONE, type Item, NEW, QUEUED, RUNNING, SLEEPING } from "./item.ts";
import { Lane, laneBefore } from "./lane.ts";
import type { Charge } from "./limits/limit.ts";
import { RateLimits, type Usage } from "./limits/rate-limits.ts";
import type { FailureReason, ItemId } from "./outcome.ts";
import type { RateLimitSnapshot } from "./rate-limit-snapshot.ts";
import { classifyFailure } from "./retry/classify-failure.ts";
import type { RetryPolicy } from "./retry/retry-policy.ts";
import type { ResolvedSchedulerOptions } from "./scheduler-options.ts";
import { Deadline, TimerHeap } from "./timer-heap.ts";

/** The attempt whose task is running in the current async context (for nesting). */
const currentAttempt = new AsyncLocalStorage<Attempt>();

export class Engine {
  readonly clock: Clock;
  readonly events: Emitter<SchedulerEvents>;
  readonly options: ResolvedSchedulerOptions;
  readonly root: Lane<Item>;
  readonly #timers: TimerHeap;
  /** The live items submitted with each signal (see `#watch`). */
  readonly #watched = new WeakMap<AbortSignal, { items: Set<Item>; onAbort: () => void }>();
  readonly #controller: ConcurrencyController;
  readonly #unsubscribe: () => void;
  readonly #rates: RateLimits;
  readonly #retry: RetryPolicy;
  /** An admission shared with other processes, asked after this engine's own (see admission-gate.ts). */
  readonly #gate: AdmissionGate | undefined;
  /** Eligible lanes: non-empty and under their cap. */
  readonly #lanes = new Heap<Lane<Item>>(laneBefore<Item>);
  readonly #wake: Deadline<Engine>;
  #limit: number;
  #laneIds = 0;
  #seq = 0;
  #tick = 0;
  #nextId = 0;
  #inFlight = 0;
  /** The integral of #inFlight over time (attempt-ms) up to #loadAt: a sample's mean load. */
  #load = 0;
  #loadAt = 0;
  /** Attempts holding a slot and their reservation, for reading rate-limit headers. */
  readonly #holding = new Set<Attempt>();
  #queued = 0;
  /** Retries whose backoff ended, waiting for the retry budget (see `#backoffEnded`). */
  #budgetWaiting = 0;
  #pending = 0;
  #cooldownUntil = Number.NEGATIVE_INFINITY;
  /** When the current (or last) cooldown began, and its one jitter draw (see `#pause`). */
  #cooldownStart = Number.NEGATIVE_INFINITY;
  #cooldownFactor = 1;
  #pumpQueued = false;
  #pumping = false;
  #closed = false;
  /** Set by `drain()`: nothing new is admitted and nothing is retried; running attempts finish. */
  #draining: AbortedError | undefined = undefined;
  #idle = true;
  #idleWaiters: Array<() => void> = [];
  #releaseKeepAlive: (() => void) | undefined = undefined;
  /** Aborted by `close()`: batches stop reading input. */
  readonly #closing = new AbortController();

  // Deadline callbacks, bound once (no closure per item).
  readonly #onTimeout = (item: Item) => this.#timeout(item);
  readonly #onBackoffEnd = (item: Item) => this.#backoffEnded(item);
  readonly #onDeadline = (item: Item) => this.#deadline(item);
  readonly #deferredPump = () => {
    this.#pumpQueued = false;
    this.#pump();
  };

  constructor(options: ResolvedSchedulerOptions) {
    this.options = options;
    this.clock = options.clock;
    this.events = new Emitter<SchedulerEvents>(
      (error, event) => options.onListenerError(error, String(event)),
      // Listeners run outside any attempt's context: a listener that submits work must not be
      // taken for a task nesting work (see `enterNested`).
      (listener, payload) => currentAttempt.exit(listener, payload),
    );
    this.#timers = new TimerHeap(this.clock);
    this.#wake = new Deadline<Engine>((engine) => engine.#pump(), this as Engine);
    this.#controller = options.controller;
    this.#limit = effectiveLimit(this.#controller.limit);
    this.#unsubscribe = this.#controller.subscribe((limit) => this.#limitChanged(limit));
    this.#retry = options.retry;
    this.#gate = options.gate;
    this.#rates = new RateLimits({
      limits: options.limits,
      burstSeconds: options.burstSeconds,
      marginMs: options.rateMarginMs,
      learnLimits: options.learnLimits,
      now: this.clock.now(),
    });
    this.#controller.setRateLimits?.(this.#limitsInForce());
    this.root = this.newLane(undefined, Number.POSITIVE_INFINITY);
  }

  get inFlight(): number {
    return this.#inFlight;
  }
  get queued(): number {
    return this.#queued;
  }
  /** Items submitted and not yet settled. */
  get pending(): number {
    return this.#pending;
  }
  get limit(): number {
    return this.#limit;
  }
  get cooldownUntil(): number {
    return this.#cooldownUntil;
  }
  get closed(): boolean {
    return this.#closed;
  }
  get rates(): RateLimits {
    return this.#rates;
  }
  /** Fires once, when `close()` is called. */
  get closeSignal(): AbortSignal {
    return this.#closing.signal;
  }

  nextId(): ItemId {
    return this.#nextId++;
  }

  newLane(name: string | undefined, cap: number): Lane<Item> {
    return new Lane<Item>(this.#laneIds++, name, cap);
  }

  setLaneCap(lane: Lane<Item>, cap: number): void {
    lane.cap = cap;
    this.#refreshLane(lane);
    this.#pump();
  }

  /**
   * Called by every entry point (after validating its options) before it submits. If the caller
   * is a task of this scheduler (nested `run`/`map`/`stream` inside an attempt), that attempt
   * becomes an orchestrator: it hands its slot back, its per-attempt timeout stops (it waits for
   * calls, it is not one), and its failure will not be retried (its calls already were). This is
   * what makes nested maps deadlock-free: only calls hold slots, never a task waiting for calls.
   * - The controller gets the attempt's outcome now (`cancelled`: it says nothing about the
   *   provider), so every start it saw is paired with one outcome.
   * - Its estimate is given back unless it reported usage: an orchestrator may have made no call,
   *   but usage it reports (before or after nesting) is a call it made, and stays charged.
   * - The freed slot is offered on a microtask, after the caller has submitted its nested work
   *   synchronously, so that work (which ranks with its parent, see `Item.group`) goes first.
   * Returns the attempt, whose signal and rank the nested work inherits.
   */
  enterNested(): Attempt | undefined {
    const attempt = currentAttempt.getStore();
    if (attempt === undefined || attempt.engine !== this || attempt.ended) return undefined;
    if (attempt.holdsSlot && !attempt.decided) {
      const now = this.clock.now();
      attempt.orchestrator = true;
      this.#sample(attempt, "cancelled", now, undefined);
      this.#releaseSlot(attempt);
      if (!attempt.reported) {
        this.#rates.refund(attempt.charge, now);
        attempt.refunded = true;
      }
      const item = attempt.item;
      if (item.timeoutTimer !== undefined) this.#timers.cancel(item.timeoutTimer);
      if (!this.#pumpQueued) {
        this.#pumpQueued = true;
        queueMicrotask(this.#deferredPump);
      }
    }
    return attempt;
  }

  /**
   * Aborts every live item that was submitted with the signal, when it fires. One listener per
   * signal, and a set of its items: many calls sharing one signal (a client's batch, a caller's
   * shutdown signal) cost O(1) each to add and remove, where a listener per item costs the
   * signal's whole listener list to remove.
   */
  #watch(signal: AbortSignal, item: Item): void {
    let watch = this.#watched.get(signal);
    if (watch === undefined) {
      const items = new Set<Item>();
      const onAbort = () => {
        this.#watched.delete(signal);
        for (const live of [...items]) this.abortItem(live, signal.reason);
      };
      watch = { items, onAbort };
      this.#watched.set(signal, watch);
      signal.addEventListener("abort", onAbort, { once: true });
    }
    watch.items.add(item);
  }

  /** The item has settled: the signal's listener goes when its last item does. */
  #unwatch(signal: AbortSignal, item: Item): void {
    const watch = this.#watched.get(signal);
    if (watch === undefined || !watch.items.delete(item) || watch.items.size > 0) return;
    this.#watched.delete(signal);
    signal.removeEventListener("abort", watch.onAbort);
  }

  /** Takes a new item: refuses it at once if it can never run, else queues or starts it. */
  submit(item: Item, listen: boolean): void {
    const now = this.clock.now();
    item.submittedAt = now;
    item.seq = this.#seq++;
    if (item.group < 0) item.group = item.seq;
    this.#pending++;
    if (this.#idle) {
      this.#idle = false;
      this.#holdProcess();
    }
    if (this.events.has("queued")) {
      this.#emitQueued(item, now);
      if (item.state === DONE) return; // a listener aborted it or closed the scheduler
    }
    if (this.#closed) {
      this.#fail(item, new SchedulerClosedError(), "closed", now);
      return;
    }
    if (this.#draining !== undefined) {
      this.#fail(item, this.#draining, "aborted", now);
      return;
    }
    const signal = item.signal;
    if (signal?.aborted) {
      this.#fail(item, aborted(signal.reason), "aborted", now);
      return;
    }
    const tooLarge = this.#rates.tooLarge(item.charge);
    if (tooLarge !== undefined) {
      this.#fail(item, new RequestTooLargeError(tooLarge), "request-too-large", now);
      return;
    }
    if (listen && signal !== undefined) this.#watch(signal, item);
    this.#link(item);
    if (item.deadlineMs !== Number.POSITIVE_INFINITY) {
      item.deadlineTimer = new Deadline(this.#onDeadline, item);
      this.#timers.schedule(item.deadlineTimer, now + item.deadlineMs);
    }
    // Fast path: nothing waits anywhere and everything admits it now.
    const lane = item.lane;
    if (
      this.#queued === 0 &&
      this.#inFlight < this.#limit &&
      lane.inFlight < lane.cap &&
      now >= this.#cooldownUntil &&
      this.#rates.waitMs(item.charge, now) === 0 &&
      (this.#budgetWaiting === 0 ||
        (this.#retry.admissionWaitMs?.(now, this.#budgetWaiting) ?? 0) === 0)
    ) {
      item.enqueuedAt = now;
      lane.served = ++this.#tick;
      this.#start(item, now);
      return;
    }
    this.#enqueue(item, now, true);
  }

  /** The caller's signal fired for `item` (a `run`/`settle`, or every live item of a batch). */
  abortItem(item: Item, reason: unknown): void {
    this.#cancel(item, aborted(reason), "aborted");
  }

  /**
   * The provider answered `attempt`: its timeout stops (what the task still does is its own
   * work). Its latency sample still runs to the task's end, as its slot does: the controller
   * reads calls in flight over their latency, and both count the slot's whole hold.
   */
  answered(attempt: Attempt): void {
    if (attempt.decided || attempt.ended || attempt.answeredAt !== undefined) return;
    attempt.answeredAt = this.clock.now();
    const item = attempt.item;
    if (item.current === attempt && item.timeoutTimer !== undefined)
      this.#timers.cancel(item.timeoutTimer);
  }

  reportUsage(attempt: Attempt, usage: Usage): void {
    const now = this.clock.now();
    const generated = usage.generatedTokens ?? usage.outputTokens;
    if (generated !== undefined) attempt.outputTokens = generated;
    if (attempt.refunded) {
      // An orchestrator whose estimate was given back made a call after all: charge it again,
      // then reconcile it like any call's.
      attempt.refunded = false;
      this.#rates.debit(attempt.charge, now);
    }
    attempt.reported = true;
    attempt.charge = this.#rates.reconcile(attempt.charge, usage, now, attempt.holdsSlot);
    // A refund may let the head in sooner than the wake-up set for it.
    if (this.#queued > 0) this.#pump();
  }

  /**
   * Applies a provider's rate-limit readings. A provider checks its limits when a request
   * arrives: its `remaining` counts the reporting attempt and those started before it, and
   * describes its bucket at about the reporting attempt's start. What it cannot have seen are the
   * reservations of attempts started after the reporting one; only those are subtracted, and the
   * refill since that start is added (a reading from outside any attempt subtracts every
   * reservation and adds nothing).
   */
  applySnapshot(snapshot: RateLimitSnapshot, attempt: Attempt | undefined): void {
    let unseen: Charge | undefined;
    if (attempt !== undefined) {
      attempt.snapshot = snapshot;
      unseen = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 };
      for (const other of this.#holding) {
        if (other === attempt || other.startedAt < attempt.startedAt) continue;
        unseen.requests += other.charge.requests;
        unseen.tokens += other.charge.tokens;
        unseen.inputTokens += other.charge.inputTokens;
        unseen.outputTokens += other.charge.outputTokens;
      }
    }
    const now = this.clock.now();
    this.#rates.applySnapshot(snapshot, unseen, now, attempt?.startedAt ?? now);
    this.#controller.setRateLimits?.(this.#limitsInForce());
  }

  #limitsInForce(): RateLimitsInForce {
    return {
      requestsPerMinute: this.#rates.bucket("requests")?.limitPerMinute,
      tokensPerMinute: this.#rates.bucket("tokens")?.limitPerMinute,
      inputTokensPerMinute: this.#rates.bucket("inputTokens")?.limitPerMinute,
      outputTokensPerMinute: this.#rates.bucket("outputTokens")?.limitPerMinute,
    };
  }

  /** Refuses new work, settles waiting work with `SchedulerClosedError`, aborts running attempts. */
  close(reason?: unknown): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      const error = new SchedulerClosedError(undefined, { cause: reason });
      for (const item of this.#liveItems()) this.#cancel(item, error, "closed");
      this.#timers.cancel(this.#wake);
      this.#unsubscribe();
      this.#closing.abort(error);
    }
    return this.onIdle();
  }

  /**
   * Stops admitting while the attempts in flight finish: queued items and items waiting to retry
   * settle at once with AbortedError, later submissions are refused the same way, and an attempt
   * that fails from now on is not retried. Batches stop reading input. Resolves when nothing is in
   * flight; `close()` still aborts what runs.
   */
  drain(reason?: unknown): Promise<void> {
    if (this.#draining === undefined && !this.#closed) {
      const error = aborted(reason);
      this.#draining = error;
      // An attempt still waiting for the gate has sent nothing: it stops like a queued item.
      for (const item of this.#liveItems())
        if (item.state !== RUNNING || item.current?.waitingForGate)
          this.#cancel(item, error, "aborted");
      this.#closing.abort(error);
    }
    return this.onIdle();
  }

  /** Whether `drain()` was called. */
  get draining(): boolean {
    return this.#draining !== undefined;
  }

  /** Resolves when nothing is queued, waiting or in flight. */
  onIdle(): Promise<void> {
    if (this.#pending === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  // Every unsettled item that got past the refusal checks, in an intrusive list (O(1), no
  // allocation): close() needs them wherever they are (queued, running, sleeping).
  #liveHead: Item | undefined = undefined;
  #liveItems(): Item[] {
    const items: Item[] = [];
    for (let item = this.#liveHead; item !== undefined; item = item.liveNext) items.push(item);
    return items;
  }

  #link(item: Item): void {
    const head = this.#liveHead;
    item.liveNext = head;
    if (head !== undefined) head.livePrev = item;
    this.#liveHead = item;
  }

  #unlink(item: Item): void {
    const { livePrev, liveNext } = item;
    if (livePrev === undefined) this.#liveHead = liveNext;
    else livePrev.liveNext = liveNext;
    if (liveNext !== undefined) liveNext.livePrev = livePrev;
    item.livePrev = undefined;
    item.liveNext = undefined;
  }

  // --- admission ---

  #enqueue(item: Item, now: number, first = false): void {
    if (item.state === DONE) return;
    if (!first && this.events.has("queued")) {
      this.#emitQueued(item, now);
      if (item.state === DONE) return; // a listener aborted it or closed the scheduler
    }
    item.state = QUEUED;
    item.enqueuedAt = now;
    const lane = item.lane;
    lane.queue.push(item);
    this.#queued++;
    this.#refreshLane(lane);
    this.#pump();
  }

  #dequeue(item: Item): void {
    const lane = item.lane;
    lane.queue.remove(item);
    this.#queued--;
    this.#refreshLane(lane);
  }

  /** Keeps a lane in the lane heap exactly while it is eligible, at its right place. */
  #refreshLane(lane: Lane<Item>): void {
    const lanes = this.#lanes;
    if (lane.eligible) {
      if (lanes.has(lane)) lanes.update(lane);
      else lanes.push(lane);
    } else if (lanes.has(lane)) {
      lanes.remove(lane);
    }
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#inFlight < this.#limit) {
        const lane = this.#lanes.peek();
        if (lane === undefined) break;
        const item = lane.queue.peek()!;
        const now = this.clock.now();
        if (now < this.#cooldownUntil) {
          this.#wakeAt(this.#cooldownUntil);
          break;
        }
        // Retries waiting on a dry budget while nothing succeeds: the provider is down, and new
        // first attempts wait too (retries that got their turn go ahead of them in the queue).
        if (item.attempts === 0 && this.#budgetWaiting > 0) {
          const held = this.#retry.admissionWaitMs?.(now, this.#budgetWaiting) ?? 0;
          if (held > 0) {
            this.#wakeAt(now + held);
            break;
          }
        }
        const wait = this.#rates.waitMs(item.charge, now);
        if (wait === Number.POSITIVE_INFINITY) {
          // A limit was lowered (learned) below this item's cost since it was queued.
          this.#dequeue(item);
          const tooLarge = this.#rates.tooLarge(item.charge)!;
          this.#fail(item, new RequestTooLargeError(tooLarge), "request-too-large", now);
          continue;
        }
        if (wait > 0) {
          this.#wakeAt(now + wait);
          break;
        }
        // Served before dequeue, so the lane's new place in the round-robin is set once.
        lane.served = ++this.#tick;
        this.#dequeue(item);
        this.#start(item, now);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #wakeAt(at: number): void {
    if (this.#timers.isScheduled(this.#wake) && this.#wake.at <= at) return;
    this.#timers.schedule(this.#wake, at);
  }

  // --- attempts ---

  #start(item: Item, now: number): void {
    if (item.state === DONE) return;
    item.state = RUNNING;
    const number = ++item.attempts;
    const lane = item.lane;
    this.#integrateLoad(now);
    this.#inFlight++;
    if (++lane.inFlight >= lane.cap) this.#refreshLane(lane);
    this.#rates.take(item.charge, now);
    const attempt = new Attempt(this, item, number, now);
    attempt.loadAtStart = this.#load;
    this.#holding.add(attempt);
    item.current = attempt;
    this.#retry.onAttempt(number, now);
    // A task that is not a request says nothing to the controller, at its start as at its end.
    if (item.charge.requests !== 0) this.#controller.onStart({ inFlight: this.#inFlight, now });
    if (this.#gate !== undefined) {
      // It holds its slot but starts only when the gate admits it (see `#awaitGate`).
      attempt.waitingForGate = true;
      attempt.began = false;
      void this.#awaitGate(this.#gate, attempt);
      return;
    }
    this.#begin(attempt, now);
  }

  /**
   * Waits for the shared admission, then starts the attempt: its timeout, `started` event and
   * latency count from the grant. Stopped while it waits (its signal aborts, the gate rejects),
   * it ends like an attempt whose task failed, without having run.
   */
  async #awaitGate(gate: AdmissionGate, attempt: Attempt): Promise<void> {
    const item = attempt.item;
    let pass: GatePass;
    try {
      pass = await gate.admit({
        charge: attempt.charge,
        id: item.id,
        attempt: attempt.attempt,
        signal: attempt.signal,
      });
    } catch (error) {
      attempt.waitingForGate = false;
      this.#ended(attempt, true, undefined, error);
      return;
    }
    attempt.waitingForGate = false;
    attempt.pass = pass;
    const now = this.clock.now();
    if (attempt.decided) {
      this.#ended(attempt, false, undefined, undefined);
      return;
    }
    attempt.startedAt = now;
    this.#integrateLoad(now);
    attempt.loadAtStart = this.#load;
    attempt.began = true;
    this.#begin(attempt, now);
  }

  /** The attempt starts now: its timeout, its `started` event, then its task. */
  #begin(attempt: Attempt, now: number): void {
    const item = attempt.item;
    const lane = item.lane;
    const number = attempt.attempt;
    if (item.timeoutMs !== Number.POSITIVE_INFINITY) {
      item.timeoutTimer ??= new Deadline(this.#onTimeout, item);
      this.#timers.schedule(item.timeoutTimer, now + item.timeoutMs);
    }
    if (this.events.has("started")) {
      this.events.emit("started", {
        at: now,
        inFlight: this.#inFlight,
        queued: this.#queued,
        limit: this.#limit,
        id: item.id,
        index: item.index,
        scope: lane.name,
        attempt: number,
        waitedMs: now - item.enqueuedAt,
      });
      if (attempt.decided) {
        // A listener cancelled it (abort, close): the task does not run; the slot comes back.
        this.#ended(attempt, false, undefined, undefined);
        return;
      }
    }
    // The whole attempt, its continuations included, runs in its own context; by the time
    // anything after the task runs there (events, pumping), the attempt has `ended`.
    void currentAttempt.run(attempt, this.#execute, attempt);
  }

  readonly #execute = (attempt: Attempt) => this.#run(attempt);

  async #run(attempt: Attempt): Promise<void> {
    const item = attempt.item;
    let value: unknown;
    try {
      value = await (item.hasInput
        ? (item.task as (i: unknown, c: Attempt) => unknown)(item.input, attempt)
        : (item.task as (c: Attempt) => unknown)(attempt));
    } catch (error) {
      this.#ended(attempt, true, undefined, error);
      return;
    }
    this.#ended(attempt, false, value, undefined);
  }

  /** The task's promise settled: decide the attempt if nothing else did, then free the slot. */
  #ended(attempt: Attempt, failed: boolean, value: unknown, error: unknown): void {
    attempt.ended = true;
    const item = attempt.item;
    const now = this.clock.now();
    if (item.current === attempt && item.timeoutTimer !== undefined) {
      this.#timers.cancel(item.timeoutTimer);
    }
    if (!attempt.decided) {
      attempt.decided = true;
      if (failed) {
        this.#attemptFailed(attempt, error, now);
      } else {
        if (!attempt.orchestrator) {
          this.#sample(attempt, "success", now, undefined);
          this.#retry.onSuccess?.(now);
        }
        if (item.state !== DONE) {
          item.ok = true;
          item.value = value;
          this.#finish(item, now);
        }
      }
    }
    if (attempt.holdsSlot) this.#releaseSlot(attempt);
    this.#pump();
    this.#maybeIdle();
  }

  #releaseSlot(attempt: Attempt): void {
    attempt.holdsSlot = false;
    const pass = attempt.pass;
    if (pass !== undefined) {
      attempt.pass = undefined;
      pass.end({
        started: attempt.began,
        result: attempt.began ? (attempt.result ?? "cancelled") : "cancelled",
        latencyMs: this.clock.now() - attempt.startedAt,
        reserved: attempt.item.charge,
        charged: attempt.charge,
        usageReported: attempt.reported,
        snapshot: attempt.snapshot,
        retryAfterMs: attempt.retryAfterMs,
      });
    }
    this.#holding.delete(attempt);
    this.#rates.release(attempt.charge);
    this.#integrateLoad(this.clock.now());
    this.#inFlight--;
    const lane = attempt.item.lane;
    const wasCapped = lane.inFlight >= lane.cap;
    lane.inFlight--;
    if (wasCapped && lane.queue.size > 0) this.#refreshLane(lane);
  }

  #timeout(item: Item): void {
    const attempt = item.current;
    if (attempt === undefined || attempt.decided || attempt.ended) return;
    attempt.decided = true;
    const error = new TimeoutError(
      `attempt ${attempt.attempt} of item ${String(item.id)} timed out after ${item.timeoutMs} ms`,
    );
    attempt.abort(error);
    this.#attemptFailed(attempt, error, this.clock.now());
  }

  /**
   * An attempt failed (or timed out): cooldown, controller, then retry or give up. Every event,
   * controller and policy call may settle the item (a listener aborting it or closing the
   * scheduler): after each one, a settled item is left alone.
   */
  #attemptFailed(attempt: Attempt, error: unknown, now: number): void {
    const item = attempt.item;
    item.lastError = error;
    const result: AttemptResult = classifyFailure(error).result;
    let retryAfterMs: number | undefined;
    /** The provider asked for a longer wait than the scheduler allows: no retry, a short pause. */
    let tooLong = false;
    if (error instanceof ProviderError && !attempt.orchestrator) {
      retryAfterMs = error.retryAfterMs;
      tooLong = retryAfterMs !== undefined && retryAfterMs > this.options.maxRetryAfterMs;
      const pauseMs = tooLong ? this.options.cooldownMs : retryAfterMs;
      if (error.rateLimits !== undefined) this.applySnapshot(error.rateLimits, attempt);
      if (result === "rate_limit") {
        if (error.rateLimits === undefined) this.#rates.drain(now);
        if (this.events.has("rate-limited")) {
          this.events.emit("rate-limited", {
            ...this.#counts(now),
            id: item.id,
            index: item.index,
            scope: item.lane.name,
            attempt: attempt.attempt,
            error,
            retryAfterMs,
          });
        }
        this.#pause(pauseMs ?? this.options.cooldownMs, now, attempt.startedAt);
      } else if (result === "overload" && pauseMs !== undefined) {
        this.#pause(pauseMs, now, attempt.startedAt);
      }
    }
    if (!attempt.orchestrator) this.#sample(attempt, result, now, retryAfterMs);
    if (item.state === DONE) return;
    // Draining: an attempt that failed is not tried again; its item ends as stopped, not failed.
    const draining = this.#draining;
    const decision =
      attempt.orchestrator || draining !== undefined
        ? ({ retry: false, reason: "not-retryable" } as const)
        : this.#retry.decide({
            error,
            result,
            attempt: attempt.attempt,
            previousDelayMs: item.previousDelayMs,
            now,
          });
    let retryAt = Number.POSITIVE_INFINITY;
    if (decision.retry) retryAt = now + Math.max(0, decision.delayMs);
    const deadlineAt = item.submittedAt + item.deadlineMs;
    const pastDeadline = decision.retry && !tooLong && retryAt >= deadlineAt;
    if (this.events.has("attempt-failed")) {
      this.events.emit("attempt-failed", {
        ...this.#counts(now),
        id: item.id,
        index: item.index,
        scope: item.lane.name,
        attempt: attempt.attempt,
        error,
        result,
        latencyMs: now - attempt.startedAt,
        willRetry: decision.retry && !pastDeadline && !tooLong,
      });
    }
    if (item.state === DONE) return;
    if (!decision.retry) {
      if (draining !== undefined && !attempt.orchestrator)
        this.#fail(item, aborted(draining.cause), "aborted", now);
      else this.#fail(item, error, decision.reason, now);
      return;
    }
    if (tooLong) {
      // Sleeping that long helps nobody; a rerun later will find the provider back.
      const tooLongError = new RetryAfterTooLongError(
        { retryAfterMs, maxRetryAfterMs: this.options.maxRetryAfterMs },
        { cause: error },
      );
      this.#fail(item, tooLongError, "retry-after-too-long", now);
      return;
    }
    if (pastDeadline) {
      // The retry could only start after the deadline: give up now instead of sleeping.
      this.#fail(item, this.#deadlineError(item, retryAfterMs), "deadline-exceeded", now);
      return;
    }
    const delayMs = retryAt - now;
    item.previousDelayMs = delayMs;
    if (this.events.has("retry-scheduled")) {
      this.events.emit("retry-scheduled", {
        ...this.#counts(now),
        id: item.id,
        index: item.index,
        scope: item.lane.name,
        nextAttempt: attempt.attempt + 1,
        delayMs,
        retryAt,
        retryAfterMs,
        error,
      });
      if (item.state === DONE) return;
    }
    // The retry waits outside the queue, holding nothing, then re-enters admission.
    item.state = SLEEPING;
    item.sleepTimer ??= new Deadline(this.#onBackoffEnd, item);
    if (delayMs <= 0) this.#backoffEnded(item);
    else this.#timers.schedule(item.sleepTimer, retryAt);
  }

  /**
   * A retry's delay ended: it re-enters admission if the retry policy lets it go now; else it
   * sleeps again for as long as the policy says (a dry retry budget), holding nothing.
   */
  #backoffEnded(item: Item): void {
    if (item.state !== SLEEPING) return;
    const now = this.clock.now();
    const wait = this.#retry.retryWaitMs?.(now, item.lastError) ?? 0;
    if (wait > 0) {
      if (!item.budgetWait) {
        item.budgetWait = true;
        this.#budgetWaiting++;
      }
      this.#timers.schedule(item.sleepTimer!, now + wait);
      return;
    }
    if (item.budgetWait) {
      item.budgetWait = false;
      this.#budgetWaiting--;
    }
    this.#enqueue(item, now);
  }

  #sample(attempt: Attempt, result: AttemptResult, now: number, retryAfterMs: number | undefined) {
    attempt.result = result;
    attempt.retryAfterMs = retryAfterMs;
    // A task that is not a request (a pipeline's function task, `cost: {requests: 0}`) says
    // nothing about the provider's capacity: its latency must not teach the controller.
    if (attempt.charge.requests === 0) return;
    this.#integrateLoad(now);
    const latencyMs = now - attempt.startedAt;
    this.#controller.onOutcome({
      result,
      latencyMs,
      outputTokens: attempt.outputTokens,
      retryAfterMs,
      tokens: attempt.charge.tokens,
      inputTokens: attempt.charge.inputTokens,
      inFlight: this.#inFlight,
      meanInFlight: latencyMs > 0 ? (this.#load - attempt.loadAtStart) / latencyMs : this.#inFlight,
      now,
    });
  }

  /** Adds the attempts in flight since the last change to the load integral. */
  #integrateLoad(now: number): void {
    if (now > this.#loadAt) {
      this.#load += this.#inFlight * (now - this.#loadAt);
      this.#loadAt = now;
    }
  }

  /**
   * Pauses admission for the key: once per burst of rate-limit answers, never once per answer.
   * A failure from an attempt that started before the current pause began (`startedAt <=
   * #cooldownStart`) belongs to that pause's burst: it was sent before the pause could stop it.
   * It only lengthens the pause to its own wait counted from when the pause began (the max of the
   * burst's waits, never their sum), with the jitter drawn once when the pause began. A failure
   * from an attempt started later (after the pause ended) begins a new pause.
   */
  #pause(durationMs: number, now: number, startedAt: number): void {
    let from = now;
    if (startedAt <= this.#cooldownStart) {
      from = this.#cooldownStart;
    } else {
      this.#cooldownStart = now;
      this.#cooldownFactor = 1 + this.options.random() * this.options.cooldownJitter;
    }
    const until = from + durationMs * this.#cooldownFactor;
    if (until <= this.#cooldownUntil) return;
    this.#cooldownUntil = until;
    if (this.events.has("cooldown")) {
      this.events.emit("cooldown", { ...this.#counts(now), until, durationMs: until - now });
    }
  }

  #deadline(item: Item): void {
    // An attempt the provider has answered is not stopped at once: its answer is being written
    // down (the audit record, `keep`'s journal line) and is kept, so the item settles with it.
    // Were it failed here, the events would say failed while the run's output kept the answer,
    // and its cost would go uncounted. The writing gets a grace (the attempt's timeout, at most
    // the deadline again), so a write that hangs still ends the item; a retry the attempt then
    // needs is refused as past the deadline. An orchestrator's own work is not an answer.
    const attempt = item.current;
    if (
      !item.deadlineGrace &&
      item.state === RUNNING &&
      attempt !== undefined &&
      attempt.answeredAt !== undefined &&
      !attempt.decided &&
      !attempt.orchestrator &&
      item.deadlineTimer !== undefined
    ) {
      item.deadlineGrace = true;
      const graceMs = Math.min(item.timeoutMs, item.deadlineMs);
      this.#timers.schedule(item.deadlineTimer, this.clock.now() + graceMs);
      return;
    }
    this.#cancel(item, this.#deadlineError(item), "deadline-exceeded");
  }

  /** The item's deadline error; `retryAfterMs`: the provider's hint that would have passed it. */
  #deadlineError(item: Item, retryAfterMs?: number): DeadlineExceededError {
    const hint =
      retryAfterMs === undefined
        ? ""
        : ` (the provider asked to wait ${Math.ceil(retryAfterMs / 1000)} s before a retry, past it)`;
    return new DeadlineExceededError(
      `item ${String(item.id)} exceeded its deadline of ${item.deadlineMs} ms${hint}`,
      { deadlineMs: item.deadlineMs },
      { cause: item.lastError },
    );
  }

  /** Stops an unsettled item wherever it is and fails it. A running attempt is aborted. */
  #cancel(item: Item, error: unknown, reason: FailureReason): void {
    const now = this.clock.now();
    switch (item.state) {
      case QUEUED:
        this.#dequeue(item);
        break;
      case SLEEPING:
        this.#timers.cancel(item.sleepTimer!);
        if (item.budgetWait) {
          item.budgetWait = false;
          this.#budgetWaiting--;
        }
        break;
      case RUNNING: {
        const attempt = item.current!;
        if (!attempt.decided) {
          attempt.decided = true;
          if (item.timeoutTimer !== undefined) this.#timers.cancel(item.timeoutTimer);
          attempt.abort(error);
          if (!attempt.orchestrator) this.#sample(attempt, "cancelled", now, undefined);
        }
        break;
      }
      case NEW:
        break;
      case DONE:
        return;
    }
    this.#fail(item, error, reason, now);
    this.#pump();
  }

  // --- settlement ---

  #fail(item: Item, error: unknown, reason: FailureReason, now: number): void {
    if (item.state === DONE) return;
    item.ok = false;
    item.error = error;
    item.reason = reason;
    this.#finish(item, now);
  }

  #finish(item: Item, now: number): void {
    if (item.state === DONE) return;
    if (item.state !== NEW) this.#unlink(item);
    item.state = DONE;
    item.settledAt = now;
    this.#pending--;
    if (item.deadlineTimer !== undefined) this.#timers.cancel(item.deadlineTimer);
    if (item.signal !== undefined) this.#unwatch(item.signal, item);
    if (item.ok) {
      if (this.events.has("succeeded")) {
        this.events.emit("succeeded", {
          ...this.#counts(now),
          id: item.id,
          index: item.index,
          scope: item.lane.name,
          attempts: item.attempts,
          latencyMs: now - item.submittedAt,
          value: item.value,
        });
      }
    } else if (this.events.has("failed")) {
      this.events.emit("failed", {
        ...this.#counts(now),
        id: item.id,
        index: item.index,
        scope: item.lane.name,
        attempts: item.attempts,
        latencyMs: now - item.submittedAt,
        error: item.error,
        reason: item.reason!,
      });
    }
    const sink = item.sink;
    if (sink !== undefined) sink.settled(item);
    else if (item.ok) item.resolve!(item.value);
    else item.reject!(item.error);
    this.#maybeIdle();
  }

  #maybeIdle(): void {
    if (this.#idle || this.#pending !== 0 || this.#inFlight !== 0) return;
    this.#idle = true;
    if (this.#releaseKeepAlive !== undefined) {
      this.#releaseKeepAlive();
      this.#releaseKeepAlive = undefined;
    }
    if (this.#timers.isScheduled(this.#wake)) this.#timers.cancel(this.#wake);
    if (this.events.has("idle")) this.events.emit("idle", this.#counts(this.clock.now()));
    const waiters = this.#idleWaiters;
    if (waiters.length > 0) {
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  #holdProcess(): void {
    if (this.#releaseKeepAlive === undefined && this.clock.keepAlive !== undefined) {
      this.#releaseKeepAlive = this.clock.keepAlive();
    }
  }

  #limitChanged(limit: number): void {
    const previous = this.#limit;
    const next = effectiveLimit(limit);
    if (next === previous) return;
    this.#limit = next;
    if (this.events.has("limit-changed")) {
      this.events.emit("limit-changed", { ...this.#counts(this.clock.now()), previous });
    }
    if (next > previous) this.#pump();
  }

  #emitQueued(item: Item, now: number): void {
    this.events.emit("queued", {
      at: now,
      inFlight: this.#inFlight,
      queued: this.#queued,
      limit: this.#limit,
      id: item.id,
      index: item.index,
      scope: item.lane.name,
      attempt: item.attempts + 1,
      priority: item.priority,
    });
  }

  #counts(now: number): { at: number; inFlight: number; queued: number; limit: number } {
    return { at: now, inFlight: this.#inFlight, queued: this.#queued, limit: this.#limit };
  }
}

function effectiveLimit(limit: number): number {
  return Math.max(1, Math.floor(limit));
}

function aborted(reason: unknown): AbortedError {
  return new AbortedError(
    reason instanceof Error ? `aborted: ${reason.message}` : "the operation was aborted",
    { cause: reason },
  );
}

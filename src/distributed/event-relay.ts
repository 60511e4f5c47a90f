// Progress and the summary of a distributed batch cover every worker: each worker relays its
// client's scheduler events (compactly, batched every quarter second) and its shared-admission
// figures into the batch's events stream; the coordinator replays them as one scheduler's events,
// so the same RunMetrics, progress displays and summary serve a batch run by one process or by
// fifty. Times are translated to the coordinator's clock by each batch's send time (the
// machines' clocks need not agree), and counts (in flight, queued) are summed over live workers.
import type { Redis } from "ioredis";
import type { Clock } from "../core/clock.ts";
import { Emitter } from "../core/emitter.ts";
import {
  type Counts,
  SCHEDULER_EVENT_NAMES,
  type SchedulerEventName,
  type SchedulerEvents,
} from "../core/events.ts";
import type { FailureReason } from "../core/outcome.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { SalvoResult } from "../salvo.ts";
import type { SharedAdmissionStats } from "./shared-admission.ts";

/** One scheduler event as relayed: the event, the worker's wall time, and what metrics read. */
export type RelayedEvent = {
  e: SchedulerEventName;
  /** Worker wall-clock time, ms. */
  t: number;
  /** The line's index (the worker's item id). */
  i?: number | undefined;
  /** attempt (queued, started, attempt-failed, rate-limited), attempts (terminal), nextAttempt. */
  a?: number | undefined;
  /** latencyMs. */
  l?: number | undefined;
  /** attempt-failed: its result; failed: its reason. */
  r?: string | undefined;
  /** attempt-failed: willRetry. */
  w?: boolean | undefined;
  /** The error's code and HTTP status. */
  c?: string | undefined;
  s?: number | undefined;
  /** retry-scheduled: delayMs; cooldown: ms from t until it ends. */
  d?: number | undefined;
  /** retryAfterMs. */
  ra?: number | undefined;
  /** succeeded: usage [input, output] and cost in USD. */
  u?: [number, number] | undefined;
  usd?: number | undefined;
  /** limit-changed: the previous limit. */
  p?: number | undefined;
  /** The worker's counts: limit, in flight, queued. */
  lim: number;
  inf: number;
  q: number;
};

/** The last admission figures of one worker (a stats entry). */
export type WorkerFigures = SharedAdmissionStats & { unavailableMs: number };

/** Stops terminal events of items that were stopped (a worker shutting down), not finished. */
const STOPPED: ReadonlySet<string> = new Set<FailureReason>(["aborted", "closed"]);

function errorFields(error: unknown): { c?: string; s?: number } {
  const e = error as { code?: unknown; status?: unknown } | undefined;
  return {
    ...(typeof e?.code === "string" ? { c: e.code } : {}),
    ...(typeof e?.status === "number" ? { s: e.status } : {}),
  };
}

/**
 * Worker side: buffers a batch client's scheduler events and writes them to the events stream,
 * with this worker's admission figures (`figures`), every `intervalMs`.
 */
export class EventRelay {
  readonly #redis: Redis;
  readonly #stream: string;
  readonly #worker: string;
  readonly #figures: () => WorkerFigures | undefined;
  readonly #buffer: RelayedEvent[] = [];
  readonly #offs: Array<() => void> = [];
  readonly #timer: ReturnType<typeof setInterval>;
  #flushing: Promise<void> = Promise.resolve();
  #lastFigures = "";

  constructor(options: {
    redis: Redis;
    stream: string;
    worker: string;
    scheduler: Scheduler;
    figures: () => WorkerFigures | undefined;
    intervalMs?: number | undefined;
  }) {
    this.#redis = options.redis;
    this.#stream = options.stream;
    this.#worker = options.worker;
    this.#figures = options.figures;
    const scheduler = options.scheduler;
    for (const name of SCHEDULER_EVENT_NAMES) {
      if (name === "idle") continue;
      this.#offs.push(
        scheduler.on(name, (payload) =>
          this.#record(name, payload as SchedulerEvents[typeof name]),
        ),
      );
    }
    this.#timer = setInterval(() => void this.flush(), options.intervalMs ?? 250);
    this.#timer.unref();
  }

  #record<K extends SchedulerEventName>(name: K, payload: SchedulerEvents[K]): void {
    const p = payload as Counts & Record<string, unknown>;
    const event: RelayedEvent = {
      e: name,
      t: Date.now(),
      lim: p.limit,
      inf: p.inFlight,
      q: p.queued,
    };
    if (typeof p.index === "number") event.i = typeof p.id === "number" ? p.id : p.index;
    switch (name) {
      case "queued":
      case "started":
        event.a = p.attempt as number;
        break;
      case "attempt-failed":
        Object.assign(event, errorFields(p.error), {
          a: p.attempt,
          l: p.latencyMs,
          r: p.result,
          w: p.willRetry,
        });
        break;
      case "retry-scheduled":
        Object.assign(event, errorFields(p.error), { a: p.nextAttempt, d: p.delayMs });
        break;
      case "rate-limited":
        Object.assign(event, errorFields(p.error), { a: p.attempt, ra: p.retryAfterMs });
        break;
      case "cooldown":
        event.d = (p.until as number) - (p.at as number);
        break;
      case "succeeded": {
        const value = p.value as SalvoResult;
        event.a = p.attempts as number;
        event.l = p.latencyMs as number;
        event.s = value.status;
        if (value.usage) event.u = [value.usage.inputTokens, value.usage.outputTokens];
        if (value.cost?.usd !== undefined) event.usd = value.cost.usd;
        break;
      }
      case "failed":
        if (STOPPED.has(p.reason as string)) return;
        Object.assign(event, errorFields(p.error), { a: p.attempts, l: p.latencyMs, r: p.reason });
        break;
      case "limit-changed":
        event.p = p.previous as number;
        break;
    }
    this.#buffer.push(event);
    if (this.#buffer.length >= 500) void this.flush();
  }

  /** Writes what is buffered (and the figures, if they changed); resolves once it is in Redis. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      const events = this.#buffer.splice(0);
      const figures = this.#figures();
      const text = figures === undefined ? "" : JSON.stringify(figures);
      const sendFigures = text !== "" && text !== this.#lastFigures;
      if (events.length === 0 && !sendFigures) return;
      const sent = String(Date.now());
      const pipeline = this.#redis.pipeline();
      if (events.length > 0)
        pipeline.xadd(
          this.#stream,
          "MAXLEN",
          "~",
          "1000000",
          "*",
          "k",
          "m",
          "w",
          this.#worker,
          "s",
          sent,
          "e",
          JSON.stringify(events),
        );
      if (sendFigures) {
        pipeline.xadd(
          this.#stream,
          "MAXLEN",
          "~",
          "1000000",
          "*",
          "k",
          "a",
          "w",
          this.#worker,
          "x",
          text,
        );
        this.#lastFigures = text;
      }
      await pipeline.exec();
    });
    return this.#flushing.catch(() => {});
  }

  /** Stops listening and writes the rest. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const off of this.#offs) off();
    await this.flush();
  }
}

/**
 * Coordinator side: replays the workers' events as one scheduler's (`events`, for RunMetrics and
 * progress), keeps their latest admission figures, and counts the items each line settled with
 * (a line run twice, after its worker was lost, is counted once).
 */
export class RelayedEvents {
  readonly events = new Emitter<SchedulerEvents>(() => {});
  readonly #clock: Clock;
  /** Per worker: attempts started and not ended, last queued count, last heard. */
  readonly #workers = new Map<string, { open: number; queued: number; heard: number }>();
  readonly #figures = new Map<string, WorkerFigures>();
  readonly #settled = new Set<number>();
  #limit = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Workers heard from so far (ids: host:pid:random). */
  get workers(): string[] {
    return [...this.#workers.keys()];
  }

  /** Every worker's latest admission figures. */
  figures(): WorkerFigures[] {
    return [...this.#figures.values()];
  }

  /** One stream entry's fields (flat [name, value, ...]). */
  entry(fields: string[]): void {
    const get = (name: string) => {
      for (let k = 0; k + 1 < fields.length; k += 2) if (fields[k] === name) return fields[k + 1];
      return undefined;
    };
    const kind = get("k");
    const worker = get("w") ?? "?";
    if (kind === "a") {
      try {
        this.#figures.set(worker, JSON.parse(get("x") ?? "{}") as WorkerFigures);
      } catch {
        // A torn figure entry: the next one replaces it.
      }
      return;
    }
    if (kind !== "m") return;
    let events: RelayedEvent[];
    try {
      events = JSON.parse(get("e") ?? "[]") as RelayedEvent[];
    } catch {
      return;
    }
    const sent = Number(get("s"));
    const now = this.#clock.now();
    for (const event of events) this.#replay(worker, event, now - Math.max(0, sent - event.t));
  }

  #replay(worker: string, r: RelayedEvent, at: number): void {
    let state = this.#workers.get(worker);
    if (state === undefined) {
      state = { open: 0, queued: 0, heard: at };
      this.#workers.set(worker, state);
    }
    state.heard = Math.max(state.heard, at);
    state.queued = r.q;
    this.#limit = r.lim;
    const index = r.i ?? 0;
    const error = r.c === undefined ? undefined : { code: r.c, status: r.s, message: r.c };
    const ref = { id: index, index, scope: undefined };
    if (r.e === "started") state.open++;
    else if (r.e === "attempt-failed" || r.e === "succeeded")
      state.open = Math.max(0, state.open - 1);
    const counts = (): Counts => ({ at, ...this.#counts(at) });
    const emit = this.events;
    switch (r.e) {
      case "queued":
        emit.emit("queued", { ...counts(), ...ref, attempt: r.a ?? 1, priority: 0 });
        break;
      case "started":
        emit.emit("started", { ...counts(), ...ref, attempt: r.a ?? 1, waitedMs: 0 });
        break;
      case "attempt-failed":
        emit.emit("attempt-failed", {
          ...counts(),
          ...ref,
          attempt: r.a ?? 1,
          error,
          result: (r.r ?? "server") as SchedulerEvents["attempt-failed"]["result"],
          latencyMs: r.l ?? 0,
          willRetry: r.w ?? false,
        });
        break;
      case "retry-scheduled":
        emit.emit("retry-scheduled", {
          ...counts(),
          ...ref,
          nextAttempt: r.a ?? 2,
          delayMs: r.d ?? 0,
          error,
        });
        break;
      case "rate-limited":
        emit.emit("rate-limited", {
          ...counts(),
          ...ref,
          attempt: r.a ?? 1,
          error,
          retryAfterMs: r.ra,
        });
        break;
      case "cooldown": {
        const durationMs = r.d ?? 0;
        emit.emit("cooldown", { ...counts(), until: at + durationMs, durationMs });
        break;
      }
      case "succeeded": {
        if (this.#settled.has(index)) return;
        this.#settled.add(index);
        const value = {
          status: r.s ?? 200,
          usage: r.u === undefined ? undefined : { inputTokens: r.u[0], outputTokens: r.u[1] },
          cost: r.usd === undefined ? undefined : { usd: r.usd },
        };
        emit.emit("succeeded", {
          ...counts(),
          ...ref,
          attempts: r.a ?? 1,
          latencyMs: r.l ?? 0,
          value,
        });
        break;
      }
      case "failed":
        if (this.#settled.has(index)) return;
        this.#settled.add(index);
        emit.emit("failed", {
          ...counts(),
          ...ref,
          attempts: r.a ?? 1,
          latencyMs: r.l ?? 0,
          error,
          reason: (r.r ?? "not-retryable") as FailureReason,
        });
        break;
      case "limit-changed":
        emit.emit("limit-changed", { ...counts(), previous: r.p ?? r.lim });
        break;
    }
  }

  /** The counts over the workers heard from in the last five seconds. */
  #counts(at: number): { inFlight: number; queued: number; limit: number } {
    let inFlight = 0;
    let queued = 0;
    for (const state of this.#workers.values()) {
      if (at - state.heard > 5_000) continue;
      inFlight += state.open;
      queued += state.queued;
    }
    return { inFlight, queued, limit: this.#limit };
  }
}

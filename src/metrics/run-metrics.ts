// A run's counters and latency histograms, built only from the scheduler's events (it never
// calls into the scheduler). Progress renderers read `snapshot()`; the end-of-run summary and
// `--report` read `summary()`.
import type { Counts, SchedulerEvents } from "../core/events.ts";
import type { ItemId } from "../core/outcome.ts";
import {
  type LatencySummary,
  latencyHistogram,
  recordMs,
  summariseLatency,
} from "./latency-histogram.ts";
import { type Bound, physicalBound } from "./physical-bound.ts";
import { RateWindow } from "./rate-window.ts";

/** Something with the scheduler's `on(event, listener)`. */
export type EventSource = {
  on<K extends keyof SchedulerEvents>(
    event: K,
    listener: (payload: SchedulerEvents[K]) => void,
  ): () => void;
};

export type RunMetricsOptions = {
  /** The clock time the run started, ms (the scheduler's clock). */
  startedAt: number;
  /** Items expected in all, for progress and ETA; may be raised later with `setTotal`. */
  total?: number | undefined;
  /** Tokens of a succeeded item's value. */
  usageOf?:
    | ((value: unknown) => { inputTokens: number; outputTokens: number } | undefined)
    | undefined;
  /** The HTTP status of an outcome's value or error, for counts by status. */
  statusOf?: ((valueOrError: unknown) => number | undefined) | undefined;
  /** The limits set, for the physical bound M*. */
  limits?: {
    concurrency?: number | undefined;
    requestsPerMinute?: number | undefined;
    tokensPerMinute?: number | undefined;
    burstSeconds?: number | undefined;
  };
  /** Tokens charged per call against TPM, if known (OpenAI: prompt + max_tokens). */
  chargedTokensOf?: ((value: unknown) => number | undefined) | undefined;
  /** What a succeeded item's call cost, USD; undefined when its price is unknown. */
  costOf?: ((value: unknown) => number | undefined) | undefined;
};

/**
 * An item that ended without the scheduler (see `RunMetrics.settledOutside`): answered from the
 * response cache, shared with an identical call in flight, or refused before admission (budget).
 */
export type OutsideOutcome =
  | { ok: true; source: "cache" | "shared"; status?: number | undefined }
  /** Answered by the provider's batch API: its tokens and its cost (at the batch price) count. */
  | {
      ok: true;
      source: "batch";
      status?: number | undefined;
      usage?: { inputTokens: number; outputTokens: number } | undefined;
      /** USD; undefined when the model's price is unknown. */
      costUsd?: number | undefined;
    }
  | { ok: false; error: unknown };

/** What a progress display shows at one moment. */
export type RunSnapshot = {
  elapsedMs: number;
  total: number | undefined;
  succeeded: number;
  failed: number;
  /** Items that ended before this run (resumed) — counted as done. */
  skipped: number;
  inFlight: number;
  queued: number;
  limit: number;
  retries: number;
  rateLimited: number;
  requestsPerMinute: number;
  tokensPerMinute: number;
  /** Whether admission is paused by a cooldown now. */
  paused: boolean;
  /** Estimated time to finish, ms, from the recent completion rate; undefined if unknown. */
  etaMs: number | undefined;
};

export type { LatencySummary };

export type RunSummary = {
  total: number | undefined;
  succeeded: number;
  failed: number;
  skipped: number;
  /** Failed items by error code. */
  failedByCode: Record<string, number>;
  /** Final outcomes by HTTP status (`none` when there was no answer). */
  byStatus: Record<string, number>;
  attempts: number;
  retries: number;
  rateLimited: number;
  /** Time admission was paused by cooldowns (union of the pauses), ms. */
  pausedMs: number;
  tokens: { input: number; output: number };
  /** Items answered from the response cache, and shared with an identical call: no call each. */
  cached: number;
  shared: number;
  /** Items answered by the provider's batch API (`--backend batch|auto`): no real-time call. */
  batched: number;
  /** What the calls cost, USD, over the calls with a known price; `unpriced` calls are not in it. */
  cost: { usd: number; unpriced: number };
  /** Latency of the successful attempts (the call itself), ms. */
  latencyMs: LatencySummary;
  /** From submission to outcome (queueing and retries included), ms. */
  itemLatencyMs: LatencySummary;
  makespanMs: number;
  /** Succeeded items per second over the makespan. */
  throughputPerSecond: number;
  /** The concurrency limit over the run (it moves under `--concurrency auto`). */
  limit: { initial: number; final: number; min: number; max: number };
  /** When the limit changed: [clock ms since the start, new limit], at most ~1,000 points. */
  limitTimeline: Array<[number, number]>;
  /** The physical lower bound for this work under the limits set, and the run's ratio to it. */
  bound: Bound | undefined;
  ratioToBound: number | undefined;
};

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : "UNKNOWN";
}

export class RunMetrics {
  readonly #options: RunMetricsOptions;
  #total: number | undefined;
  #succeeded = 0;
  #failed = 0;
  #skipped = 0;
  #attempts = 0;
  #retries = 0;
  #rateLimited = 0;
  #inputTokens = 0;
  #outputTokens = 0;
  #chargedTokens = 0;
  #outsideSucceeded = 0;
  #outsideFailed = 0;
  #cached = 0;
  #shared = 0;
  #batched = 0;
  #costUsd = 0;
  #unpriced = 0;
  #latencySumMs = 0;
  #latencyMinMs = Number.POSITIVE_INFINITY;
  #latencyMaxMs = 0;
  #pausedMs = 0;
  #pauseEnd = Number.NEGATIVE_INFINITY;
  #last: Counts = { at: 0, inFlight: 0, queued: 0, limit: 0 };
  readonly #startedAt: number;
  readonly #failedByCode: Record<string, number> = {};
  readonly #byStatus: Record<string, number> = {};
  readonly #started = new Map<ItemId, number>();
  readonly #latency = latencyHistogram();
  readonly #itemLatency = latencyHistogram();
  readonly #requests = new RateWindow();
  readonly #tokens = new RateWindow();
  readonly #completions = new RateWindow(30);
  readonly #limitTimeline: Array<[number, number]> = [];
  #limitMin = Number.POSITIVE_INFINITY;
  #limitMax = 0;

  constructor(options: RunMetricsOptions) {
    this.#options = options;
    this.#total = options.total;
    this.#startedAt = options.startedAt;
  }

  /** Subscribes to a scheduler's events; returns a function that unsubscribes. */
  attach(source: EventSource): () => void {
    const offs = [
      source.on("started", (e) => {
        this.#attempts++;
        this.#started.set(e.id, e.at);
        this.#requests.record(e.at);
        this.#counts(e);
      }),
      source.on("attempt-failed", (e) => {
        this.#started.delete(e.id);
        this.#counts(e);
      }),
      source.on("retry-scheduled", (e) => {
        this.#retries++;
        this.#counts(e);
      }),
      source.on("rate-limited", (e) => {
        this.#rateLimited++;
        this.#counts(e);
      }),
      source.on("cooldown", (e) => {
        const start = Math.max(e.at, this.#pauseEnd);
        if (e.until > start) this.#pausedMs += e.until - start;
        this.#pauseEnd = Math.max(this.#pauseEnd, e.until);
        this.#counts(e);
      }),
      source.on("succeeded", (e) => this.#succeededEvent(e)),
      source.on("failed", (e) => {
        this.#failed++;
        this.#started.delete(e.id);
        const code = errorCode(e.error);
        this.#failedByCode[code] = (this.#failedByCode[code] ?? 0) + 1;
        this.#status(this.#options.statusOf?.(e.error));
        recordMs(this.#itemLatency, e.latencyMs);
        this.#completions.record(e.at);
        this.#counts(e);
      }),
      source.on("limit-changed", (e) => {
        this.#limitPoint(e.at, e.limit);
        this.#counts(e);
      }),
      source.on("queued", (e) => this.#counts(e)),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /**
   * An item that ended without reaching the scheduler (no events): a cache hit, a shared answer,
   * or a refusal before admission. Counted as succeeded or failed, and in `cached`/`shared`.
   */
  settledOutside(outcome: OutsideOutcome): void {
    if (outcome.ok) {
      this.#outsideSucceeded++;
      if (outcome.source === "cache") this.#cached++;
      else if (outcome.source === "shared") this.#shared++;
      if (outcome.source === "batch") {
        this.#batched++;
        if (outcome.usage) {
          this.#inputTokens += outcome.usage.inputTokens;
          this.#outputTokens += outcome.usage.outputTokens;
        }
        if (outcome.costUsd === undefined) this.#unpriced++;
        else this.#costUsd += outcome.costUsd;
      }
      this.#status(outcome.status);
      return;
    }
    this.#outsideFailed++;
    const code = errorCode(outcome.error);
    this.#failedByCode[code] = (this.#failedByCode[code] ?? 0) + 1;
    this.#status(undefined);
  }

  /** Items that ended in an earlier run (resumed), counted as done without events. */
  addSkipped(count: number): void {
    this.#skipped += count;
  }

  setTotal(total: number): void {
    this.#total = total;
  }

  #succeededEvent(e: SchedulerEvents["succeeded"]): void {
    this.#succeeded++;
    const startedAt = this.#started.get(e.id);
    this.#started.delete(e.id);
    if (startedAt !== undefined) {
      const ms = e.at - startedAt;
      recordMs(this.#latency, ms);
      this.#latencySumMs += ms;
      if (ms < this.#latencyMinMs) this.#latencyMinMs = ms;
      if (ms > this.#latencyMaxMs) this.#latencyMaxMs = ms;
    }
    recordMs(this.#itemLatency, e.latencyMs);
    const usage = this.#options.usageOf?.(e.value);
    if (usage) {
      this.#inputTokens += usage.inputTokens;
      this.#outputTokens += usage.outputTokens;
      this.#tokens.record(e.at, usage.inputTokens + usage.outputTokens);
    }
    this.#chargedTokens += this.#options.chargedTokensOf?.(e.value) ?? 0;
    if (this.#options.costOf) {
      const usd = this.#options.costOf(e.value);
      if (usd === undefined) this.#unpriced++;
      else this.#costUsd += usd;
    }
    this.#status(this.#options.statusOf?.(e.value));
    this.#completions.record(e.at);
    this.#counts(e);
  }

  #status(status: number | undefined): void {
    const key = status === undefined ? "none" : String(status);
    this.#byStatus[key] = (this.#byStatus[key] ?? 0) + 1;
  }

  /**
   * Keeps the limit's timeline bounded: a change within 100 ms of the last kept point replaces
   * it, and past 1,000 points every other point is dropped.
   */
  #limitPoint(at: number, limit: number): void {
    if (limit < this.#limitMin) this.#limitMin = limit;
    if (limit > this.#limitMax) this.#limitMax = limit;
    const t = at - this.#startedAt;
    const last = this.#limitTimeline[this.#limitTimeline.length - 1];
    if (last !== undefined && t - last[0] < 100 && this.#limitTimeline.length > 1) {
      last[1] = limit;
      return;
    }
    this.#limitTimeline.push([t, limit]);
    if (this.#limitTimeline.length > 1000) {
      const kept = this.#limitTimeline.filter((_, i) => i % 2 === 0);
      this.#limitTimeline.length = 0;
      this.#limitTimeline.push(...kept);
    }
  }

  #counts(counts: Counts): void {
    if (this.#limitTimeline.length === 0) this.#limitPoint(counts.at, counts.limit);
    this.#last = counts;
  }

  snapshot(nowMs: number): RunSnapshot {
    const elapsedMs = Math.max(0, nowMs - this.#startedAt);
    const done =
      this.#succeeded + this.#failed + this.#outsideSucceeded + this.#outsideFailed + this.#skipped;
    let etaMs: number | undefined;
    const perMinute = this.#completions.perMinute(nowMs, elapsedMs);
    if (this.#total !== undefined && perMinute > 0) {
      etaMs = (Math.max(0, this.#total - done) / perMinute) * 60_000;
    }
    return {
      elapsedMs,
      total: this.#total,
      succeeded: this.#succeeded + this.#outsideSucceeded,
      failed: this.#failed + this.#outsideFailed,
      skipped: this.#skipped,
      inFlight: this.#last.inFlight,
      queued: this.#last.queued,
      limit: this.#last.limit,
      retries: this.#retries,
      rateLimited: this.#rateLimited,
      requestsPerMinute: this.#requests.perMinute(nowMs, elapsedMs),
      tokensPerMinute: this.#tokens.perMinute(nowMs, elapsedMs),
      paused: nowMs < this.#pauseEnd,
      etaMs,
    };
  }

  /** The run's summary; `endedAt` is the clock time it ended, ms. */
  summary(endedAt: number): RunSummary {
    const makespanMs = Math.max(0, endedAt - this.#startedAt);
    const limits = this.#options.limits ?? {};
    const bound =
      this.#succeeded > 0
        ? physicalBound({
            calls: this.#succeeded,
            latencySumMs: this.#latencySumMs,
            latencyMinMs: this.#latencyMinMs,
            latencyMaxMs: this.#latencyMaxMs,
            concurrency: limits.concurrency,
            requestsPerMinute: limits.requestsPerMinute,
            tokensPerMinute: limits.tokensPerMinute,
            tokensCharged: this.#chargedTokens || this.#inputTokens + this.#outputTokens,
            burstSeconds: limits.burstSeconds,
          })
        : undefined;
    return {
      total: this.#total,
      succeeded: this.#succeeded + this.#outsideSucceeded,
      failed: this.#failed + this.#outsideFailed,
      skipped: this.#skipped,
      failedByCode: { ...this.#failedByCode },
      byStatus: { ...this.#byStatus },
      attempts: this.#attempts,
      retries: this.#retries,
      rateLimited: this.#rateLimited,
      pausedMs: this.#pausedMs,
      tokens: { input: this.#inputTokens, output: this.#outputTokens },
      cached: this.#cached,
      shared: this.#shared,
      batched: this.#batched,
      cost: { usd: this.#costUsd, unpriced: this.#unpriced },
      latencyMs: summariseLatency(this.#latency),
      itemLatencyMs: summariseLatency(this.#itemLatency),
      makespanMs,
      throughputPerSecond:
        makespanMs > 0 ? ((this.#succeeded + this.#outsideSucceeded) * 1000) / makespanMs : 0,
      limit: {
        initial: this.#limitTimeline[0]?.[1] ?? this.#last.limit,
        final: this.#last.limit,
        min: Number.isFinite(this.#limitMin) ? this.#limitMin : this.#last.limit,
        max: this.#limitMax || this.#last.limit,
      },
      limitTimeline: this.#limitTimeline.map(([t, l]) => [t, l] as [number, number]),
      bound,
      ratioToBound: bound && bound.boundMs > 0 ? makespanMs / bound.boundMs : undefined,
    };
  }
}

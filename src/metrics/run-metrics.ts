// A run's counters and latency histograms, built only from the scheduler's events (it never
// calls into the scheduler). Progress renderers read `snapshot()`; the end-of-run summary and
// `--report` read `summary()`.
import type { RateLimitsInForce } from "../core/concurrency/concurrency-controller.ts";
import type { Counts, SchedulerEvents } from "../core/events.ts";
import type { FailureReason, ItemId } from "../core/outcome.ts";
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
    inputTokensPerMinute?: number | undefined;
    outputTokensPerMinute?: number | undefined;
    burstSeconds?: number | undefined;
  };
  /**
   * The rate limits in force at the end of the run, set or learned from the provider's headers
   * (see `rateLimitsInForce`): M* uses them, so a run that learned its limits is compared with
   * them. @default only the limits set
   */
  limitsInForce?: (() => RateLimitsInForce) | undefined;
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
  | {
      ok: false;
      error: unknown;
      /** It was stopped (an interrupt), not failed; also read from a SALVO_ABORTED/CLOSED code. */
      stopped?: boolean | undefined;
    };

/** Something with the scheduler's `bucket(dimension)` (a `Scheduler`). */
export type BucketSource = {
  bucket(
    dimension: "requests" | "tokens" | "inputTokens" | "outputTokens",
  ): { limitPerMinute: number } | undefined;
};

/** The rate limits a scheduler enforces now: those set, as lowered or learned from headers. */
export function rateLimitsInForce(scheduler: BucketSource): RateLimitsInForce {
  return {
    requestsPerMinute: scheduler.bucket("requests")?.limitPerMinute,
    tokensPerMinute: scheduler.bucket("tokens")?.limitPerMinute,
    inputTokensPerMinute: scheduler.bucket("inputTokens")?.limitPerMinute,
    outputTokensPerMinute: scheduler.bucket("outputTokens")?.limitPerMinute,
  };
}

/**
 * A limit M* was computed with, and where it came from: `set` (an option), `learned` (none was
 * set; the provider's rate-limit headers gave it), `lowered` (the headers gave less than `set`).
 */
export type LimitInForce = {
  value: number;
  source: "set" | "learned" | "lowered";
  /** The value set, when it was lowered. */
  set?: number | undefined;
};

export type BoundLimits = {
  concurrency?: LimitInForce | undefined;
  requestsPerMinute?: LimitInForce | undefined;
  tokensPerMinute?: LimitInForce | undefined;
  inputTokensPerMinute?: LimitInForce | undefined;
  outputTokensPerMinute?: LimitInForce | undefined;
};

/** Reasons an item ends without having run to the end: an interrupt or abort, or close. */
const STOP_REASONS: ReadonlySet<FailureReason> = new Set(["aborted", "closed"]);
const STOP_CODES: ReadonlySet<string> = new Set(["SALVO_ABORTED", "SALVO_CLOSED"]);

/** What a progress display shows at one moment. */
export type RunSnapshot = {
  elapsedMs: number;
  total: number | undefined;
  /** Items seen so far (submitted to the scheduler, answered without it, or resumed). */
  submitted: number;
  succeeded: number;
  /** Items that failed (not those stopped). */
  failed: number;
  /**
   * Items stopped before they ended (an interrupt, an abort, close): not failures, not done; a
   * resumed run runs them.
   */
  stopped: number;
  /** Items that ended before this run (resumed) — counted as done. */
  skipped: number;
  /** Attempts holding a slot (0 once the scheduler is idle). */
  inFlight: number;
  queued: number;
  limit: number;
  retries: number;
  rateLimited: number;
  requestsPerMinute: number;
  tokensPerMinute: number;
  /** Whether admission is paused by a cooldown now. */
  paused: boolean;
  /** How long the cooldown still lasts, ms (0 when not paused). */
  pausedForMs: number;
  /** Items waiting out a retry delay now (backoff, the provider's Retry-After, the retry budget). */
  waitingToRetry: number;
  /** The longest of those waits still to go, ms (0 when none waits). */
  retryWaitMs: number;
  /** Estimated time to finish, ms, from the recent completion rate; undefined if unknown. */
  etaMs: number | undefined;
};

export type { LatencySummary };

export type RunSummary = {
  total: number | undefined;
  succeeded: number;
  /** Items that failed. Items stopped by an interrupt, an abort or close are in `stopped`. */
  failed: number;
  /** Items stopped before they ended (not failures): a resumed run runs them. */
  stopped: number;
  skipped: number;
  /** Failed items by error code (stopped items are not in it). */
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
  /**
   * Latency of every attempt that ended, failed ones (timeouts, errors, 429s) included, ms: what
   * the calls really took. An attempt stopped by an abort is in neither.
   */
  attemptLatencyMs: LatencySummary;
  /** Latency of the failed attempts alone, ms. */
  failedAttemptLatencyMs: LatencySummary;
  /** From submission to outcome (queueing and retries included), ms. */
  itemLatencyMs: LatencySummary;
  makespanMs: number;
  /** Succeeded items per second over the makespan. */
  throughputPerSecond: number;
  /** The concurrency limit over the run (it moves under `--concurrency auto`). */
  limit: { initial: number; final: number; min: number; max: number };
  /** When the limit changed: [clock ms since the start, new limit], at most ~1,000 points. */
  limitTimeline: Array<[number, number]>;
  /**
   * The physical lower bound for this work under the limits in force (set, or learned from the
   * provider's headers: see `boundLimits`), and the run's ratio to it.
   */
  bound: Bound | undefined;
  /** The limits `bound` was computed with, and where each came from. */
  boundLimits: BoundLimits;
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
  #stopped = 0;
  #skipped = 0;
  #attempts = 0;
  #submitted = 0;
  #retries = 0;
  #rateLimited = 0;
  #inputTokens = 0;
  #outputTokens = 0;
  #chargedTokens = 0;
  #outsideSucceeded = 0;
  #outsideFailed = 0;
  #outsideStopped = 0;
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
  /** When each item waiting for a retry re-enters admission. */
  readonly #retryAt = new Map<ItemId, number>();
  #last: Counts = { at: 0, inFlight: 0, queued: 0, limit: 0 };
  readonly #startedAt: number;
  readonly #failedByCode: Record<string, number> = {};
  readonly #byStatus: Record<string, number> = {};
  readonly #started = new Map<ItemId, number>();
  readonly #latency = latencyHistogram();
  readonly #attemptLatency = latencyHistogram();
  readonly #failedAttemptLatency = latencyHistogram();
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
        recordMs(this.#attemptLatency, e.latencyMs);
        recordMs(this.#failedAttemptLatency, e.latencyMs);
        this.#counts(e);
      }),
      source.on("retry-scheduled", (e) => {
        this.#retries++;
        this.#retryAt.set(e.id, e.retryAt ?? e.at + e.delayMs);
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
      source.on("succeeded", (e) => {
        this.#retryAt.delete(e.id);
        this.#succeededEvent(e);
      }),
      source.on("failed", (e) => {
        this.#started.delete(e.id);
        this.#retryAt.delete(e.id);
        if (STOP_REASONS.has(e.reason)) {
          this.#stopped++;
          this.#counts(e);
          return;
        }
        this.#failed++;
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
      source.on("queued", (e) => {
        if (e.attempt === 1) this.#submitted++;
        else this.#retryAt.delete(e.id);
        this.#counts(e);
      }),
      // A terminal event is emitted while its attempt still holds its slot; `idle` has the
      // counts once the last one is given back (in flight 0).
      source.on("idle", (e) => this.#counts(e)),
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
    const code = errorCode(outcome.error);
    if (outcome.stopped || STOP_CODES.has(code)) {
      this.#outsideStopped++;
      return;
    }
    this.#outsideFailed++;
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
      recordMs(this.#attemptLatency, ms);
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
    const stopped = this.#stopped + this.#outsideStopped;
    const done =
      this.#succeeded + this.#failed + this.#outsideSucceeded + this.#outsideFailed + this.#skipped;
    let etaMs: number | undefined;
    const perMinute = this.#completions.perMinute(nowMs, elapsedMs);
    if (this.#total !== undefined && perMinute > 0) {
      etaMs = (Math.max(0, this.#total - done - stopped) / perMinute) * 60_000;
    }
    return {
      elapsedMs,
      total: this.#total,
      submitted:
        this.#submitted +
        this.#outsideSucceeded +
        this.#outsideFailed +
        this.#outsideStopped +
        this.#skipped,
      succeeded: this.#succeeded + this.#outsideSucceeded,
      failed: this.#failed + this.#outsideFailed,
      stopped,
      skipped: this.#skipped,
      inFlight: this.#last.inFlight,
      queued: this.#last.queued,
      limit: this.#last.limit,
      retries: this.#retries,
      rateLimited: this.#rateLimited,
      requestsPerMinute: this.#requests.perMinute(nowMs, elapsedMs),
      tokensPerMinute: this.#tokens.perMinute(nowMs, elapsedMs),
      paused: nowMs < this.#pauseEnd,
      pausedForMs: Math.max(0, this.#pauseEnd - nowMs),
      ...this.#retryWaits(nowMs),
      etaMs,
    };
  }

  /** The items waiting out a retry delay at `nowMs`, and the longest wait still to go. */
  #retryWaits(nowMs: number): { waitingToRetry: number; retryWaitMs: number } {
    let waitingToRetry = 0;
    let retryWaitMs = 0;
    // Every item between its retry-scheduled and its next queued: one the retry budget holds past
    // its retryAt still waits (its wait still to go is unknown, so counted as 0).
    for (const at of this.#retryAt.values()) {
      waitingToRetry++;
      retryWaitMs = Math.max(retryWaitMs, at - nowMs);
    }
    return { waitingToRetry, retryWaitMs };
  }

  /** The limits M* is computed with: those set, or in force at the end (learned or lowered). */
  #boundLimits(): BoundLimits {
    const set = this.#options.limits ?? {};
    const inForce = this.#options.limitsInForce?.() ?? {};
    const limit = (
      setValue: number | undefined,
      value: number | undefined,
    ): LimitInForce | undefined => {
      const ok = (n: number | undefined): n is number =>
        n !== undefined && Number.isFinite(n) && n > 0;
      if (!ok(value)) return ok(setValue) ? { value: setValue, source: "set" } : undefined;
      if (!ok(setValue)) return { value, source: "learned" };
      return value < setValue
        ? { value, source: "lowered", set: setValue }
        : { value: setValue, source: "set" };
    };
    const concurrency = set.concurrency;
    return {
      concurrency:
        concurrency !== undefined && Number.isFinite(concurrency)
          ? { value: concurrency, source: "set" }
          : undefined,
      requestsPerMinute: limit(set.requestsPerMinute, inForce.requestsPerMinute),
      tokensPerMinute: limit(set.tokensPerMinute, inForce.tokensPerMinute),
      inputTokensPerMinute: limit(set.inputTokensPerMinute, inForce.inputTokensPerMinute),
      outputTokensPerMinute: limit(set.outputTokensPerMinute, inForce.outputTokensPerMinute),
    };
  }

  /** The run's summary; `endedAt` is the clock time it ended, ms. */
  summary(endedAt: number): RunSummary {
    const makespanMs = Math.max(0, endedAt - this.#startedAt);
    const limits = this.#boundLimits();
    const bound =
      this.#succeeded > 0
        ? physicalBound({
            calls: this.#succeeded,
            latencySumMs: this.#latencySumMs,
            latencyMinMs: this.#latencyMinMs,
            latencyMaxMs: this.#latencyMaxMs,
            concurrency: limits.concurrency?.value,
            requestsPerMinute: limits.requestsPerMinute?.value,
            tokensPerMinute: limits.tokensPerMinute?.value,
            tokensCharged: this.#chargedTokens || this.#inputTokens + this.#outputTokens,
            inputTokensPerMinute: limits.inputTokensPerMinute?.value,
            inputTokensCharged: this.#inputTokens,
            outputTokensPerMinute: limits.outputTokensPerMinute?.value,
            outputTokensCharged: this.#outputTokens,
            burstSeconds: this.#options.limits?.burstSeconds,
          })
        : undefined;
    return {
      total: this.#total,
      succeeded: this.#succeeded + this.#outsideSucceeded,
      failed: this.#failed + this.#outsideFailed,
      stopped: this.#stopped + this.#outsideStopped,
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
      attemptLatencyMs: summariseLatency(this.#attemptLatency),
      failedAttemptLatencyMs: summariseLatency(this.#failedAttemptLatency),
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
      boundLimits: limits,
      ratioToBound: bound && bound.boundMs > 0 ? makespanMs / bound.boundMs : undefined,
    };
  }
}

// The options of a scheduler and of each entry point, with every default applied in one place
// (`resolveSchedulerOptions`) and validated at the boundary.

import { ConfigError } from "../errors.ts";
import type { AdmissionGate } from "./admission-gate.ts";
import { type Clock, realClock } from "./clock.ts";
import { AdaptiveConcurrency } from "./concurrency/adaptive-concurrency.ts";
import type { ConcurrencyController } from "./concurrency/concurrency-controller.ts";
import { StaticConcurrency } from "./concurrency/static-concurrency.ts";
import type { RateDimension } from "./limits/limit.ts";
import type { ItemId } from "./outcome.ts";
import type { Random } from "./random.ts";
import { DefaultRetryPolicy, type RetryOptions } from "./retry/default-retry-policy.ts";
import type { RetryPolicy } from "./retry/retry-policy.ts";

export type SchedulerOptions = {
  /**
   * Attempts holding a slot at once: `"auto"` (an `AdaptiveConcurrency` that finds the limit at
   * which the provider gets the most done and follows it: one call alone, then a search for the
   * knee of throughput against the limit, probes around it, backs off on 429s and overloads,
   * never above what the known rate limits can feed), a number (a `StaticConcurrency`), or any
   * controller, e.g. `new AdaptiveConcurrency({ max: 32, initial: 8 })`.
   * @default "auto"
   */
  concurrency?: number | "auto" | ConcurrencyController | undefined;
  /** Requests per minute. @default undefined (unlimited until a snapshot reports a limit) */
  requestsPerMinute?: number | undefined;
  /** Input + output tokens per minute (OpenAI TPM). @default undefined */
  tokensPerMinute?: number | undefined;
  /** Input tokens per minute (Anthropic ITPM). @default undefined */
  inputTokensPerMinute?: number | undefined;
  /** Output tokens per minute (Anthropic OTPM). @default undefined */
  outputTokensPerMinute?: number | undefined;
  /** Seconds of each per-minute limit a bucket can hold (the burst), in (0, 60]. @default 1 */
  burstSeconds?: number | undefined;
  /**
   * How far the provider's clock may lag the buckets', ms: a call is admitted only when its
   * tokens and this much refill besides are there, so one that reaches the provider sooner than
   * its turn (network jitter, a connection opened for another) still finds its tokens: known
   * limits, no 429. It costs the first burst this much refill, once. @default 50
   */
  rateMarginMs?: number | undefined;
  /**
   * Learn limits from rate-limit snapshots: create the bucket of an unlimited dimension, lower a
   * configured limit above the provider's. @default true
   */
  learnLimits?: boolean | undefined;
  /** Per-attempt timeout, ms; aborts the attempt's signal. `Infinity` for none. @default 600_000 */
  timeoutMs?: number | undefined;
  /**
   * Per-item deadline across all attempts and waits, ms from submission. An attempt the provider
   * has answered (its task called `answered()`) gets a grace to write its answer down (its
   * timeout, at most the deadline again): the answer is kept.
   * @default Infinity
   */
  deadlineMs?: number | undefined;
  /** Retry settings, or a whole `RetryPolicy`. @default the `RetryOptions` defaults */
  retry?: RetryOptions | RetryPolicy | undefined;
  /** How long a 429 without a Retry-After pauses the key, ms. @default 1_000 */
  cooldownMs?: number | undefined;
  /**
   * The longest wait a provider's Retry-After may impose, ms. A longer one fails the item at once
   * (`RetryAfterTooLongError`, with the provider's hint) instead of sleeping, and pauses the key
   * only `cooldownMs`. Every per-minute limit resets within 60 s; a provider asking for more is
   * out of a daily quota or down, where an hour's sleep per retry helps nobody and a rerun later
   * does. @default 120_000
   */
  maxRetryAfterMs?: number | undefined;
  /** Jitter added to a pause, as a fraction of it: the pause is d * (1 + U[0, j]). @default 0.1 */
  cooldownJitter?: number | undefined;
  /**
   * An admission shared with other processes (e.g. `SharedAdmission` on Redis), asked for every
   * attempt after this scheduler's own admission: the attempt starts (its timeout, latency and
   * `started` event count) when the gate admits it. @default none
   */
  gate?: AdmissionGate | undefined;
  /** The clock. @default realClock */
  clock?: Clock | undefined;
  /** The random source for jitter. @default Math.random */
  random?: Random | undefined;
  /** How many items `stream` reads ahead of the oldest unfinished one. @default 1_024 */
  window?: number | undefined;
  /**
   * Called when an event listener throws (the scheduler carries on).
   * @default emits a process warning
   */
  onListenerError?: ((error: unknown, event: string) => void) | undefined;
};

/** A call's estimated cost; the scheduler reserves it and reconciles it with reported usage. */
export type Cost = {
  /** Requests charged. @default 1 */
  requests?: number | undefined;
  /** Input + output tokens (OpenAI: prompt estimate + max_tokens). @default inputTokens + outputTokens */
  tokens?: number | undefined;
  /** Input tokens (Anthropic ITPM). @default 0 */
  inputTokens?: number | undefined;
  /** Output tokens (Anthropic OTPM: an estimate of actual output). @default 0 */
  outputTokens?: number | undefined;
};

/** Options of `run` and `settle`. */
export type RunOptions = {
  /** The item's id in events and outcomes. @default a number in submission order */
  id?: ItemId | undefined;
  /** Higher runs first; FIFO within a priority. @default the scope's priority (0) */
  priority?: number | undefined;
  /** The call's estimated cost. @default { requests: 1 } */
  cost?: Cost | undefined;
  /** Per-attempt timeout, ms. @default the scheduler's `timeoutMs` */
  timeoutMs?: number | undefined;
  /** Deadline across attempts, ms from now. @default the scheduler's `deadlineMs` */
  deadlineMs?: number | undefined;
  /** Aborting settles the item at once with an `AbortedError`. @default undefined */
  signal?: AbortSignal | undefined;
};

/** Options of `settle` (and per item of `map`/`stream`): `run`'s plus a fallback. */
export type SettleOptions<T> = RunOptions & {
  /** A value for a failed outcome (`Failed.fallback`); the outcome stays `ok: false`. */
  fallback?: ((error: unknown) => T) | undefined;
};

/** Options of `map`. */
export type MapOptions<I, T> = {
  /** Ids per input. @default numbers in submission order */
  id?: ((input: I, index: number) => ItemId) | undefined;
  /** Priority of every item. @default the scope's priority (0) */
  priority?: number | undefined;
  /** The estimated cost of each input. @default { requests: 1 } */
  cost?: ((input: I, index: number) => Cost | undefined) | undefined;
  /** Per-attempt timeout, ms. @default the scheduler's `timeoutMs` */
  timeoutMs?: number | undefined;
  /** Deadline of each item, ms from its submission. @default the scheduler's `deadlineMs` */
  deadlineMs?: number | undefined;
  /** Aborting settles every unfinished item with `AbortedError` and stops reading input. */
  signal?: AbortSignal | undefined;
  /** A value for each failed item (`Failed.fallback`); the outcome stays `ok: false`. */
  fallback?: ((error: unknown, input: I, index: number) => T) | undefined;
};

/** Options of `stream`: `map`'s plus the read-ahead window. */
export type StreamOptions<I, T> = MapOptions<I, T> & {
  /** Items read ahead of the oldest unyielded one, >= 1. @default the scheduler's `window` */
  window?: number | undefined;
};

/** Options of `scope`. */
export type ScopeOptions = {
  /** A name for events. @default undefined */
  name?: string | undefined;
  /** This scope's own cap on slots, within the scheduler's limit. @default Infinity */
  concurrency?: number | undefined;
  /** The default priority of its items. @default 0 */
  priority?: number | undefined;
};

export type ResolvedSchedulerOptions = {
  controller: ConcurrencyController;
  limits: Partial<Record<RateDimension, number>>;
  burstSeconds: number;
  rateMarginMs: number;
  learnLimits: boolean;
  timeoutMs: number;
  deadlineMs: number;
  retry: RetryPolicy;
  cooldownMs: number;
  maxRetryAfterMs: number;
  cooldownJitter: number;
  gate: AdmissionGate | undefined;
  clock: Clock;
  random: Random;
  window: number;
  onListenerError: (error: unknown, event: string) => void;
};

export function resolveSchedulerOptions(options: SchedulerOptions = {}): ResolvedSchedulerOptions {
  const random = options.random ?? Math.random;
  const concurrency = options.concurrency ?? "auto";
  const limits: Partial<Record<RateDimension, number>> = {};
  const perMinute: Array<[RateDimension, string, number | undefined]> = [
    ["requests", "requestsPerMinute", options.requestsPerMinute],
    ["tokens", "tokensPerMinute", options.tokensPerMinute],
    ["inputTokens", "inputTokensPerMinute", options.inputTokensPerMinute],
    ["outputTokens", "outputTokensPerMinute", options.outputTokensPerMinute],
  ];
  for (const [dimension, field, value] of perMinute) {
    if (value === undefined) continue;
    limits[dimension] = positive(field, value, false);
  }
  const retry = options.retry;
  return {
    controller:
      concurrency === "auto"
        ? new AdaptiveConcurrency()
        : typeof concurrency === "number"
          ? new StaticConcurrency(concurrency)
          : concurrency,
    limits,
    burstSeconds: range("burstSeconds", options.burstSeconds ?? 1, 0, 60),
    rateMarginMs: nonNegative("rateMarginMs", options.rateMarginMs ?? 50),
    learnLimits: options.learnLimits ?? true,
    timeoutMs: positive("timeoutMs", options.timeoutMs ?? 600_000, true),
    deadlineMs: positive("deadlineMs", options.deadlineMs ?? Number.POSITIVE_INFINITY, true),
    retry: isRetryPolicy(retry) ? retry : new DefaultRetryPolicy(checkRetry(retry ?? {}), random),
    cooldownMs: nonNegative("cooldownMs", options.cooldownMs ?? 1_000),
    maxRetryAfterMs: positive("maxRetryAfterMs", options.maxRetryAfterMs ?? 120_000, true),
    cooldownJitter: nonNegative("cooldownJitter", options.cooldownJitter ?? 0.1),
    gate: options.gate,
    clock: options.clock ?? realClock,
    random,
    window: positiveInteger("window", options.window ?? 1_024),
    onListenerError: options.onListenerError ?? warnListenerError,
  };
}

function isRetryPolicy(value: SchedulerOptions["retry"]): value is RetryPolicy {
  return typeof (value as RetryPolicy | undefined)?.decide === "function";
}

function checkRetry(options: RetryOptions): RetryOptions {
  if (options.maxAttempts !== undefined) positiveInteger("retry.maxAttempts", options.maxAttempts);
  if (options.baseDelayMs !== undefined) nonNegative("retry.baseDelayMs", options.baseDelayMs);
  if (options.maxDelayMs !== undefined) nonNegative("retry.maxDelayMs", options.maxDelayMs);
  if (options.budget) {
    const b = options.budget;
    if (b.perSuccess !== undefined) nonNegative("retry.budget.perSuccess", b.perSuccess);
    if (b.perSecond !== undefined) positive("retry.budget.perSecond", b.perSecond, false);
    if (b.burst !== undefined) nonNegative("retry.budget.burst", b.burst);
  }
  return options;
}

function warnListenerError(error: unknown, event: string): void {
  process.emitWarning(
    `a listener of the scheduler's "${event}" event threw: ${error instanceof Error ? error.stack : String(error)}`,
    { code: "SALVO_LISTENER_ERROR" },
  );
}

/** A number > 0 (Infinity allowed when `infinite`). */
export function positive(field: string, value: number, infinite: boolean): number {
  const ok =
    typeof value === "number" &&
    value > 0 &&
    (infinite ? !Number.isNaN(value) : Number.isFinite(value));
  if (!ok) {
    throw new ConfigError({
      field,
      expected: infinite ? "a number > 0 (or Infinity)" : "a finite number > 0",
      got: value,
    });
  }
  return value;
}

export function nonNegative(field: string, value: number): number {
  if (typeof value !== "number" || !(value >= 0) || !Number.isFinite(value)) {
    throw new ConfigError({ field, expected: "a finite number >= 0", got: value });
  }
  return value;
}

export function positiveInteger(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ConfigError({ field, expected: "an integer >= 1", got: value });
  }
  return value;
}

function range(field: string, value: number, min: number, max: number): number {
  if (typeof value !== "number" || !(value > min && value <= max)) {
    throw new ConfigError({ field, expected: `a number in (${min}, ${max}]`, got: value });
  }
  return value;
}

// The probe's measurement: a short, bounded, polite sweep of an endpoint at increasing
// concurrency. Each level is a plain closed loop (c workers, each sending its next request when
// the last one answers) with no retries, so what is measured is the endpoint, not Salvo's
// scheduler. The sweep stops early when throughput stops growing for two levels, on the first 429,
// or when the request budget is spent.

import type { RateLimitSnapshot } from "../core/rate-limit-snapshot.ts";
import { ProviderError } from "../errors.ts";
import type { Provider, ProviderRequest } from "../providers/provider.ts";

export type SweepOptions = {
  /** The endpoint, through its adapter (OpenAIProvider, AnthropicProvider, ...). */
  provider: Provider;
  /** The request sent, unchanged, at every level. */
  request: ProviderRequest;
  /** Concurrency levels, increasing. @default [1, 2, 4, 8, 16, 32] */
  levels?: readonly number[] | undefined;
  /** The most requests the whole sweep sends. @default 200 */
  maxRequests?: number | undefined;
  /** Requests per level: max(minPerLevel, perWorker * c). @default 8 */
  minPerLevel?: number | undefined;
  /** @default 3 */
  perWorker?: number | undefined;
  /** A level whose throughput is below (1 + growth) x the best before it did not grow. @default 0.1 */
  growth?: number | undefined;
  /** Per-request timeout, ms. @default 120_000 */
  timeoutMs?: number | undefined;
  /** Stops the sweep; requests in flight are aborted. */
  signal?: AbortSignal | undefined;
  /** Milliseconds, monotonic. @default performance.now */
  now?: (() => number) | undefined;
  /** Called after each level, e.g. to print progress. */
  onLevel?: ((level: LevelResult) => void) | undefined;
};

export type LevelResult = {
  concurrency: number;
  /** Requests sent. */
  requests: number;
  /** Answered successfully. */
  ok: number;
  /** 429 rate limits (temporary; quota errors count as errors). */
  rateLimited: number;
  /** Every other failure. */
  errors: number;
  /** Successful requests per second over the level's wall time. */
  throughputRps: number;
  /**
   * Successful requests per second the server sustained: calls in flight over their median
   * latency (Little's law in steady state). Unlike `throughputRps`, the client's own time
   * between calls is not in it; and the median is a steady call's: the level's first and last
   * rounds wait less in a server's queue (a mean over 3 rounds read a 4-slot server as 40, 44,
   * 46/s at 4, 8, 16), and a stall lifts a mean. The sweep's plateau is judged on it (on
   * `throughputRps` for a level that has none).
   */
  serverRps?: number | undefined;
  /** Output tokens per second, when the endpoint reports usage. */
  outputTokensPerSec: number;
  /** Latency percentiles of successful requests, ms (NaN when none succeeded). */
  p50Ms: number;
  p95Ms: number;
  durationMs: number;
  /** The first error's message, for the report. */
  firstError: string | undefined;
};

export type StopReason =
  | "levels-done"
  | "plateau"
  | "rate-limited"
  | "budget"
  | "errors"
  | "aborted";

/** Per-minute limits read from the rate-limit headers (the last value seen of each). */
export type LearnedLimits = {
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  inputTokensPerMinute?: number | undefined;
  outputTokensPerMinute?: number | undefined;
};

export type SweepResult = {
  levels: LevelResult[];
  stoppedBecause: StopReason;
  limits: LearnedLimits;
  requestsSent: number;
};

export const DEFAULT_LEVELS: readonly number[] = [1, 2, 4, 8, 16, 32];

export async function sweep(options: SweepOptions): Promise<SweepResult> {
  const levels = options.levels ?? DEFAULT_LEVELS;
  const budget = options.maxRequests ?? 200;
  const minPerLevel = options.minPerLevel ?? 8;
  const perWorker = options.perWorker ?? 3;
  const growth = options.growth ?? 0.1;
  const now = options.now ?? (() => performance.now());
  const limits: LearnedLimits = {};
  const results: LevelResult[] = [];
  let sent = 0;
  let flat = 0;
  let stoppedBecause: StopReason = "levels-done";
  for (const concurrency of levels) {
    if (options.signal?.aborted) {
      stoppedBecause = "aborted";
      break;
    }
    const remaining = budget - sent;
    // A level smaller than its concurrency (or than 2 rounds) measures nothing useful.
    const requests = Math.min(Math.max(minPerLevel, perWorker * concurrency), remaining);
    if (requests < Math.max(concurrency, Math.min(minPerLevel, 2 * concurrency))) {
      stoppedBecause = "budget";
      break;
    }
    const level = await runLevel(options, concurrency, requests, now, limits);
    sent += level.requests;
    results.push(level);
    options.onLevel?.(level);
    if (options.signal?.aborted) {
      stoppedBecause = "aborted";
      break;
    }
    if (level.rateLimited > 0) {
      stoppedBecause = "rate-limited";
      break;
    }
    if (level.ok === 0) {
      stoppedBecause = "errors";
      break;
    }
    // Judged on what the server sustained (Little's law), not on the wall clock's rate: a busy
    // client's own time between calls, and a short level's ramp and tail, blur the wall clock's
    // figure by more than the growth looked for (a loaded machine saw 29, 31, 35, 37/s at
    // 4, 8, 16, 32 against 4 slots, where calls in flight over their latency read 33, 40, 39, 39).
    const sustained = (r: LevelResult) => r.serverRps ?? r.throughputRps;
    const before = Math.max(0, ...results.slice(0, -1).map(sustained));
    flat = results.length > 1 && sustained(level) < before * (1 + growth) ? flat + 1 : 0;
    if (flat >= 2) {
      stoppedBecause = "plateau";
      break;
    }
  }
  return { levels: results, stoppedBecause, limits, requestsSent: sent };
}

async function runLevel(
  options: SweepOptions,
  concurrency: number,
  requests: number,
  now: () => number,
  limits: LearnedLimits,
): Promise<LevelResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const latencies: number[] = [];
  let issued = 0;
  let rateLimited = 0;
  let errors = 0;
  let outputTokens = 0;
  let firstError: string | undefined;
  const started = now();
  const worker = async () => {
    while (issued < requests && !options.signal?.aborted) {
      issued++;
      const signals = [AbortSignal.timeout(timeoutMs)];
      if (options.signal) signals.push(options.signal);
      const t0 = now();
      try {
        const result = await options.provider.call(options.request, {
          signal: AbortSignal.any(signals),
        });
        latencies.push(now() - t0);
        outputTokens += result.usage?.outputTokens ?? 0;
        learn(limits, result.rateLimits);
      } catch (error) {
        if (error instanceof ProviderError) learn(limits, error.rateLimits);
        if (error instanceof ProviderError && error.failureClass === "rate_limit") rateLimited++;
        else errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const durationMs = Math.max(1e-3, now() - started);
  latencies.sort((a, b) => a - b);
  const p50Ms = percentile(latencies, 0.5);
  return {
    concurrency,
    requests: issued,
    ok: latencies.length,
    rateLimited,
    errors,
    throughputRps: (latencies.length * 1000) / durationMs,
    serverRps:
      latencies.length === 0
        ? 0
        : (Math.min(concurrency, issued) * 1000 * (latencies.length / issued)) /
          Math.max(1e-3, p50Ms),
    outputTokensPerSec: (outputTokens * 1000) / durationMs,
    p50Ms,
    p95Ms: percentile(latencies, 0.95),
    durationMs,
    firstError,
  };
}

/** Nearest-rank percentile of sorted values; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1]!;
}

function learn(limits: LearnedLimits, snapshot: RateLimitSnapshot | undefined): void {
  if (snapshot === undefined) return;
  const pairs: Array<[keyof LearnedLimits, number | undefined]> = [
    ["requestsPerMinute", snapshot.requests?.limit],
    ["tokensPerMinute", snapshot.tokens?.limit],
    ["inputTokensPerMinute", snapshot.inputTokens?.limit],
    ["outputTokensPerMinute", snapshot.outputTokens?.limit],
  ];
  for (const [key, value] of pairs) if (value !== undefined && value > 0) limits[key] = value;
}

// Reading a sweep: where throughput stops growing (the knee), how much latency has inflated
// there, and the concurrency and limits to run with. Pure functions over `SweepResult`.

import type { LearnedLimits, LevelResult, SweepResult } from "./sweep.ts";

export type KneeOptions = {
  /** The knee is the smallest level reaching this fraction of the best throughput. @default 0.9 */
  fraction?: number | undefined;
  /** Latency at the knee above this multiple of the unloaded latency counts as queueing. @default 1.5 */
  inflation?: number | undefined;
  /** Headroom of the Little's-law concurrency for known rate limits. @default 1.2 */
  headroom?: number | undefined;
  /** Tokens charged per request (prompt + max_tokens for OpenAI), for the TPM bound. */
  tokensPerRequest?: number | undefined;
};

export type Recommendation = {
  /** The knee level, or undefined when no level answered. */
  knee: LevelResult | undefined;
  /** The best throughput seen, requests/s. */
  bestThroughputRps: number;
  /** The lowest p50 latency seen (the unloaded latency), ms. */
  unloadedP50Ms: number;
  /** p50 at the knee / unloaded p50. */
  kneeInflation: number;
  /** Throughput was still growing at the highest level probed: the endpoint may take more. */
  stillGrowing: boolean;
  /** The concurrency to run with. */
  concurrency: number;
  /** The most concurrency the known rate limits can keep busy, ceil(h * X* * L_p50). */
  quotaConcurrency: number | undefined;
  /** Limits to pass on (learned from the headers). */
  limits: LearnedLimits;
  /** The flags for `salvo run`. */
  flags: string;
  /** Why, in a few short sentences. */
  notes: string[];
};

export function recommend(result: SweepResult, options: KneeOptions = {}): Recommendation {
  const fraction = options.fraction ?? 0.9;
  const inflation = options.inflation ?? 1.5;
  const headroom = options.headroom ?? 1.2;
  const answered = result.levels.filter((l) => l.ok > 0);
  const notes: string[] = [];
  const best = Math.max(0, ...answered.map((l) => l.throughputRps));
  const unloaded = Math.min(...answered.map((l) => l.p50Ms));
  const knee = answered.find((l) => l.throughputRps >= fraction * best);
  const top = answered.at(-1);
  const stillGrowing =
    top !== undefined &&
    knee === top &&
    answered.length > 1 &&
    (result.stoppedBecause === "levels-done" || result.stoppedBecause === "budget");
  let concurrency = 1;
  let kneeInflation = Number.NaN;
  if (knee !== undefined) {
    kneeInflation = knee.p50Ms / unloaded;
    concurrency = knee.concurrency;
    notes.push(
      `throughput reaches ${pct(knee.throughputRps / best)} of the best (${rate(best)} req/s) at concurrency ${knee.concurrency}`,
    );
    // Little's law at the unloaded latency: the concurrency that sustains the best throughput
    // without a server-side queue. When latency at the knee is already inflated, the knee level
    // overshoots the real capacity (the sweep's levels are coarse); this does not.
    const little = Math.max(1, Math.ceil((best * unloaded) / 1000));
    if (kneeInflation > inflation && little < concurrency) {
      notes.push(
        `p50 latency there is ${kneeInflation.toFixed(1)}x the unloaded ${Math.round(unloaded)} ms (server-side queueing); best/unloaded latency gives ${little}`,
      );
      concurrency = little;
    }
    if (stillGrowing) {
      notes.push(
        `throughput was still growing at ${knee.concurrency}: the endpoint may take more (probe higher --levels)`,
      );
    }
  } else {
    notes.push("no level answered: nothing to recommend");
  }
  const quotaConcurrency = quotaBound(result.limits, options.tokensPerRequest, headroom, unloaded);
  if (quotaConcurrency !== undefined && quotaConcurrency < concurrency) {
    notes.push(`the rate limits can keep only ${quotaConcurrency} calls busy (Little's law)`);
    concurrency = quotaConcurrency;
  }
  if (result.stoppedBecause === "rate-limited") {
    notes.push("stopped at the first 429: the rate limits, not the server, bound this endpoint");
  }
  const flags = [`--concurrency ${concurrency}`];
  const limits = result.limits;
  if (limits.requestsPerMinute !== undefined) flags.push(`--rpm ${limits.requestsPerMinute}`);
  if (limits.tokensPerMinute !== undefined) flags.push(`--tpm ${limits.tokensPerMinute}`);
  if (limits.inputTokensPerMinute !== undefined)
    flags.push(`--itpm ${limits.inputTokensPerMinute}`);
  if (limits.outputTokensPerMinute !== undefined)
    flags.push(`--otpm ${limits.outputTokensPerMinute}`);
  return {
    knee,
    bestThroughputRps: best,
    unloadedP50Ms: Number.isFinite(unloaded) ? unloaded : Number.NaN,
    kneeInflation,
    stillGrowing,
    concurrency,
    quotaConcurrency,
    limits,
    flags: flags.join(" "),
    notes,
  };
}

/** ceil(h * X* * L) with X* = min(RPM/60, TPM/(60 k)), or undefined when no limit is known. */
function quotaBound(
  limits: LearnedLimits,
  tokensPerRequest: number | undefined,
  headroom: number,
  latencyMs: number,
): number | undefined {
  const rates: number[] = [];
  if (limits.requestsPerMinute !== undefined) rates.push(limits.requestsPerMinute / 60);
  if (
    limits.tokensPerMinute !== undefined &&
    tokensPerRequest !== undefined &&
    tokensPerRequest > 0
  )
    rates.push(limits.tokensPerMinute / 60 / tokensPerRequest);
  if (rates.length === 0 || !Number.isFinite(latencyMs)) return undefined;
  return Math.max(1, Math.ceil(headroom * Math.min(...rates) * (latencyMs / 1000)));
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function rate(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

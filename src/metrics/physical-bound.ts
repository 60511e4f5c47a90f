// The physical limit M* (DESIGN.md, "The physical limit"): no scheduler can finish N calls faster
// than the slowest of what concurrency, the request rate, the token rates and the longest call
// allow. Reports compare a run's makespan with it.

export type BoundInput = {
  /** Calls made (successful items; a failed call still costs a request but not the work). */
  calls: number;
  /** The sum, shortest and longest of the calls' service latencies (one attempt each), ms. */
  latencySumMs: number;
  latencyMinMs: number;
  latencyMaxMs: number;
  /** The concurrency cap, if any. */
  concurrency?: number | undefined;
  /** Requests per minute, if limited. */
  requestsPerMinute?: number | undefined;
  /** Tokens per minute, if limited, and the tokens the calls were charged against it. */
  tokensPerMinute?: number | undefined;
  tokensCharged?: number | undefined;
  /** Input tokens per minute (Anthropic ITPM), if limited, and the input tokens charged. */
  inputTokensPerMinute?: number | undefined;
  inputTokensCharged?: number | undefined;
  /** Output tokens per minute (Anthropic OTPM), if limited, and the output tokens charged. */
  outputTokensPerMinute?: number | undefined;
  outputTokensCharged?: number | undefined;
  /** The bucket burst, in seconds of each per-minute limit: what may go at once at the start. */
  burstSeconds?: number | undefined;
};

export type Bound = {
  /** The lower bound on the makespan, ms. */
  boundMs: number;
  /** Which term binds. */
  binding: "concurrency" | "requests" | "tokens" | "input-tokens" | "output-tokens" | "latency";
  terms: {
    concurrencyMs: number;
    requestsMs: number;
    tokensMs: number;
    inputTokensMs: number;
    outputTokensMs: number;
    latencyMs: number;
  };
};

/**
 * The time a per-minute limit needs for `amount` (requests or tokens) after the burst its bucket
 * allows at the start, plus the shortest call (the last one admitted must still run). 0 when the
 * dimension is not limited.
 */
function rateTerm(
  amount: number | undefined,
  perMinute: number | undefined,
  burstSeconds: number,
  latencyMinMs: number,
): number {
  if (!perMinute || !amount) return 0;
  const afterBurst = Math.max(0, amount - (perMinute * burstSeconds) / 60);
  return (60_000 * afterBurst) / perMinute + (afterBurst > 0 ? latencyMinMs : 0);
}

/**
 * M* = max(Σ L_i / C, 60·(N − B_R)/R + L_min, 60·(K − B_T)/T + L_min, (the same for ITPM and
 * OTPM), max L_i), with the bursts B the buckets allow at the start. Unlimited dimensions
 * contribute 0.
 */
export function physicalBound(input: BoundInput): Bound {
  const burst = input.burstSeconds ?? 0;
  const min = input.latencyMinMs;
  const concurrencyMs =
    input.concurrency && Number.isFinite(input.concurrency)
      ? input.latencySumMs / input.concurrency
      : 0;
  const terms = {
    concurrencyMs,
    requestsMs: rateTerm(input.calls, input.requestsPerMinute, burst, min),
    tokensMs: rateTerm(input.tokensCharged, input.tokensPerMinute, burst, min),
    inputTokensMs: rateTerm(input.inputTokensCharged, input.inputTokensPerMinute, burst, min),
    outputTokensMs: rateTerm(input.outputTokensCharged, input.outputTokensPerMinute, burst, min),
    latencyMs: input.latencyMaxMs,
  };
  let binding: Bound["binding"] = "latency";
  let boundMs = terms.latencyMs;
  for (const [name, value] of [
    ["concurrency", terms.concurrencyMs],
    ["requests", terms.requestsMs],
    ["tokens", terms.tokensMs],
    ["input-tokens", terms.inputTokensMs],
    ["output-tokens", terms.outputTokensMs],
  ] as const) {
    if (value > boundMs) {
      boundMs = value;
      binding = name;
    }
  }
  return { boundMs, binding, terms };
}

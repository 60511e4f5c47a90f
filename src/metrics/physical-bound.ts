// The physical limit M* (DESIGN.md, "The physical limit"): no scheduler can finish N calls faster
// than the slowest of what concurrency, the request rate, the token rate and the longest call
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
  /** The bucket burst, in seconds of each per-minute limit: what may go at once at the start. */
  burstSeconds?: number | undefined;
};

export type Bound = {
  /** The lower bound on the makespan, ms. */
  boundMs: number;
  /** Which term binds. */
  binding: "concurrency" | "requests" | "tokens" | "latency";
  terms: { concurrencyMs: number; requestsMs: number; tokensMs: number; latencyMs: number };
};

/**
 * M* = max(Σ L_i / C, 60·(N − B_R)/R + L_min, 60·(K − B_T)/T + L_min, max L_i), with the bursts
 * B the buckets allow at the start. Unlimited dimensions contribute 0.
 */
export function physicalBound(input: BoundInput): Bound {
  const burst = input.burstSeconds ?? 0;
  const concurrencyMs =
    input.concurrency && Number.isFinite(input.concurrency)
      ? input.latencySumMs / input.concurrency
      : 0;
  let requestsMs = 0;
  if (input.requestsPerMinute) {
    const rpm = input.requestsPerMinute;
    const afterBurst = Math.max(0, input.calls - (rpm * burst) / 60);
    requestsMs = (60_000 * afterBurst) / rpm + (afterBurst > 0 ? input.latencyMinMs : 0);
  }
  let tokensMs = 0;
  if (input.tokensPerMinute && input.tokensCharged) {
    const tpm = input.tokensPerMinute;
    const afterBurst = Math.max(0, input.tokensCharged - (tpm * burst) / 60);
    tokensMs = (60_000 * afterBurst) / tpm + (afterBurst > 0 ? input.latencyMinMs : 0);
  }
  const terms = { concurrencyMs, requestsMs, tokensMs, latencyMs: input.latencyMaxMs };
  let binding: Bound["binding"] = "latency";
  let boundMs = terms.latencyMs;
  for (const [name, value] of [
    ["concurrency", concurrencyMs],
    ["requests", requestsMs],
    ["tokens", tokensMs],
  ] as const) {
    if (value > boundMs) {
      boundMs = value;
      binding = name;
    }
  }
  return { boundMs, binding, terms };
}

// How `salvo run --backend auto` places a run's items: in real time (fast, full price, bound by the
// real-time limits: M*) or in the provider's batch API (half price, done when the provider is
// done). A pure function of the time left before the run deadline, the two time estimates, the
// price and the budget, which says what it chose and why.
//
// The rule: the batch API takes as many items as it can return before the deadline (all of them
// with no deadline), provided real time can do the rest by then; real time takes the rest. So
//   - a deadline shorter than the batch API's turnaround: all in real time;
//   - a deadline the batch API meets for every item: all in the batch API;
//   - in between (a bigger batch takes longer, real time is bound by the rate limits): a split,
//     the bulk to the batch API and what the deadline needs in real time; it finishes by the
//     deadline at less than the all-real-time cost.
// The real-time items are the first ones in input order (their answers are written while the
// batch runs); the batch takes the rest.
import { formatUsd } from "../cost/pricing.ts";
import { physicalBound } from "../metrics/physical-bound.ts";
import { formatDuration } from "../progress/format.ts";

/** Real-time plans assume a run takes this many times M* (a run of the demo takes ~1.1x). */
export const REALTIME_PLAN_FACTOR = 1.5;
/** Batch plans assume this many times the expected turnaround (time to notice it ended). */
export const BATCH_PLAN_FACTOR = 1.1;

/** What real time can do: the limits set, and the latency of a call. */
export type RealtimeModel = {
  /** Latency of one call, ms, and where that figure comes from. */
  latencyMs: number;
  latencySource: string;
  /** The most calls in flight (a fixed --concurrency, or what `auto` may reach). */
  concurrency: number;
  requestsPerMinute?: number | undefined;
  /** OpenAI TPM against `tokensPerItem` (prompt + max_tokens); Anthropic ITPM/OTPM. */
  tokensPerMinute?: number | undefined;
  inputTokensPerMinute?: number | undefined;
  outputTokensPerMinute?: number | undefined;
  burstSeconds?: number | undefined;
  /** Mean tokens per item: input, and the output bound (`max_tokens`). */
  inputTokensPerItem: number;
  outputTokensPerItem: number;
};

/** M* for `n` calls under the model's limits, ms. */
export function realtimeBoundMs(model: RealtimeModel, n: number): number {
  if (n <= 0) return 0;
  const L = model.latencyMs;
  const base = {
    calls: n,
    latencySumMs: n * L,
    latencyMinMs: L,
    latencyMaxMs: L,
    concurrency: model.concurrency,
    requestsPerMinute: model.requestsPerMinute,
    burstSeconds: model.burstSeconds,
  };
  const perItem = model.inputTokensPerItem + model.outputTokensPerItem;
  const bounds = [
    physicalBound({
      ...base,
      tokensPerMinute: model.tokensPerMinute,
      tokensCharged: n * perItem,
    }).boundMs,
    physicalBound({
      ...base,
      tokensPerMinute: model.inputTokensPerMinute,
      tokensCharged: n * model.inputTokensPerItem,
    }).boundMs,
    physicalBound({
      ...base,
      tokensPerMinute: model.outputTokensPerMinute,
      tokensCharged: n * model.outputTokensPerItem,
    }).boundMs,
  ];
  return Math.max(...bounds);
}

/** Planned real-time duration for n items, ms: `REALTIME_PLAN_FACTOR` x M*. */
export function plannedRealtimeMs(model: RealtimeModel, n: number): number {
  return n <= 0 ? 0 : REALTIME_PLAN_FACTOR * realtimeBoundMs(model, n);
}

/**
 * Planned time until n items sent to the batch API are downloaded, ms: the expected turnaround of
 * the largest batch they make (batches of at most `perBatch` run side by side), with slack to
 * notice it ended (`BATCH_PLAN_FACTOR`, two polls).
 */
export function plannedBatchMs(
  turnaroundMs: (requests: number) => number,
  n: number,
  perBatch: number,
  pollMinMs: number,
): number {
  if (n <= 0) return 0;
  return BATCH_PLAN_FACTOR * turnaroundMs(Math.min(n, perBatch)) + 2 * pollMinMs;
}

export type PlanInput = {
  /** Items to place (not done, not in a batch already). */
  items: number;
  /** Ms left before the run deadline; undefined: no deadline. */
  remainingMs: number | undefined;
  /** Planned real-time duration for n items, ms. */
  realtimeMs: (n: number) => number;
  /** Planned batch duration for n items, ms (until its results are downloaded). */
  batchMs: (n: number) => number;
  /** Expected cost of every item in real time, USD; undefined when unknown. */
  realtimeCostUsd: number | undefined;
  /** The batch API's price as a share of real time's. */
  batchPriceFactor: number;
  /** What the cost budget leaves, USD; undefined: no cost budget. */
  budgetUsd: number | undefined;
  /** Where the time estimates come from, for the reason. */
  sources: { realtime: string; batch: string };
};

export type Plan = {
  mode: "realtime" | "batch" | "split";
  /** Items to the batch API: the last `batch` items in input order. */
  batch: number;
  /** Items in real time: the first `realtime` items. */
  realtime: number;
  /** What was chosen and why, in a sentence or two. */
  reason: string;
  /** Whether no placement meets the deadline. */
  late: boolean;
  estimates: {
    /** Everything in real time / in the batch API / as planned, ms. */
    realtimeAllMs: number;
    batchAllMs: number;
    plannedMs: number;
    /** Expected USD: everything in real time / in the batch API / as planned; undefined: unknown. */
    realtimeAllUsd: number | undefined;
    batchAllUsd: number | undefined;
    plannedUsd: number | undefined;
  };
};

const s = formatDuration;

/** The largest n in [0, max] with `ok(n)`, for `ok` true up to some n and false after. */
function largest(max: number, ok: (n: number) => boolean): number {
  if (ok(max)) return max;
  let lo = 0; // ok(0) is assumed
  let hi = max; // !ok(hi)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Places `items` items for `--backend auto`. */
export function planAuto(input: PlanInput): Plan {
  const N = input.items;
  const factor = input.batchPriceFactor;
  const usd = (batch: number) =>
    input.realtimeCostUsd === undefined || N === 0
      ? undefined
      : (input.realtimeCostUsd * (N - batch + batch * factor)) / N;
  const realtimeAllMs = input.realtimeMs(N);
  const batchAllMs = input.batchMs(N);
  const plan = (mode: Plan["mode"], batch: number, reason: string, late = false): Plan => {
    const plannedMs = Math.max(batch > 0 ? input.batchMs(batch) : 0, input.realtimeMs(N - batch));
    const plannedUsd = usd(batch);
    let why = reason;
    if (input.budgetUsd !== undefined && plannedUsd !== undefined && plannedUsd > input.budgetUsd)
      why += `; its expected cost ${formatUsd(plannedUsd)} is over what --max-cost leaves (${formatUsd(input.budgetUsd)}): the budget will stop it before the end`;
    return {
      mode,
      batch,
      realtime: N - batch,
      reason: why,
      late,
      estimates: {
        realtimeAllMs,
        batchAllMs,
        plannedMs,
        realtimeAllUsd: usd(0),
        batchAllUsd: usd(N),
        plannedUsd,
      },
    };
  };
  const times = `real time ${s(realtimeAllMs)} (${input.sources.realtime}), batch API ${s(batchAllMs)} (${input.sources.batch})`;
  if (N === 0) return plan("batch", 0, "nothing left to place");
  const R = input.remainingMs;
  if (R === undefined)
    return plan(
      "batch",
      N,
      `no --run-deadline: all ${N} items to the batch API at ${Math.round(factor * 100)}% of the real-time price (expected ${s(batchAllMs)}; the provider allows up to 24h)`,
    );
  const left = `${s(Math.max(0, R))} left before the run deadline`;
  // The most the batch API can return in time, and the fewest real time must take.
  const batchFits = largest(N, (n) => n === 0 || input.batchMs(n) <= R);
  if (batchFits === N)
    return plan(
      "batch",
      N,
      `the batch API is expected back in ${s(batchAllMs)} for all ${N} items, within the ${left}: all at ${Math.round(factor * 100)}% of the real-time price (${times})`,
    );
  if (batchFits === 0) {
    const late = realtimeAllMs > R;
    return plan(
      "realtime",
      0,
      `the batch API is not expected back within the ${left} (${s(input.batchMs(1))} even for one item): all ${N} items in real time (${times})${late ? `; real time needs about ${s(realtimeAllMs)} too, so the run will end after the deadline` : ""}`,
      late,
    );
  }
  const realtimeCount = N - batchFits;
  const late = input.realtimeMs(realtimeCount) > R;
  return plan(
    "split",
    batchFits,
    late
      ? `no placement meets the ${left} (${times}): the most the batch API can return in time, ${batchFits} items, go to it, and the other ${realtimeCount} run in real time, which will end after the deadline`
      : `a split meets the ${left} at the lowest cost: ${batchFits} items to the batch API (expected back in ${s(input.batchMs(batchFits))}) and the first ${realtimeCount} in real time (about ${s(input.realtimeMs(realtimeCount))}); all in real time would take ${s(realtimeAllMs)}, all in the batch API ${s(batchAllMs)}`,
    late,
  );
}

/**
 * The next poll of a batch, ms from now: a fifth of its age (backoff), within the poll bounds,
 * but no later than when it is expected to end (then each poll may find it done).
 */
export function pollIntervalMs(p: {
  ageMs: number;
  expectedMs: number;
  minMs: number;
  maxMs: number;
}): number {
  let interval = Math.min(p.maxMs, Math.max(p.minMs, p.ageMs / 5));
  const expectedIn = p.expectedMs - p.ageMs;
  if (expectedIn > 0) interval = Math.min(interval, Math.max(p.minMs, expectedIn));
  return interval;
}

/**
 * What the run deadline asks of batches not back yet. Real time needs `neededMs` for their
 * items; `marginMs` keeps room to notice a cancelled batch end and download it.
 * - `wait` while more than `neededMs + marginMs` is left (the fallback is then viable);
 * - `cancel` at the last call: the fallback was viable and is about to stop being;
 * - `abandon` a cancelled batch still not ended when real time must start.
 * A batch whose fallback was never viable (a split sent it there because real time could not run
 * its items in time) is waited for: cancelling it would not meet the deadline either.
 */
export function lastCallAction(p: {
  remainingMs: number;
  neededMs: number;
  marginMs: number;
  /** Whether the fallback was viable at an earlier poll. */
  viable: boolean;
  /** Whether cancellation was already asked for. */
  cancelled: boolean;
}): { action: "wait" | "cancel" | "abandon"; viable: boolean } {
  if (p.remainingMs > p.neededMs + p.marginMs) return { action: "wait", viable: true };
  if (!p.viable) return { action: "wait", viable: false };
  if (!p.cancelled) return { action: "cancel", viable: true };
  return { action: p.remainingMs <= p.neededMs ? "abandon" : "wait", viable: true };
}

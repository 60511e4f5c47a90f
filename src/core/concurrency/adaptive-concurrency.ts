// Adaptive concurrency (`concurrency: "auto"`): finds how many calls the provider can take at once
// without queueing them, and follows it as it changes. Four rules, in order of authority:
//
// 1. A ceiling from Little's law when the rate limits are known: c_max = ceil(h * X* * L_p50) with
//    X* = min(RPM/60, TPM/(60 * k), ...) requests/s. More concurrency than the quota can feed only
//    adds latency and 429s.
// 2. Multiplicative decrease on overload signals (429 rate limit, 529/503 overload, timeouts), at
//    most once per round trip: a burst of failures caused by one overshoot is one event.
// 3. A latency brake on inflation: each call's latency over what it would take on an idle server
//    given its output length (the lower envelope of recent latencies by output length, see
//    latency-envelope.ts), smoothed over a few samples, against a baseline (the windowed minimum
//    of a four-times longer average of it, taken once the envelope has settled: it absorbs the
//    provider's ordinary noise and the envelope's early, too-high minima). Above `tolerance`
//    times the baseline the server is queueing our calls, and the limit moves towards g * limit,
//    g = clamp(tolerance * baseline / inflation, 0.5, 1): the concurrency that would bring it back
//    within tolerance. This is how a server with few slots and a long queue shows (seed 004).
//    Comparing latency per token instead reads a mix of short and long answers as queueing.
// 4. Growth while the pipe is full (inFlight >= limit / 2) and latency is within tolerance: slow
//    start (+1 per success, doubling per round trip) until the first congestion event; then +1
//    per round trip, shaped around the "knee" (the limit at the last congestion event): close
//    half the gap per round trip below it, probe slowly near it, accelerate past it.
//
// Quota exhaustion, client errors, server errors, task errors and cancellations are not congestion
// and are ignored. Core code: no I/O and no provider knowledge; time comes from the samples.

import { ConfigError } from "../../errors.ts";
import type {
  AttemptSample,
  AttemptStart,
  ConcurrencyController,
} from "./concurrency-controller.ts";
import { Ema, WindowedMin } from "./ema.ts";
import { LatencyEnvelope } from "./latency-envelope.ts";

export type AdaptiveConcurrencyOptions = {
  /**
   * The starting limit, in [min, max]. Low enough that a server with a few slots answers some
   * of the first calls unqueued, which is how the controller learns its unloaded latency.
   * @default 4 (or min/max, if 4 is outside them)
   */
  initial?: number | undefined;
  /** The lowest limit, an integer >= 1. @default 1 */
  min?: number | undefined;
  /** The highest limit, an integer >= min. @default 256 */
  max?: number | undefined;
  /** Multiplier on a 429 rate limit, in (0, 1). @default 0.7 */
  rateLimitBackoff?: number | undefined;
  /** Multiplier on a 529/503 overload, in (0, 1). @default 0.5 */
  overloadBackoff?: number | undefined;
  /** Multiplier on an attempt timeout, in (0, 1). @default 0.5 */
  timeoutBackoff?: number | undefined;
  /**
   * How far smoothed latency inflation may rise above its baseline before the brake acts, as a
   * ratio > 1. Lower keeps latency closer to unloaded but reacts to noise. @default 1.25
   */
  tolerance?: number | undefined;
  /** Fraction of the way to g * limit that one brake step (at most one per round trip) moves, in (0, 1]. @default 0.5 */
  brakeSmoothing?: number | undefined;
  /** Samples in the short average of latency inflation. @default 8 */
  shortWindow?: number | undefined;
  /**
   * Samples over which the envelope keeps its minima (and the baseline a fifth of it); a
   * permanent change of the provider's speed is learned within twice this. @default 500
   */
  baselineWindow?: number | undefined;
  /** Samples in the smoothed round-trip time. @default 16 */
  rttWindow?: number | undefined;
  /** Growth per round trip while within one of the knee, in (0, 1]. @default 0.25 */
  probeRate?: number | undefined;
  /** Headroom h of the Little's-law ceiling ceil(h * X* * L_p50), >= 1. @default 1.2 */
  headroom?: number | undefined;
  /** Known requests per minute (also learnable with `setRateLimits`). @default undefined */
  requestsPerMinute?: number | undefined;
  /** Known input + output tokens per minute (OpenAI TPM). @default undefined */
  tokensPerMinute?: number | undefined;
  /** Known input tokens per minute (Anthropic ITPM). @default undefined */
  inputTokensPerMinute?: number | undefined;
  /** Known output tokens per minute (Anthropic OTPM). @default undefined */
  outputTokensPerMinute?: number | undefined;
  /**
   * Tokens charged per request (k), for the TPM ceiling. @default learned from the samples'
   * `tokens`; without either, TPM gives no ceiling
   */
  tokensPerRequest?: number | undefined;
};

/** Per-minute limits the controller may learn after construction; undefined leaves one as is. */
export type KnownRateLimits = {
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  inputTokensPerMinute?: number | undefined;
  outputTokensPerMinute?: number | undefined;
};

/**
 * An attempt's sample, optionally with what the provider charged it (the scheduler knows it from
 * the reconcile): the token ceiling learns the tokens per request from these.
 */
export type AdaptiveSample = AttemptSample & {
  /** Input + output tokens charged. */
  tokens?: number | undefined;
  /** Input tokens charged. */
  inputTokens?: number | undefined;
};

/** Why the limit last went down. */
export type CongestionKind = "rate_limit" | "overload" | "timeout" | "latency";

/** The controller's state, for reports, tests and debugging. */
export type AdaptiveState = {
  /** The integer limit the scheduler uses. */
  limit: number;
  /** The limit before flooring. */
  value: number;
  phase: "slow-start" | "avoidance";
  /** The limit at the last congestion event (undefined before the first). */
  knee: number | undefined;
  /** Smoothed round-trip time of successes, ms. */
  rttMs: number | undefined;
  /** Short average of latency inflation: latency over the unloaded latency for its length. */
  inflation: number | undefined;
  /** Baseline inflation: the lowest long average lately (the provider's ordinary noise). */
  baselineInflation: number | undefined;
  /** The Little's-law ceiling, when the limits are known. */
  ceiling: number | undefined;
  /** Decreases so far, by cause. */
  decreases: Record<CongestionKind, number>;
};

const P50_SAMPLES = 64;

export class AdaptiveConcurrency implements ConcurrencyController {
  readonly #min: number;
  readonly #max: number;
  readonly #backoff: Record<"rate_limit" | "overload" | "timeout", number>;
  readonly #tolerance: number;
  readonly #brakeSmoothing: number;
  readonly #probeRateOption: number;
  #probeRate: number;
  readonly #headroom: number;
  readonly #limits: Record<keyof KnownRateLimits, number | undefined>;
  readonly #tokensPerRequestOption: number | undefined;
  readonly #listeners = new Set<(limit: number) => void>();

  #value: number;
  #limit: number;
  #slowStart = true;
  #knee: number | undefined;
  #lastDecreaseAt = Number.NEGATIVE_INFINITY;
  #firstSuccessAt: number | undefined;
  readonly #rtt: Ema;
  readonly #short: Ema;
  readonly #long: Ema;
  readonly #baseline: WindowedMin;
  readonly #envelope: LatencyEnvelope;
  readonly #tokens = new Ema(100);
  readonly #inputTokens = new Ema(100);
  readonly #outputTokens = new Ema(100);
  readonly #latencies: number[] = [];
  #latencyNext = 0;
  #p50: number | undefined;
  #ceiling: number | undefined;
  readonly #decreases: Record<CongestionKind, number> = {
    rate_limit: 0,
    overload: 0,
    timeout: 0,
    latency: 0,
  };

  constructor(options: AdaptiveConcurrencyOptions = {}) {
    this.#min = integer("min", options.min ?? 1, 1);
    this.#max = integer("max", options.max ?? 256, this.#min);
    const initial = options.initial ?? Math.min(this.#max, Math.max(this.#min, 4));
    if (!(typeof initial === "number" && initial >= this.#min && initial <= this.#max)) {
      throw new ConfigError({
        field: "concurrency.initial",
        expected: `a number in [${this.#min}, ${this.#max}]`,
        got: initial,
      });
    }
    this.#backoff = {
      rate_limit: ratio("rateLimitBackoff", options.rateLimitBackoff ?? 0.7),
      overload: ratio("overloadBackoff", options.overloadBackoff ?? 0.5),
      timeout: ratio("timeoutBackoff", options.timeoutBackoff ?? 0.5),
    };
    this.#tolerance = above("tolerance", options.tolerance ?? 1.25, 1, false);
    this.#brakeSmoothing = fraction("brakeSmoothing", options.brakeSmoothing ?? 0.5);
    this.#probeRateOption = fraction("probeRate", options.probeRate ?? 0.25);
    this.#probeRate = this.#probeRateOption;
    this.#headroom = above("headroom", options.headroom ?? 1.2, 1, true);
    const shortWindow = integer("shortWindow", options.shortWindow ?? 8, 1);
    this.#short = new Ema(shortWindow);
    this.#long = new Ema(shortWindow * 4);
    const baselineWindow = integer("baselineWindow", options.baselineWindow ?? 500, 1);
    this.#baseline = new WindowedMin(Math.ceil(baselineWindow / 5));
    this.#envelope = new LatencyEnvelope(baselineWindow);
    this.#rtt = new Ema(integer("rttWindow", options.rttWindow ?? 16, 1));
    this.#tokensPerRequestOption = optionalPositive("tokensPerRequest", options.tokensPerRequest);
    this.#limits = {
      requestsPerMinute: optionalPositive("requestsPerMinute", options.requestsPerMinute),
      tokensPerMinute: optionalPositive("tokensPerMinute", options.tokensPerMinute),
      inputTokensPerMinute: optionalPositive("inputTokensPerMinute", options.inputTokensPerMinute),
      outputTokensPerMinute: optionalPositive(
        "outputTokensPerMinute",
        options.outputTokensPerMinute,
      ),
    };
    this.#value = initial;
    this.#limit = Math.floor(initial);
    this.#updateCeiling();
  }

  /** The integer limit, in [min, max] and under the ceiling. */
  get limit(): number {
    return this.#limit;
  }

  get state(): AdaptiveState {
    return {
      limit: this.#limit,
      value: this.#value,
      phase: this.#slowStart ? "slow-start" : "avoidance",
      knee: this.#knee,
      rttMs: this.#rtt.value,
      inflation: this.#short.value,
      baselineInflation: this.#baseline.value,
      ceiling: this.#ceiling,
      decreases: { ...this.#decreases },
    };
  }

  subscribe(listener: (limit: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Tells the controller the provider's per-minute limits (e.g. learned from rate-limit headers);
   * the Little's-law ceiling applies from the next sample, and at once if it lowers the limit.
   */
  setRateLimits(limits: KnownRateLimits): void {
    for (const key of Object.keys(this.#limits) as Array<keyof KnownRateLimits>) {
      const value = limits[key];
      if (value !== undefined) this.#limits[key] = optionalPositive(key, value);
    }
    this.#updateCeiling();
  }

  onStart(_start: AttemptStart): void {}

  onOutcome(sample: AdaptiveSample): void {
    switch (sample.result) {
      case "success":
        this.#success(sample);
        return;
      case "rate_limit":
      case "overload":
      case "timeout":
        this.#congestion(sample.result, sample);
        return;
      default:
        // quota, client, server, network, invalid_response, task_error, cancelled: no signal.
        return;
    }
  }

  #success(sample: AdaptiveSample): void {
    const { latencyMs, now } = sample;
    const startedAt = now - latencyMs;
    this.#rtt.add(latencyMs);
    if (sample.tokens !== undefined) this.#tokens.add(sample.tokens);
    if (sample.inputTokens !== undefined) this.#inputTokens.add(sample.inputTokens);
    if (sample.outputTokens !== undefined) this.#outputTokens.add(sample.outputTokens);
    this.#recordLatency(latencyMs);

    // A sample that started before the last decrease saw the old queue: it says nothing about
    // the current limit, so it neither feeds the short average nor moves the limit.
    if (startedAt < this.#lastDecreaseAt) return;
    // The first wave pays for connection setup: its latency is not the server's baseline. It
    // does not grow the limit either, so the second wave runs at the initial limit and shows the
    // unloaded latency before slow start can build a queue.
    this.#firstSuccessAt ??= now;
    if (startedAt < this.#firstSuccessAt) return;
    const outputTokens = sample.outputTokens ?? 0;
    const expected = this.#envelope.expected(outputTokens);
    this.#envelope.add(outputTokens, latencyMs);
    // Until the envelope knows this output length there is nothing to compare with.
    if (expected === undefined) {
      this.#grow(sample);
      return;
    }
    const inflation = latencyMs / expected;
    const short = this.#short.add(inflation);
    const long = this.#long.add(inflation);
    // The baseline is the lowest long average (four times the short one's samples, so the
    // provider's ordinary noise hardly moves it), read once the envelope has settled for this
    // length; the short average rising above it is queueing.
    if (this.#long.count >= 3 && this.#envelope.settled(outputTokens)) this.#baseline.add(long);
    const baseline = this.#baseline.value;
    if (baseline === undefined) {
      this.#grow(sample);
      return;
    }
    const gradient = Math.min(1, (this.#tolerance * baseline) / short);

    if (gradient < 1) {
      // Enough fresh samples to trust the average, and one round trip since the last decrease.
      if (this.#short.count >= 3 && this.#roundTripSince(now)) {
        // Leaving slow start, the queue it built is measured by the newest sample (the average
        // still remembers the unqueued round trips): go straight to the limit that drains it,
        // as TCP leaves slow start at once, at most to a quarter. Afterwards the brake is
        // gentle, a smoothed step of at most half, as noise can look like a queue.
        const fresh = Math.min(gradient, (this.#tolerance * baseline) / inflation);
        const next = this.#slowStart
          ? Math.max(0.25, fresh) * this.#value
          : this.#value - this.#brakeSmoothing * (1 - Math.max(0.5, gradient)) * this.#value;
        this.#decrease("latency", next, now);
      }
      return;
    }
    this.#grow(sample);
  }

  /** Grows only while the pipe is full: an app-limited run says nothing about more concurrency. */
  #grow(sample: AdaptiveSample): void {
    if (sample.inFlight >= this.#value / 2) this.#set(this.#value + this.#increment());
  }

  /** The growth per success; `value` successes make one round trip. */
  #increment(): number {
    const value = this.#value;
    if (this.#slowStart || this.#knee === undefined) return 1;
    const gap = value - this.#knee;
    // Below the knee: close half the gap per round trip (at least +1).
    if (gap < -1) return Math.max(1, -gap / 2) / value;
    // Near it: probe carefully.
    if (gap <= 1) return this.#probeRate / value;
    // Past it: the knee has moved; the excess doubles per round trip (at most slow start's +1).
    return Math.min(1, gap / value);
  }

  #congestion(kind: "rate_limit" | "overload" | "timeout", sample: AdaptiveSample): void {
    const startedAt = sample.now - sample.latencyMs;
    if (startedAt <= this.#lastDecreaseAt || !this.#roundTripSince(sample.now)) return;
    this.#decrease(kind, this.#value * this.#backoff[kind], sample.now);
  }

  #roundTripSince(now: number): boolean {
    return now - this.#lastDecreaseAt >= (this.#rtt.value ?? 0);
  }

  #decrease(kind: CongestionKind, next: number, now: number): void {
    this.#decreases[kind]++;
    this.#slowStart = false;
    // Failing again at the same knee: probe it half as often (down to 1/16 of the rate), so a
    // hard limit such as "429 above K in flight" costs fewer and fewer failures.
    const sameKnee = this.#knee !== undefined && Math.abs(this.#value - this.#knee) <= 1.5;
    this.#probeRate =
      kind !== "latency" && sameKnee
        ? Math.max(this.#probeRateOption / 16, this.#probeRate / 2)
        : this.#probeRateOption;
    // After a latency brake the new value is the estimate of the knee; after a failure the knee
    // is where the failure happened.
    this.#knee = Math.min(kind === "latency" ? next : this.#value, this.#max);
    this.#lastDecreaseAt = now;
    this.#short.reset();
    this.#set(next);
  }

  #recordLatency(latencyMs: number): void {
    if (this.#latencies.length < P50_SAMPLES) this.#latencies.push(latencyMs);
    else this.#latencies[this.#latencyNext] = latencyMs;
    this.#latencyNext = (this.#latencyNext + 1) % P50_SAMPLES;
    // The median is re-read every 8 samples: the ceiling moves slowly and sorting is not free.
    if (this.#latencyNext % 8 === 0 || this.#p50 === undefined) {
      const sorted = this.#latencies.slice().sort((a, b) => a - b);
      this.#p50 = sorted[Math.floor(sorted.length / 2)];
      this.#updateCeiling();
    }
  }

  /** ceil(h * X* * L_p50): the concurrency the quota can keep busy, with headroom. */
  #updateCeiling(): void {
    const p50 = this.#p50;
    const rates: number[] = [];
    const limits = this.#limits;
    const perRequest = this.#tokensPerRequestOption ?? this.#tokens.value;
    if (limits.requestsPerMinute !== undefined) rates.push(limits.requestsPerMinute / 60);
    if (limits.tokensPerMinute !== undefined && perRequest !== undefined && perRequest > 0) {
      rates.push(limits.tokensPerMinute / 60 / perRequest);
    }
    const input = this.#inputTokens.value;
    if (limits.inputTokensPerMinute !== undefined && input !== undefined && input > 0) {
      rates.push(limits.inputTokensPerMinute / 60 / input);
    }
    const output = this.#outputTokens.value;
    if (limits.outputTokensPerMinute !== undefined && output !== undefined && output > 0) {
      rates.push(limits.outputTokensPerMinute / 60 / output);
    }
    if (p50 === undefined || rates.length === 0) {
      this.#ceiling = undefined;
      this.#set(this.#value);
      // Limits known before the first answer: the rate limiter paces the first wave (a static
      // limit would send its burst too), and the ceiling applies from the first answer. Slow
      // start would leave the buckets' refill unused for the round trips it takes to double.
      const known = Object.values(limits).some((limit) => limit !== undefined);
      if (known && p50 === undefined && this.#slowStart) this.#set(this.#max);
      return;
    }
    const throughput = Math.min(...rates);
    const fed = throughput * (p50 / 1000);
    this.#ceiling = Math.max(this.#min, Math.ceil(this.#headroom * fed));
    // Slow start probes for a capacity nobody told us; the quota's is known: go there at once,
    // rather than leave the buckets' refill unused for the round trips doubling would take. A
    // limit above the new ceiling comes down to it at once.
    this.#set(this.#slowStart && fed > this.#value ? fed : this.#value);
  }

  #set(value: number): void {
    const upper = Math.min(this.#max, this.#ceiling ?? Number.POSITIVE_INFINITY);
    this.#value = Math.min(upper, Math.max(this.#min, value));
    const limit = Math.floor(this.#value);
    if (limit === this.#limit) return;
    this.#limit = limit;
    for (const listener of this.#listeners) listener(limit);
  }
}

function integer(field: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: `an integer >= ${min}`,
      got: value,
    });
  }
  return value;
}

function ratio(field: string, value: number): number {
  if (typeof value !== "number" || !(value > 0 && value < 1)) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: "a number in (0, 1)",
      got: value,
    });
  }
  return value;
}

function fraction(field: string, value: number): number {
  if (typeof value !== "number" || !(value > 0 && value <= 1)) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: "a number in (0, 1]",
      got: value,
    });
  }
  return value;
}

function above(field: string, value: number, min: number, inclusive: boolean): number {
  const ok =
    typeof value === "number" && Number.isFinite(value) && (inclusive ? value >= min : value > min);
  if (!ok) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: `a finite number ${inclusive ? ">=" : ">"} ${min}`,
      got: value,
    });
  }
  return value;
}

function optionalPositive(field: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: "a finite number > 0",
      got: value,
    });
  }
  return value;
}

// Every rate limit of one provider key, admitted atomically: a charge is taken from all buckets
// or from none, and the wait is the longest of the buckets' waits (one timer, not polling).
// Also keeps the reservations of attempts still in flight, so a provider's "remaining" reading
// can be corrected for the calls it has not seen yet.

import type { RateLimitSnapshot } from "../rate-limit-snapshot.ts";
import type { Charge, Limit, RateDimension } from "./limit.ts";
import { RATE_DIMENSIONS } from "./limit.ts";
import { TokenBucket } from "./token-bucket.ts";

/** Actual usage reported after a call; a dimension left out keeps its estimate. */
export type Usage = {
  /** Input + output tokens the limiter charged. */
  tokens?: number | undefined;
  /** Input tokens charged. */
  inputTokens?: number | undefined;
  /** Output tokens charged (OpenAI keeps charging `max_tokens`, whatever the answer's length). */
  outputTokens?: number | undefined;
  /**
   * Output tokens the answer really had, when they differ from those charged: the adaptive
   * controller explains latency by them. @default outputTokens
   */
  generatedTokens?: number | undefined;
};

export type RateLimitsOptions = {
  /** Per-minute limits by dimension; a missing dimension is unlimited (until learned). */
  limits: Partial<Record<RateDimension, number>>;
  /** Seconds of the per-minute rate each bucket holds. */
  burstSeconds: number;
  /** See `TokenBucketOptions.marginMs`. @default 0 */
  marginMs?: number;
  /** Create or lower a bucket from a snapshot's `limit`. */
  learnLimits: boolean;
  now: number;
};

export class RateLimits {
  readonly #burstSeconds: number;
  readonly #marginMs: number;
  readonly #learn: boolean;
  #buckets: Limit[] = [];
  readonly #byDimension = new Map<RateDimension, Limit>();
  /** Charges of attempts that hold a reservation (started, not yet ended). */
  readonly #reserved: Charge = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 };

  constructor(options: RateLimitsOptions) {
    this.#burstSeconds = options.burstSeconds;
    this.#marginMs = options.marginMs ?? 0;
    this.#learn = options.learnLimits;
    for (const dimension of RATE_DIMENSIONS) {
      const limit = options.limits[dimension];
      if (limit !== undefined) this.#add(dimension, limit, options.now);
    }
  }

  /** The bucket of a dimension, if that dimension is limited. */
  bucket(dimension: RateDimension): Limit | undefined {
    return this.#byDimension.get(dimension);
  }

  /** 0 if `charge` fits every bucket now; else ms until all fit; Infinity if one never can. */
  waitMs(charge: Charge, now: number): number {
    const buckets = this.#buckets;
    let wait = 0;
    for (let i = 0; i < buckets.length; i++) {
      const bucket = buckets[i]!;
      const w = bucket.waitMs(charge[bucket.dimension], now);
      if (w > wait) wait = w;
    }
    return wait;
  }

  /** The first dimension where `charge` exceeds the whole per-minute limit (and one unit). */
  tooLarge(charge: Charge): { dimension: RateDimension; limit: number; cost: number } | undefined {
    for (const bucket of this.#buckets) {
      const cost = charge[bucket.dimension];
      if (cost > bucket.largestCost) {
        return { dimension: bucket.dimension, limit: bucket.limitPerMinute, cost };
      }
    }
    return undefined;
  }

  /** Takes `charge` from every bucket and reserves it until `release`. */
  take(charge: Charge, now: number): void {
    const buckets = this.#buckets;
    for (let i = 0; i < buckets.length; i++) {
      const bucket = buckets[i]!;
      bucket.take(charge[bucket.dimension], now);
    }
    const r = this.#reserved;
    r.requests += charge.requests;
    r.tokens += charge.tokens;
    r.inputTokens += charge.inputTokens;
    r.outputTokens += charge.outputTokens;
  }

  /** Ends the reservation of an attempt that took `charge` (its call is over). */
  release(charge: Charge): void {
    const r = this.#reserved;
    r.requests -= charge.requests;
    r.tokens -= charge.tokens;
    r.inputTokens -= charge.inputTokens;
    r.outputTokens -= charge.outputTokens;
  }

  /** Takes `charge` from every bucket without reserving it (an attempt no longer in flight). */
  debit(charge: Charge, now: number): void {
    for (const bucket of this.#buckets) bucket.take(charge[bucket.dimension], now);
  }

  /** Gives a whole charge back (the attempt made no call). */
  refund(charge: Charge, now: number): void {
    for (const bucket of this.#buckets) bucket.give(charge[bucket.dimension], now);
  }

  /**
   * Corrects an estimate with the real usage: refunds what was over-estimated, takes what was
   * under-estimated (which may drive a bucket negative). `tokens` defaults to input + output.
   * Returns the estimate updated to the usage, so a later reconcile does not apply it twice.
   * `reserved`: the attempt still holds its reservation, which is updated to match.
   */
  reconcile(estimate: Charge, usage: Usage, now: number, reserved: boolean): Charge {
    const tokens =
      usage.tokens ??
      (usage.inputTokens !== undefined && usage.outputTokens !== undefined
        ? usage.inputTokens + usage.outputTokens
        : undefined);
    const actual: Charge = {
      requests: estimate.requests,
      tokens: tokens ?? estimate.tokens,
      inputTokens: usage.inputTokens ?? estimate.inputTokens,
      outputTokens: usage.outputTokens ?? estimate.outputTokens,
    };
    for (const bucket of this.#buckets) {
      const delta = actual[bucket.dimension] - estimate[bucket.dimension];
      if (delta < 0) bucket.give(-delta, now);
      else if (delta > 0) bucket.take(delta, now);
    }
    if (reserved) {
      this.release(estimate);
      const r = this.#reserved;
      r.requests += actual.requests;
      r.tokens += actual.tokens;
      r.inputTokens += actual.inputTokens;
      r.outputTokens += actual.outputTokens;
    }
    return actual;
  }

  /**
   * Applies what a provider said about its limits. For each dimension:
   * - `limit`: creates the bucket if the dimension was not limited (when learning), or lowers a
   *   configured limit that is higher than the provider's (never raises one).
   * - `remaining`: level <- min(level, remaining + refill since `sinceMs` - unseen). A provider
   *   checks its limits when a request arrives, so `remaining` describes its bucket then (about
   *   the reporting attempt's start, `sinceMs`); both buckets have refilled at the same rate
   *   since. `unseen` is what attempts in flight reserved that the provider cannot have counted
   *   (the caller knows which; without it, every reservation counts: the sound side).
   * - `resetMs` of a fixed window (`fixedWindow`, Azure's integer seconds): nothing comes back
   *   before the window ends, so the bucket does not refill until then (`hold`), and a
   *   "remaining: 0, reset: 40 s" does not turn into a 429 loop. A continuous provider's reset
   *   (OpenAI, Anthropic) is the time to refill, which the bucket's own refill already models.
   */
  applySnapshot(
    snapshot: RateLimitSnapshot,
    unseen: Charge | undefined,
    now: number,
    sinceMs: number = now,
  ): void {
    for (const dimension of RATE_DIMENSIONS) {
      const reading = snapshot[dimension];
      if (reading === undefined) continue;
      let bucket = this.#byDimension.get(dimension);
      const limit = reading.limit;
      if (limit !== undefined && Number.isFinite(limit) && limit > 0) {
        if (bucket === undefined) {
          if (this.#learn) bucket = this.#add(dimension, limit, now);
        } else if (limit < bucket.limitPerMinute) {
          bucket.setLimit(limit, now);
        }
      }
      const remaining = reading.remaining;
      if (bucket !== undefined && remaining !== undefined && Number.isFinite(remaining)) {
        const others = unseen ? unseen[dimension] : this.#reserved[dimension];
        const refill = (bucket.limitPerMinute * Math.max(0, now - sinceMs)) / 60_000;
        bucket.lowerTo(remaining + refill - Math.max(0, others), now);
        const resetMs = reading.resetMs;
        if (
          reading.fixedWindow === true &&
          resetMs !== undefined &&
          Number.isFinite(resetMs) &&
          resetMs > 0
        ) {
          bucket.hold(now + resetMs, now);
        }
      }
    }
  }

  /** Empties every bucket that is above zero (a rate-limit answer without readings). */
  drain(now: number): void {
    for (const bucket of this.#buckets) bucket.lowerTo(0, now);
  }

  #add(dimension: RateDimension, limitPerMinute: number, now: number): Limit {
    const bucket = new TokenBucket({
      dimension,
      limitPerMinute,
      burstSeconds: this.#burstSeconds,
      marginMs: this.#marginMs,
      now,
    });
    this.#byDimension.set(dimension, bucket);
    this.#buckets = [...this.#buckets, bucket];
    return bucket;
  }
}

// A tenant's own request and token rates, inside the upstream's. Each request reserves its place
// at once (the buckets may go into debt), which fixes when it may go: requests leave in arrival
// order at the tenant's rate, and the wait is known up front, so a request that would wait
// longer than the caller can is refused at once with an exact retry-after. The token reservation
// (prompt estimate + max_tokens) is reconciled with the tokens the answer used.
import type { Clock } from "../core/clock.ts";
import { TokenBucket } from "../core/limits/token-bucket.ts";

export type TenantRateLimits = {
  /** Requests per minute. @default unlimited */
  requestsPerMinute?: number | undefined;
  /** Input + output tokens per minute (the prompt estimate + max_tokens are reserved). @default unlimited */
  tokensPerMinute?: number | undefined;
  /** Seconds of each per-minute limit that may go at once. @default 1 */
  burstSeconds?: number | undefined;
};

/** A request's hold on the tenant's rates. */
export type RateHold = {
  /** How long the request must wait before it may go, ms. */
  waitMs: number;
  /** Gives the whole reservation back (the request did not go). */
  cancel(): void;
  /** Reconciles the token reservation with what the answer used. */
  settle(tokensUsed: number | undefined): void;
};

export type RateRefusal = {
  /** When a request of this size could go, ms from now (Infinity: never, it is too large). */
  retryAfterMs: number;
  dimension: "requests" | "tokens";
  limitPerMinute: number;
};

export class TenantLimiter {
  readonly #clock: Clock;
  readonly #requests: TokenBucket | undefined;
  readonly #tokens: TokenBucket | undefined;

  constructor(limits: TenantRateLimits, clock: Clock) {
    this.#clock = clock;
    const now = clock.now();
    const burstSeconds = limits.burstSeconds ?? 1;
    this.#requests =
      limits.requestsPerMinute === undefined
        ? undefined
        : new TokenBucket({
            dimension: "requests",
            limitPerMinute: limits.requestsPerMinute,
            burstSeconds,
            now,
          });
    this.#tokens =
      limits.tokensPerMinute === undefined
        ? undefined
        : new TokenBucket({
            dimension: "tokens",
            limitPerMinute: limits.tokensPerMinute,
            burstSeconds,
            now,
          });
  }

  /** The limits in force, per minute. */
  get limits(): { requestsPerMinute: number | undefined; tokensPerMinute: number | undefined } {
    return {
      requestsPerMinute: this.#requests?.limitPerMinute,
      tokensPerMinute: this.#tokens?.limitPerMinute,
    };
  }

  /**
   * Reserves one request of `tokens` (its estimate). Refused, with when to retry, if it would
   * have to wait longer than `maxWaitMs`; otherwise held, with the wait before it may go.
   */
  reserve(tokens: number, maxWaitMs: number): RateHold | RateRefusal {
    const now = this.#clock.now();
    const requestWait = this.#requests?.waitMs(1, now) ?? 0;
    const tokenWait = this.#tokens?.waitMs(tokens, now) ?? 0;
    const waitMs = Math.max(requestWait, tokenWait);
    if (waitMs > maxWaitMs || waitMs === Number.POSITIVE_INFINITY) {
      const byTokens = tokenWait > requestWait;
      const bucket = (byTokens ? this.#tokens : this.#requests)!;
      return {
        retryAfterMs: waitMs - (Number.isFinite(maxWaitMs) ? Math.max(0, maxWaitMs) : 0),
        dimension: byTokens ? "tokens" : "requests",
        limitPerMinute: bucket.limitPerMinute,
      };
    }
    this.#requests?.take(1, now);
    this.#tokens?.take(tokens, now);
    let open = true;
    return {
      waitMs,
      cancel: () => {
        if (!open) return;
        open = false;
        const at = this.#clock.now();
        this.#requests?.give(1, at);
        this.#tokens?.give(tokens, at);
      },
      settle: (used) => {
        if (!open) return;
        open = false;
        if (used === undefined || this.#tokens === undefined) return;
        const at = this.#clock.now();
        if (used < tokens) this.#tokens.give(tokens - used, at);
        else if (used > tokens) this.#tokens.take(used - tokens, at);
      },
    };
  }
}

export function isRefusal(value: RateHold | RateRefusal): value is RateRefusal {
  return "retryAfterMs" in value;
}

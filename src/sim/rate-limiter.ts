// One pool's rate limits: the RPM, TPM, ITPM and OTPM buckets that are configured, admitted
// atomically (a request is charged to every bucket or to none).

import type { PoolConfig } from "./sim-config.ts";
import { type Now, TokenBucket } from "./token-bucket.ts";

/** Which limit refused a request, named as OpenAI's error `type` and Anthropic's headers do. */
export type LimitDimension = "requests" | "tokens" | "input_tokens" | "output_tokens";

/** What a request costs at arrival. Requests always cost 1. */
export type Charge = {
  /** OpenAI-style TPM charge: prompt tokens + max_tokens. */
  tokens: number;
  /** Anthropic-style ITPM charge: prompt tokens. */
  inputTokens: number;
};

export type Refusal = {
  dimension: LimitDimension;
  /** The limit per minute of that dimension. */
  limit: number;
  /** What the request would have cost in that dimension. */
  cost: number;
  /** The bucket's level when refused (may be negative). */
  level: number;
  /** The cost exceeds the whole per-minute limit: it can never be admitted. */
  tooLarge: boolean;
  /** When every refusing bucket would admit this request, in ms from now (0 when too large). */
  retryAfterMs: number;
};

/** Totals charged to each bucket since the start or the last reset. */
export type ChargedTotals = {
  requests: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
};

export class RateLimiter {
  readonly requests: TokenBucket | undefined;
  readonly tokens: TokenBucket | undefined;
  readonly inputTokens: TokenBucket | undefined;
  readonly outputTokens: TokenBucket | undefined;
  readonly charged: ChargedTotals = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 };
  readonly #all: TokenBucket[];

  constructor(pool: PoolConfig, now: Now) {
    const make = (limit: number | undefined) =>
      limit === undefined ? undefined : new TokenBucket(limit, pool.burstSeconds, now);
    this.requests = make(pool.rpm);
    this.tokens = make(pool.tpm);
    this.inputTokens = make(pool.itpm);
    this.outputTokens = make(pool.otpm);
    this.#all = [this.requests, this.tokens, this.inputTokens, this.outputTokens].filter(
      (b): b is TokenBucket => b !== undefined,
    );
  }

  /**
   * Charges the request to every configured bucket and returns `undefined`, or charges nothing
   * and says why not. A refused request costs nothing. OTPM admits while its bucket holds at
   * least one token (its charge comes later, from `settleOutput`).
   */
  admit(charge: Charge): Refusal | undefined {
    if (this.#all.length === 0) {
      this.charged.requests++;
      return undefined;
    }
    const { requests, tokens, inputTokens, outputTokens } = this;
    if (tokens?.exceedsLimit(charge.tokens)) return tooLarge("tokens", tokens, charge.tokens);
    if (inputTokens?.exceedsLimit(charge.inputTokens)) {
      return tooLarge("input_tokens", inputTokens, charge.inputTokens);
    }
    let refusal: Refusal | undefined;
    const check = (dimension: LimitDimension, bucket: TokenBucket | undefined, cost: number) => {
      if (bucket === undefined || bucket.canTake(cost)) return;
      const wait = bucket.waitMs(cost);
      if (refusal === undefined) {
        refusal = {
          dimension,
          limit: bucket.limitPerMinute,
          cost,
          level: bucket.level(),
          tooLarge: false,
          retryAfterMs: wait,
        };
      } else if (wait > refusal.retryAfterMs) refusal.retryAfterMs = wait;
    };
    check("requests", requests, 1);
    check("tokens", tokens, charge.tokens);
    check("input_tokens", inputTokens, charge.inputTokens);
    check("output_tokens", outputTokens, 1);
    if (refusal) return refusal;
    this.charged.requests++;
    requests?.take(1);
    if (tokens) {
      tokens.take(charge.tokens);
      this.charged.tokens += charge.tokens;
    }
    if (inputTokens) {
      inputTokens.take(charge.inputTokens);
      this.charged.inputTokens += charge.inputTokens;
    }
    return undefined;
  }

  /** Charges an answer's actual output to the OTPM bucket when it ends. */
  settleOutput(outputTokens: number): void {
    if (this.outputTokens === undefined || outputTokens <= 0) return;
    this.outputTokens.take(outputTokens);
    this.charged.outputTokens += outputTokens;
  }

  /** Refills every bucket and zeroes the totals. */
  reset(): void {
    for (const bucket of this.#all) bucket.reset();
    this.charged.requests = 0;
    this.charged.tokens = 0;
    this.charged.inputTokens = 0;
    this.charged.outputTokens = 0;
  }
}

function tooLarge(dimension: LimitDimension, bucket: TokenBucket, cost: number): Refusal {
  return {
    dimension,
    limit: bucket.limitPerMinute,
    cost,
    level: bucket.level(),
    tooLarge: true,
    retryAfterMs: 0,
  };
}

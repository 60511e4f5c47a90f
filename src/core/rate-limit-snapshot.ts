// What a provider said about its rate limits on one response, normalised by the provider
// adapter (OpenAI Go-style durations, Azure seconds, Anthropic RFC 3339 times all become
// milliseconds). The scheduler uses it to lower its bucket levels and to learn the limits.

/** One dimension of a provider's limits as reported on a response. Every field is optional. */
export type LimitReading = {
  /** The limit per minute, e.g. `x-ratelimit-limit-tokens`. */
  limit?: number | undefined;
  /** What is left now, e.g. `x-ratelimit-remaining-tokens`. */
  remaining?: number | undefined;
  /** Milliseconds from the response until the limit is fully replenished. */
  resetMs?: number | undefined;
  /**
   * The provider counts this limit in fixed windows (Azure OpenAI): `remaining` does not grow
   * until `resetMs` has passed. Otherwise the limit refills continuously (OpenAI, Anthropic).
   */
  fixedWindow?: boolean | undefined;
};

export type RateLimitSnapshot = {
  requests?: LimitReading | undefined;
  /** Combined input + output tokens (OpenAI TPM; Anthropic's most restrictive token limit). */
  tokens?: LimitReading | undefined;
  /** Anthropic input tokens per minute (ITPM). */
  inputTokens?: LimitReading | undefined;
  /** Anthropic output tokens per minute (OTPM). */
  outputTokens?: LimitReading | undefined;
};

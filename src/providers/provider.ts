// The provider interface: one call to one LLM endpoint, normalised. Adapters (OpenAI-compatible,
// Anthropic, a custom function, the test fakes) are implementations; the scheduler wraps them and
// is the only retry authority, so an adapter makes exactly one attempt per `call`.
import type { RateLimitSnapshot } from "../core/rate-limit-snapshot.ts";

/** Token usage of one answered call, normalised across providers. */
export type TokenUsage = {
  /** Prompt tokens, including cached ones (OpenAI `prompt_tokens`, Anthropic input + cache). */
  inputTokens: number;
  /** Completion tokens (OpenAI `completion_tokens`, Anthropic `output_tokens`). */
  outputTokens: number;
  /** Input tokens served from the provider's prompt cache, when it reports them. */
  cachedInputTokens?: number | undefined;
};

/** What one successful call returned. */
export type ProviderResult = {
  /** The HTTP status (200 for a custom function). */
  status: number;
  /** The provider's response body, unchanged. */
  body: unknown;
  usage: TokenUsage | undefined;
  rateLimits: RateLimitSnapshot | undefined;
  requestId: string | undefined;
};

/** A request in the provider's own wire shape, and the endpoint it goes to. */
export type ProviderRequest = {
  /**
   * The endpoint, without the API version: `/chat/completions`, `/embeddings`, `/messages`. A
   * leading `/v1` is accepted too; each adapter puts the version where its base URL needs it.
   */
  path: string;
  /** The JSON body, e.g. `{model, messages, max_tokens}`. */
  body: Record<string, unknown>;
};

export type CallOptions = {
  /** Aborts the attempt; an adapter rejects with `signal.reason` once the request has ended. */
  signal: AbortSignal;
};

/** Tokens counted against a provider's rate limits, before (estimate) or after (charge) a call. */
export type CostEstimate = {
  /** Input (prompt) tokens. */
  inputTokens: number;
  /** Output tokens (OpenAI charges `max_tokens` against TPM up front). */
  outputTokens: number;
};

export interface Provider {
  /** `openai`, `anthropic`, `custom`: used in errors, logs and the rate-limit key. */
  readonly name: string;
  /** Makes exactly one attempt. Rejects with a ProviderError subclass, or `signal.reason`. */
  call(request: ProviderRequest, options: CallOptions): Promise<ProviderResult>;
  /** Estimates the tokens a request will be charged, before it is sent. */
  estimate(request: ProviderRequest): CostEstimate;
  /**
   * What the provider's rate limiter really charged, once the usage is known. This is not always
   * the usage: OpenAI keeps charging `max_tokens`; Anthropic does not count cache reads in ITPM.
   */
  charged(request: ProviderRequest, usage: TokenUsage): CostEstimate;
}

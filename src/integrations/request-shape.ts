// What Salvo needs to know about an SDK's HTTP request before and after it is sent: which API
// family it speaks (OpenAI-compatible or Anthropic), the tokens to reserve from its body (chat
// completions, the Responses API, embeddings, Anthropic messages), and what the provider really
// charged once the answer's usage is known.

import { usageFromAnthropic } from "../providers/anthropic-provider.ts";
import { estimateOpenAIRequest, usageFromOpenAI } from "../providers/openai-provider.ts";
import type { CostEstimate, TokenUsage } from "../providers/provider.ts";
import { type ChatLike, estimatePromptTokens } from "../providers/token-estimate.ts";

/** The two wire families: OpenAI-compatible servers, and Anthropic's Messages API. */
export type ApiKind = "openai" | "anthropic";

/** Output tokens reserved for an OpenAI request that sets no maximum. */
export const DEFAULT_MAX_TOKENS = 4096;

/**
 * The family of a request: Anthropic when it sends `anthropic-version` or goes to `/messages`,
 * else OpenAI-compatible.
 */
export function apiKind(path: string, headers: Headers): ApiKind {
  if (headers.has("anthropic-version")) return "anthropic";
  return /\/messages$/.test(path) ? "anthropic" : "openai";
}

type Body = Record<string, unknown>;

/**
 * The tokens to reserve for a request of this family to `path`: chat completions, the Responses
 * API, embeddings and moderations, legacy completions, Anthropic messages. Other endpoints are
 * charged a request only.
 */
export function estimateRequest(
  kind: ApiKind,
  path: string,
  body: Body,
  defaultMaxTokens: number = DEFAULT_MAX_TOKENS,
): CostEstimate {
  if (kind === "anthropic") {
    const max = body.max_tokens;
    return {
      inputTokens: estimatePromptTokens(body as ChatLike),
      // OTPM counts only real output; max_tokens is the ceiling reserved until usage is known.
      outputTokens: typeof max === "number" ? max : 0,
    };
  }
  return estimateOpenAIRequest({ path, body }, defaultMaxTokens);
}

/** The usage an answer of this family reports. */
export function usageOf(kind: ApiKind, body: unknown): TokenUsage | undefined {
  return kind === "anthropic" ? usageFromAnthropic(body) : usageFromOpenAI(body);
}

/**
 * What the provider's limiter really charged: OpenAI keeps charging the reserved maximum output
 * against TPM; Anthropic charges the real output, and no cache reads against ITPM.
 */
export function chargedFor(kind: ApiKind, estimate: CostEstimate, usage: TokenUsage): CostEstimate {
  if (kind === "anthropic") {
    return {
      inputTokens: usage.inputTokens - (usage.cachedInputTokens ?? 0),
      outputTokens: usage.outputTokens,
    };
  }
  return { inputTokens: usage.inputTokens, outputTokens: estimate.outputTokens };
}

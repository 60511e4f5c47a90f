// What Salvo needs to know about an SDK's HTTP request before and after it is sent: which API
// family it speaks (OpenAI-compatible or Anthropic), the tokens to reserve from its body (chat
// completions, the Responses API, embeddings, Anthropic messages), and what the provider really
// charged once the answer's usage is known.

import { usageFromAnthropic } from "../providers/anthropic-provider.ts";
import { usageFromOpenAI } from "../providers/openai-provider.ts";
import type { CostEstimate, TokenUsage } from "../providers/provider.ts";
import { type ChatLike, countTokens, estimatePromptTokens } from "../providers/token-estimate.ts";

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

// The Responses API's `input` and `instructions` as chat messages, for the same count.
function responsesAsChat(body: Body): ChatLike {
  const input = body.input;
  const messages: Array<{ role?: string; content?: unknown }> = [];
  if (typeof input === "string") messages.push({ role: "user", content: input });
  else if (Array.isArray(input)) {
    for (const item of input as unknown[]) {
      if (typeof item !== "object" || item === null) continue;
      const it = item as Record<string, unknown>;
      if (it.type === undefined || it.type === "message") {
        messages.push({
          role: typeof it.role === "string" ? it.role : "user",
          content: it.content,
        });
      } else if (typeof it.output === "string") messages.push({ role: "tool", content: it.output });
      else if (typeof it.arguments === "string") {
        messages.push({ role: "assistant", content: it.arguments });
      }
    }
  }
  return { messages, system: body.instructions ?? undefined, tools: body.tools };
}

function embeddingTokens(input: unknown): number {
  const items = typeof input === "string" || !Array.isArray(input) ? [input] : input;
  // A flat array of numbers is one input of token ids.
  if (items.every((v) => typeof v === "number")) return items.length;
  let tokens = 0;
  for (const item of items as unknown[]) {
    if (typeof item === "string") tokens += countTokens(item);
    else if (Array.isArray(item)) tokens += item.length;
  }
  return tokens;
}

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
  if (/(^|\/)(embeddings|moderations)$/.test(path)) {
    return { inputTokens: embeddingTokens(body.input), outputTokens: 0 };
  }
  if (/(^|\/)responses$/.test(path)) {
    const max = body.max_output_tokens;
    return {
      inputTokens: estimatePromptTokens(responsesAsChat(body)),
      outputTokens: typeof max === "number" ? max : defaultMaxTokens,
    };
  }
  const n = typeof body.n === "number" && body.n > 0 ? body.n : 1;
  const max = body.max_completion_tokens ?? body.max_tokens;
  if (/(^|\/)chat\/completions$/.test(path)) {
    return {
      inputTokens: estimatePromptTokens(body as ChatLike),
      outputTokens: n * (typeof max === "number" ? max : defaultMaxTokens),
    };
  }
  if (/(^|\/)completions$/.test(path)) {
    // The legacy completions endpoint: a prompt (or prompts), 16 output tokens by default.
    return {
      inputTokens: embeddingTokens(body.prompt),
      outputTokens: n * (typeof max === "number" ? max : 16),
    };
  }
  // Any other endpoint (images, audio, ...): a request against RPM, no token estimate.
  return { inputTokens: 0, outputTokens: 0 };
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

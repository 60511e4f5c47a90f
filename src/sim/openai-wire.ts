// The OpenAI chat-completions wire format: request bodies, answers, stream chunks, error bodies
// and `x-ratelimit-*` headers, shaped as the official SDK parses them. The error bodies and
// headers are shared with the responses and embeddings endpoints.

import { formatGoDuration } from "./go-duration.ts";
import type { SimMessage } from "./marker.ts";
import type { LimitDimension, RateLimiter } from "./rate-limiter.ts";
import type { TokenBucket } from "./token-bucket.ts";
import {
  type Answer,
  type ChatRequest,
  type CheckedBody,
  checkBody,
  checkMessages,
  type ErrorKind,
  isBadRequest,
  optionalCount,
  type StreamFormat,
  type Wire,
  type WireError,
} from "./wire.ts";

const ROLES = ["system", "developer", "user", "assistant", "tool", "function"] as const;

const LIMIT_NAMES: Record<LimitDimension, string> = {
  requests: "requests per min (RPM)",
  tokens: "tokens per min (TPM)",
  input_tokens: "input tokens per min (ITPM)",
  output_tokens: "output tokens per min (OTPM)",
};

export function errorBody(
  message: string,
  type: string,
  param: string | null,
  code: string | null,
): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

function usage(answer: Answer) {
  return {
    prompt_tokens: answer.promptTokens,
    completion_tokens: answer.outputTokens,
    total_tokens: answer.promptTokens + answer.outputTokens,
  };
}

function setBucketHeaders(
  headers: Record<string, string>,
  suffix: "requests" | "tokens",
  bucket: TokenBucket,
): void {
  headers[`x-ratelimit-limit-${suffix}`] = String(bucket.limitPerMinute);
  headers[`x-ratelimit-remaining-${suffix}`] = String(Math.max(0, Math.floor(bucket.level())));
  headers[`x-ratelimit-reset-${suffix}`] = formatGoDuration(bucket.msUntilFull());
}

export const openaiWire: Wire = {
  path: "openai",
  endpoint: "chat.completions",
  requestIdHeader: "x-request-id",
  idPrefix: "chatcmpl-",

  parse(body) {
    const invalid = checkBody(body, "you must provide a model parameter");
    if (invalid) return invalid;
    const b = body as CheckedBody;
    const bad = checkMessages(b.messages, ROLES);
    if (bad) return bad;
    const maxCompletion = optionalCount(b.max_completion_tokens, "max_completion_tokens");
    if (isBadRequest(maxCompletion)) return maxCompletion;
    const max = optionalCount(b.max_tokens, "max_tokens");
    if (isBadRequest(max)) return max;
    if (b.stream !== undefined && b.stream !== null && typeof b.stream !== "boolean") {
      return { error: "stream: expected a boolean", param: "stream" };
    }
    const options = b.stream_options as { include_usage?: unknown } | null | undefined;
    const request: ChatRequest = {
      model: b.model,
      messages: b.messages as SimMessage[],
      system: undefined,
      stream: b.stream === true,
      includeUsage: options?.include_usage === true,
      maxTokens: maxCompletion ?? max,
    };
    return request;
  },

  completion(answer) {
    return JSON.stringify({
      id: answer.id,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: answer.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: answer.text, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: answer.capped ? "length" : "stop",
        },
      ],
      usage: usage(answer),
      service_tier: "default",
      system_fingerprint: "fp_salvo_sim",
    });
  },

  stream(answer): StreamFormat {
    // Every chunk shares its envelope; only the delta changes, so it is built once.
    const created = Math.floor(Date.now() / 1000);
    const usageNull = answer.includeUsage ? ',"usage":null' : "";
    const open = `data: {"id":${JSON.stringify(answer.id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(answer.model)},"system_fingerprint":"fp_salvo_sim","choices":[{"index":0,"delta":`;
    const close = `,"logprobs":null,"finish_reason":null}]${usageNull}}\n\n`;
    return {
      head: () => `${open}{"role":"assistant","content":"","refusal":null}${close}`,
      piece: (text) => `${open}{"content":${JSON.stringify(text)}}${close}`,
      tail: () => {
        const finish = answer.capped ? "length" : "stop";
        let out = `${open}{},"logprobs":null,"finish_reason":"${finish}"}]${usageNull}}\n\n`;
        if (answer.includeUsage) {
          out += `data: {"id":${JSON.stringify(answer.id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(answer.model)},"system_fingerprint":"fp_salvo_sim","choices":[],"usage":${JSON.stringify(usage(answer))}}\n\n`;
        }
        return `${out}data: [DONE]\n\n`;
      },
      garbage: () => `${open}{"content":"\n\n`,
    };
  },

  error: openaiError,
  rateLimitHeaders: openaiRateLimitHeaders,
};

/** An OpenAI error answer: status and `{error: {message, type, param, code}}` body. */
export function openaiError(error: ErrorKind): WireError {
  switch (error.kind) {
    case "bad_request":
      return {
        status: 400,
        body: errorBody(error.message, "invalid_request_error", error.param, error.code ?? null),
      };
    case "not_found":
      return {
        status: 404,
        body: errorBody(error.message, "invalid_request_error", null, "unknown_url"),
      };
    case "quota":
      return {
        status: 429,
        body: errorBody(
          "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
          "insufficient_quota",
          null,
          "insufficient_quota",
        ),
      };
    case "server_error":
      return {
        status: 500,
        body: errorBody(
          "The server had an error while processing your request. Sorry about that!",
          "server_error",
          null,
          null,
        ),
      };
    case "overloaded":
      return {
        status: 503,
        body: errorBody("The server is overloaded or not ready yet.", "server_error", null, null),
      };
    case "rate_limited": {
      const r = error.refusal;
      const name = LIMIT_NAMES[r.dimension];
      const message = r.tooLarge
        ? `Request too large for ${error.model} in organization org-salvo-sim on ${name}: Limit ${r.limit}, Requested ${r.cost}. The input or output tokens must be reduced in order to run successfully.`
        : `Rate limit reached for ${error.model} in organization org-salvo-sim on ${name}: Limit ${r.limit}, Used ${Math.max(0, Math.round(r.limit - r.level))}, Requested ${r.cost}. Please try again in ${formatGoDuration(r.retryAfterMs)}.`;
      return { status: 429, body: errorBody(message, r.dimension, null, "rate_limit_exceeded") };
    }
  }
}

/** Adds `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the limits configured. */
export function openaiRateLimitHeaders(
  limiter: RateLimiter,
  headers: Record<string, string>,
): void {
  if (limiter.requests) setBucketHeaders(headers, "requests", limiter.requests);
  if (limiter.tokens) setBucketHeaders(headers, "tokens", limiter.tokens);
}

// The Anthropic Messages wire format: request bodies, answers, the stream's event sequence, error
// bodies and `anthropic-ratelimit-*` headers, shaped as the official SDK parses them.

import type { SimContentPart, SimMessage } from "./marker.ts";
import type { LimitDimension, RateLimiter } from "./rate-limiter.ts";
import type { TokenBucket } from "./token-bucket.ts";
import {
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

const ROLES = ["user", "assistant"] as const;

const LIMIT_NAMES: Record<LimitDimension, string> = {
  requests: "requests",
  tokens: "tokens",
  input_tokens: "input tokens",
  output_tokens: "output tokens",
};

function errorBody(type: string, message: string, requestId: string): string {
  return JSON.stringify({ type: "error", error: { type, message }, request_id: requestId });
}

function event(name: string, data: string): string {
  return `event: ${name}\ndata: ${data}\n\n`;
}

function setBucketHeaders(
  headers: Record<string, string>,
  suffix: string,
  bucket: TokenBucket,
): void {
  headers[`anthropic-ratelimit-${suffix}-limit`] = String(bucket.limitPerMinute);
  headers[`anthropic-ratelimit-${suffix}-remaining`] = String(
    Math.max(0, Math.floor(bucket.level())),
  );
  headers[`anthropic-ratelimit-${suffix}-reset`] = new Date(
    Date.now() + Math.ceil(bucket.msUntilFull()),
  ).toISOString();
}

export const anthropicWire: Wire = {
  path: "anthropic",
  endpoint: "messages",
  requestIdHeader: "request-id",
  idPrefix: "msg_",

  parse(body) {
    const invalid = checkBody(body, "model: Field required");
    if (invalid) return invalid;
    const b = body as CheckedBody;
    if (b.max_tokens === undefined)
      return { error: "max_tokens: Field required", param: "max_tokens" };
    const max = optionalCount(b.max_tokens, "max_tokens");
    if (isBadRequest(max)) return max;
    const bad = checkMessages(b.messages, ROLES);
    if (bad) return bad;
    if (!(b.system === undefined || typeof b.system === "string" || Array.isArray(b.system))) {
      return { error: "system: expected a string or an array of text blocks", param: "system" };
    }
    if (b.stream !== undefined && typeof b.stream !== "boolean") {
      return { error: "stream: expected a boolean", param: "stream" };
    }
    const request: ChatRequest = {
      model: b.model,
      messages: b.messages as SimMessage[],
      system: b.system as string | SimContentPart[] | undefined,
      stream: b.stream === true,
      includeUsage: true,
      maxTokens: max,
    };
    return request;
  },

  completion(answer) {
    return JSON.stringify({
      id: answer.id,
      type: "message",
      role: "assistant",
      model: answer.model,
      content: [{ type: "text", text: answer.text }],
      stop_reason: answer.capped ? "max_tokens" : "end_turn",
      stop_sequence: null,
      usage: {
        input_tokens: answer.promptTokens,
        output_tokens: answer.outputTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    });
  },

  stream(answer): StreamFormat {
    return {
      head: () =>
        event(
          "message_start",
          JSON.stringify({
            type: "message_start",
            message: {
              id: answer.id,
              type: "message",
              role: "assistant",
              model: answer.model,
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: {
                input_tokens: answer.promptTokens,
                output_tokens: 1,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
              },
            },
          }),
        ) +
        event(
          "content_block_start",
          '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ) +
        event("ping", '{"type":"ping"}'),
      piece: (text) =>
        `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":${JSON.stringify(text)}}}\n\n`,
      tail: () =>
        event("content_block_stop", '{"type":"content_block_stop","index":0}') +
        event(
          "message_delta",
          JSON.stringify({
            type: "message_delta",
            delta: { stop_reason: answer.capped ? "max_tokens" : "end_turn", stop_sequence: null },
            usage: { output_tokens: answer.outputTokens },
          }),
        ) +
        event("message_stop", '{"type":"message_stop"}'),
      garbage: () =>
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n',
    };
  },

  error(error: ErrorKind, requestId: string): WireError {
    switch (error.kind) {
      case "bad_request":
        return { status: 400, body: errorBody("invalid_request_error", error.message, requestId) };
      case "not_found":
        return { status: 404, body: errorBody("not_found_error", error.message, requestId) };
      case "quota":
        // Anthropic's spend cap: a 400, not a 429, and waiting does not help.
        return {
          status: 400,
          body: errorBody(
            "invalid_request_error",
            "You have reached your specified API usage limits. You will regain access on 2099-01-01 at 00:00 UTC.",
            requestId,
          ),
        };
      case "server_error":
        return { status: 500, body: errorBody("api_error", "Internal server error", requestId) };
      case "overloaded":
        return { status: 529, body: errorBody("overloaded_error", "Overloaded", requestId) };
      case "rate_limited": {
        const r = error.refusal;
        const name = LIMIT_NAMES[r.dimension];
        if (r.tooLarge) {
          // A request that exceeds a whole per-minute limit can never succeed: 413, not retried.
          return {
            status: 413,
            body: errorBody(
              "request_too_large",
              `This request would exceed your organization's rate limit of ${r.limit} ${name} per minute on its own (it needs ${r.cost}). Please reduce the prompt length or the maximum tokens requested.`,
              requestId,
            ),
          };
        }
        return {
          status: 429,
          body: errorBody(
            "rate_limit_error",
            `This request would exceed the rate limit for your organization of ${r.limit} ${name} per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.`,
            requestId,
          ),
        };
      }
    }
  },

  rateLimitHeaders(limiter: RateLimiter, headers) {
    if (limiter.requests) setBucketHeaders(headers, "requests", limiter.requests);
    if (limiter.inputTokens) setBucketHeaders(headers, "input-tokens", limiter.inputTokens);
    if (limiter.outputTokens) setBucketHeaders(headers, "output-tokens", limiter.outputTokens);
    // `tokens-*` shows the most restrictive token limit in effect.
    const candidates = [limiter.tokens, limiter.inputTokens, limiter.outputTokens].filter(
      (b): b is TokenBucket => b !== undefined,
    );
    let tightest: TokenBucket | undefined;
    for (const bucket of candidates) {
      if (tightest === undefined || bucket.level() < tightest.level()) tightest = bucket;
    }
    if (tightest) setBucketHeaders(headers, "tokens", tightest);
  },
};

// What differs between the endpoints (OpenAI chat completions, responses and embeddings;
// Anthropic messages): how a request body is read, how answers, stream events, errors and
// rate-limit headers are written. The simulator's logic is shared.

import type { SimContentPart, SimMessage } from "./marker.ts";
import type { RateLimiter, Refusal } from "./rate-limiter.ts";

/** What an embeddings request asks for. */
export type EmbeddingInput = {
  /** One text per vector, in order (token-id inputs as their ids joined by spaces). */
  texts: string[];
  /** Length of each vector. */
  dimensions: number;
  /** `encoding_format: "base64"`: each vector as little-endian float32 bytes in base64. */
  base64: boolean;
};

/** A request, read from any endpoint's body. */
export type ChatRequest = {
  model: string;
  messages: SimMessage[];
  /** Anthropic's top-level system prompt. */
  system: string | SimContentPart[] | undefined;
  stream: boolean;
  /** OpenAI `stream_options.include_usage`; Anthropic streams always carry usage. */
  includeUsage: boolean;
  /**
   * `max_tokens`, `max_completion_tokens` or `max_output_tokens`; required on the Anthropic path;
   * 0 for embeddings (no output).
   */
  maxTokens: number | undefined;
  /**
   * The prompt tokens charged, when the endpoint counts them its own way (embeddings: the inputs'
   * tokens, no chat framing). Otherwise `countPromptTokens` of the messages and system prompt.
   */
  promptTokens?: number | undefined;
  /** Set on the embeddings endpoint: the answer is vectors, not text. */
  embedding?: EmbeddingInput | undefined;
};

/** A request body the provider would refuse with 400: the message and the offending parameter. */
export type BadRequest = {
  error: string;
  param: string | null;
  /** The provider's error code, where it sends one (`missing_required_parameter`). */
  code?: string | undefined;
};

/** An answer to write. */
export type Answer = {
  id: string;
  model: string;
  text: string;
  promptTokens: number;
  outputTokens: number;
  /** The answer was cut at the request's max_tokens. */
  capped: boolean;
  includeUsage: boolean;
  /** The request answered. */
  request: ChatRequest;
};

/** Writes one streamed answer as server-sent events. */
export type StreamFormat = {
  /** The events before the first piece of text. */
  head(): string;
  /** One piece of text (one output token). */
  piece(text: string): string;
  /** The events after the last piece (finish reason, usage, terminator). */
  tail(): string;
  /** A line that is not valid JSON, for the `malformed` fault. */
  garbage(): string;
};

/** The errors the simulator answers with, by cause. */
export type ErrorKind =
  | { kind: "bad_request"; message: string; param: string | null; code?: string | undefined }
  | { kind: "not_found"; message: string }
  | { kind: "rate_limited"; refusal: Refusal; model: string }
  | { kind: "quota" }
  | { kind: "server_error" }
  | { kind: "overloaded" };

export type WireError = { status: number; body: string };

/** The API endpoints the simulator answers. */
export type Endpoint = "chat.completions" | "responses" | "embeddings" | "messages";

export type Wire = {
  /** The provider, which picks the capacity pool and rate limits. */
  readonly path: "openai" | "anthropic";
  readonly endpoint: Endpoint;
  /** The header that carries the request id (`x-request-id`, `request-id`). */
  readonly requestIdHeader: string;
  /** The id prefix of an answer (`chatcmpl-`, `resp_`, `msg_`). */
  readonly idPrefix: string;
  parse(body: unknown): ChatRequest | BadRequest;
  completion(answer: Answer): string;
  stream(answer: Answer): StreamFormat;
  error(error: ErrorKind, requestId: string): WireError;
  /** Adds the provider's rate-limit headers for the limits that are configured. */
  rateLimitHeaders(limiter: RateLimiter, headers: Record<string, string>): void;
};

/** Validates message objects shared by both shapes; returns the error or undefined. */
/** A request body that is not a JSON object with a model: the provider's 400 (its own wording). */
export function checkBody(body: unknown, noModel: string): BadRequest | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { error: "The request body must be a JSON object.", param: null };
  }
  const model = (body as Record<string, unknown>).model;
  if (typeof model !== "string" || model === "") return { error: noModel, param: "model" };
  return undefined;
}

/** A body `checkBody` accepted. */
export type CheckedBody = Record<string, unknown> & { model: string };

/** Validates message objects shared by both chat shapes; returns the error or undefined. */
export function checkMessages(messages: unknown, roles: readonly string[]): BadRequest | undefined {
  if (!Array.isArray(messages) || messages.length === 0) {
    return { error: "messages: expected a non-empty array", param: "messages" };
  }
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    const where = `messages.${i}`;
    if (m === null || typeof m !== "object")
      return { error: `${where}: expected an object`, param: where };
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || !roles.includes(role)) {
      return {
        error: `${where}.role: expected one of ${roles.join(", ")}`,
        param: `${where}.role`,
      };
    }
    if (
      !(
        typeof content === "string" ||
        Array.isArray(content) ||
        content === null ||
        content === undefined
      )
    ) {
      return {
        error: `${where}.content: expected a string or an array of parts`,
        param: `${where}.content`,
      };
    }
  }
  return undefined;
}

/** A whole number >= 1, or undefined when absent; anything else is a BadRequest message. */
export function optionalCount(value: unknown, name: string): number | undefined | BadRequest {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) return value;
  return { error: `${name}: expected an integer >= 1`, param: name };
}

export function isBadRequest(value: unknown): value is BadRequest {
  return typeof value === "object" && value !== null && "error" in value && "param" in value;
}

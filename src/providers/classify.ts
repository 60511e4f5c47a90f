// Turns a provider's failed HTTP answer into one of Salvo's typed errors, by status and by the
// provider's error `code`/`type` — never by message substrings (which change without notice).
// The message is only searched for a retry hint.
import type { RateLimitSnapshot } from "../core/rate-limit-snapshot.ts";
import {
  ClientError,
  type ErrorOptions,
  OverloadedError,
  type ProviderError,
  type ProviderErrorDetails,
  QuotaExceededError,
  RateLimitError,
  ServerError,
} from "../errors.ts";
import type { HeaderSource } from "./headers.ts";
import { headerValue } from "./headers.ts";
import { parseRateLimitHeaders } from "./rate-limit-headers.ts";
import { retryAfterMs, shouldRetryHeader } from "./retry-hint.ts";

/** Provider error codes and types that mean "waiting will not help": never retried. */
const QUOTA_CODES = new Set([
  "insufficient_quota",
  "billing_hard_limit_reached",
  "billing_not_active",
  "access_terminated",
  "enforced_spend_limit_reached",
  "spend_limit_reached",
]);

/** The `code` and `type` of an OpenAI (`{error: {code, type}}`) or Anthropic (`{error: {type}}`) body. */
export function providerErrorCodes(body: unknown): {
  code?: string;
  type?: string;
  message?: string;
} {
  if (typeof body !== "object" || body === null) return {};
  const outer = body as Record<string, unknown>;
  const inner =
    typeof outer.error === "object" && outer.error !== null
      ? (outer.error as Record<string, unknown>)
      : outer;
  const pick = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);
  const result: { code?: string; type?: string; message?: string } = {};
  const code = pick(inner.code);
  const type = pick(inner.type);
  const message = pick(inner.message);
  if (code !== undefined) result.code = code;
  if (type !== undefined) result.type = type;
  if (message !== undefined) result.message = message;
  return result;
}

export type FailedResponse = {
  status: number;
  headers?: HeaderSource | undefined;
  /** The parsed error body, if any. */
  body?: unknown;
  /** A message to fall back on when the body has none. */
  message?: string | undefined;
  provider: string;
  /** Wall-clock time of the response (epoch ms), for date-valued headers. */
  nowMs?: number;
};

/** The typed error for a failed HTTP answer from a provider. */
export function errorFromResponse(response: FailedResponse, options?: ErrorOptions): ProviderError {
  const { status, headers, provider } = response;
  const nowMs = response.nowMs ?? Date.now();
  const codes = providerErrorCodes(response.body);
  const text = codes.message ?? response.message ?? `HTTP ${status}`;
  const rateLimits: RateLimitSnapshot | undefined = parseRateLimitHeaders(headers, nowMs);
  const details: ProviderErrorDetails = {
    status,
    providerCode: codes.code ?? codes.type,
    retryAfterMs: retryAfterMs(headers, text, nowMs),
    shouldRetry: shouldRetryHeader(headers),
    requestId: headerValue(headers, "x-request-id") ?? headerValue(headers, "request-id"),
    provider,
    rateLimits,
  };
  const message = `${provider} answered ${status}: ${text}`;
  const quota =
    (codes.code !== undefined && QUOTA_CODES.has(codes.code)) ||
    (codes.type !== undefined && QUOTA_CODES.has(codes.type));
  if (quota) return new QuotaExceededError(message, details, options);
  if (status === 429) return new RateLimitError(message, details, options);
  if (status === 529 || status === 503 || codes.type === "overloaded_error") {
    return new OverloadedError(message, details, options);
  }
  if (status >= 500) return new ServerError(message, details, options);
  return new ClientError(message, details, options);
}

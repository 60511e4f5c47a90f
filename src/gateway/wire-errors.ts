// The gateway's answers when a call fails, in the wire format the client speaks, so that its SDK
// raises its own typed error (openai's `RateLimitError`, anthropic's `AuthenticationError`...) and
// its retry logic reads the usual headers. An upstream's own error answer is passed on as it
// came; the gateway's own refusals (no key, queue full, budget spent) are shaped like the
// provider's.
import {
  AbortedError,
  BudgetExceededError,
  DeadlineExceededError,
  InvalidResponseError,
  NetworkError,
  PriceUnknownError,
  ProviderError,
  RequestTooLargeError,
  SalvoError,
  SchedulerClosedError,
  TimeoutError,
} from "../errors.ts";
import { upstreamAnswerOf } from "./upstream-provider.ts";

/** The API a client speaks: OpenAI's (chat, embeddings, responses) or Anthropic's (messages). */
export type Wire = "openai" | "anthropic";

/** A refusal or failure, before it is shaped for a wire. */
export type WireError = {
  status: number;
  message: string;
  /** OpenAI's `error.type`; Anthropic's type follows from the status unless `anthropicType`. */
  type?: string | undefined;
  /** OpenAI's `error.code`. */
  code?: string | null | undefined;
  param?: string | null | undefined;
  anthropicType?: string | undefined;
  /** The status for an Anthropic client, when it differs (a spent budget is 402 there). */
  anthropicStatus?: number | undefined;
  /** Extra headers: `retry-after`, `x-should-retry`... */
  headers?: Record<string, string> | undefined;
};

const ANTHROPIC_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  503: "overloaded_error",
  529: "overloaded_error",
};

const OPENAI_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "invalid_request_error",
  403: "invalid_request_error",
  404: "invalid_request_error",
  413: "invalid_request_error",
  429: "requests",
};

function statusFor(wire: Wire, error: WireError): number {
  return wire === "anthropic" ? (error.anthropicStatus ?? error.status) : error.status;
}

/** The body of an error in `wire`'s shape. */
export function errorBody(wire: Wire, error: WireError): string {
  if (wire === "anthropic") {
    const type = error.anthropicType ?? ANTHROPIC_TYPES[statusFor(wire, error)] ?? "api_error";
    return JSON.stringify({ type: "error", error: { type, message: error.message } });
  }
  return JSON.stringify({
    error: {
      message: error.message,
      type: error.type ?? OPENAI_TYPES[error.status] ?? "server_error",
      param: error.param ?? null,
      code: error.code ?? null,
    },
  });
}

/** A JSON error Response in `wire`'s shape. */
export function errorResponse(
  wire: Wire,
  error: WireError,
  headers: Record<string, string> = {},
): Response {
  return new Response(errorBody(wire, error), {
    status: statusFor(wire, error),
    headers: { "content-type": "application/json", ...headers, ...(error.headers ?? {}) },
  });
}

/** `retry-after` (whole seconds, at least 1) and `retry-after-ms`, as the SDKs read them. */
export function retryHeaders(retryAfterMs: number, retry = true): Record<string, string> {
  const ms = Math.max(1, Math.ceil(retryAfterMs));
  return {
    "retry-after": String(Math.max(1, Math.ceil(ms / 1000))),
    "retry-after-ms": String(ms),
    "x-should-retry": retry ? "true" : "false",
  };
}

/** Replaces every occurrence of a secret in `text`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 8) out = out.split(secret).join("[redacted]");
  return out;
}

/**
 * What the client gets for a call that failed: the upstream's own answer when there was one
 * (status, body and retry headers as they came, except that a refusal of the gateway's
 * credentials becomes a 502: it is the operator's to fix, not the caller's), else an answer
 * shaped for the error.
 */
export function failureError(
  wire: Wire,
  error: unknown,
  secrets: readonly string[],
): { status: number; body: string; headers: Record<string, string> } {
  const answer = upstreamAnswerOf(error);
  if (answer && answer.status !== 401 && answer.status !== 403) {
    return { status: answer.status, body: scrub(answer.body, secrets), headers: answer.headers };
  }
  const shaped = failureShape(error, answer?.status);
  const message = scrub(shaped.message, secrets);
  return {
    status: statusFor(wire, shaped),
    body: errorBody(wire, { ...shaped, message }),
    headers: shaped.headers ?? {},
  };
}

function failureShape(error: unknown, upstreamStatus: number | undefined): WireError {
  if (upstreamStatus === 401 || upstreamStatus === 403) {
    return {
      status: 502,
      type: "server_error",
      code: "upstream_credentials_refused",
      message: `salvo gateway: the upstream refused the gateway's own credentials (HTTP ${upstreamStatus}); the gateway's operator must fix its upstream key`,
    };
  }
  if (error instanceof BudgetExceededError) {
    return {
      status: 429,
      type: "insufficient_quota",
      code: "insufficient_quota",
      anthropicStatus: 402,
      message: `salvo gateway: ${error.message.replace(/ \(rerun .*\)$/, "").replace(/--max-cost|--max-tokens-total/, "configured")}`,
      headers: { "x-should-retry": "false" },
    };
  }
  if (error instanceof PriceUnknownError) {
    return {
      status: 400,
      code: "model_price_unknown",
      message: `salvo gateway: a cost budget applies, but ${error.message.replace(/ in the config file$/, " in the gateway's config file (the gateway's operator)")}`,
    };
  }
  if (error instanceof RequestTooLargeError) {
    return {
      status: 429,
      type: "tokens",
      code: "rate_limit_exceeded",
      anthropicStatus: 413,
      message: `salvo gateway: request too large: ${error.message}`,
      headers: { "x-should-retry": "false" },
    };
  }
  if (error instanceof DeadlineExceededError || error instanceof TimeoutError) {
    return {
      status: 504,
      type: "timeout",
      code: "timeout",
      anthropicType: "timeout_error",
      message: `salvo gateway: ${error.message}`,
    };
  }
  if (error instanceof AbortedError) {
    return { status: 499, type: "cancelled", message: "salvo gateway: the client went away" };
  }
  if (error instanceof SchedulerClosedError) {
    return {
      status: 503,
      type: "server_error",
      anthropicType: "overloaded_error",
      message: "salvo gateway: shutting down; try again shortly",
      headers: retryHeaders(1000),
    };
  }
  if (error instanceof NetworkError || error instanceof InvalidResponseError) {
    return {
      status: 502,
      type: "server_error",
      code: error.code.toLowerCase(),
      anthropicType: "api_error",
      message: `salvo gateway: ${error.message}`,
    };
  }
  if (error instanceof ProviderError) {
    const status = error.status ?? 502;
    return { status, message: `salvo gateway: ${error.message}` };
  }
  if (error instanceof SalvoError) {
    return {
      status: 500,
      code: error.code.toLowerCase(),
      message: `salvo gateway: ${error.message}`,
    };
  }
  return { status: 500, message: "salvo gateway: internal error" };
}

/** An error event inside a stream, in `wire`'s shape, for a failure after the stream began. */
export function streamErrorEvent(wire: Wire, body: string): string {
  return wire === "anthropic" ? `event: error\ndata: ${body}\n\n` : `data: ${body}\n\n`;
}

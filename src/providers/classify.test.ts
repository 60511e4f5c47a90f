import { describe, expect, it } from "vitest";
import { errorFromResponse } from "./classify.ts";

const openAiBody = (code: string, type = code, message = "msg") => ({
  error: { message, type, code, param: null },
});
const anthropicBody = (type: string, message = "msg") => ({
  type: "error",
  error: { type, message },
});

describe("errorFromResponse", () => {
  it.each([
    [429, openAiBody("rate_limit_exceeded", "requests"), "SALVO_RATE_LIMITED", "rate_limit"],
    [429, openAiBody("insufficient_quota"), "SALVO_QUOTA_EXCEEDED", "quota"],
    [429, anthropicBody("rate_limit_error"), "SALVO_RATE_LIMITED", "rate_limit"],
    [429, openAiBody("billing_hard_limit_reached"), "SALVO_QUOTA_EXCEEDED", "quota"],
    [529, anthropicBody("overloaded_error"), "SALVO_OVERLOADED", "overload"],
    [503, openAiBody("server_overloaded", "server_error"), "SALVO_OVERLOADED", "overload"],
    [500, openAiBody("server_error"), "SALVO_SERVER_ERROR", "server"],
    [502, undefined, "SALVO_SERVER_ERROR", "server"],
    [400, openAiBody("invalid_request_error"), "SALVO_CLIENT_ERROR", "client"],
    [401, anthropicBody("authentication_error"), "SALVO_CLIENT_ERROR", "client"],
    [408, undefined, "SALVO_CLIENT_ERROR", "client"],
    [413, anthropicBody("request_too_large"), "SALVO_CLIENT_ERROR", "client"],
  ])("%d %o -> %s", (status, body, code, failureClass) => {
    const error = errorFromResponse({ status, body, provider: "openai" });
    expect(error.code).toBe(code);
    expect(error.failureClass).toBe(failureClass);
    expect(error.status).toBe(status);
  });

  it("keeps the retry hint, x-should-retry, the request id and the rate-limit headers", () => {
    const error = errorFromResponse({
      status: 429,
      provider: "openai",
      headers: {
        "retry-after-ms": "1200",
        "x-should-retry": "true",
        "x-request-id": "req_123",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1.2s",
      },
      body: openAiBody(
        "rate_limit_exceeded",
        "requests",
        "Rate limit reached. Please try again in 1.2s.",
      ),
    });
    expect(error.retryAfterMs).toBe(1200);
    expect(error.shouldRetry).toBe(true);
    expect(error.requestId).toBe("req_123");
    expect(error.providerCode).toBe("rate_limit_exceeded");
    expect(error.rateLimits?.requests).toEqual({ limit: undefined, remaining: 0, resetMs: 1200 });
    expect(error.message).toBe(
      "openai answered 429: Rate limit reached. Please try again in 1.2s.",
    );
  });

  it("finds the retry hint in the message when no header carries it", () => {
    const error = errorFromResponse({
      status: 429,
      provider: "openai",
      body: openAiBody("rate_limit_exceeded", "tokens", "Please try again in 8.71s."),
    });
    expect(error.retryAfterMs).toBe(8710);
  });
});

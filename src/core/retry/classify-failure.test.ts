import { describe, expect, it } from "vitest";
import {
  ClientError,
  InvalidResponseError,
  NetworkError,
  OverloadedError,
  ProviderError,
  QuotaExceededError,
  RateLimitError,
  ServerError,
  TimeoutError,
} from "../../errors.ts";
import { classifyFailure } from "./classify-failure.ts";

const table: Array<[string, unknown, boolean]> = [
  ["429 rate limit", new RateLimitError(undefined, { status: 429 }), true],
  ["429 insufficient_quota", new QuotaExceededError(undefined, { status: 429 }), false],
  ["529 overloaded", new OverloadedError(undefined, { status: 529 }), true],
  ["503", new OverloadedError(undefined, { status: 503 }), true],
  ["500", new ServerError(undefined, { status: 500 }), true],
  ["network", new NetworkError(), true],
  ["timeout", new TimeoutError(), true],
  ["invalid response", new InvalidResponseError(), true],
  ["408", new ClientError(undefined, { status: 408 }), true],
  ["409", new ClientError(undefined, { status: 409 }), true],
  ["400", new ClientError(undefined, { status: 400 }), false],
  ["401", new ClientError(undefined, { status: 401 }), false],
  ["403", new ClientError(undefined, { status: 403 }), false],
  ["404", new ClientError(undefined, { status: 404 }), false],
  ["413", new ClientError(undefined, { status: 413 }), false],
  ["base ProviderError with 404", new ProviderError("x", { status: 404 }), false],
  ["base ProviderError with 502", new ProviderError("x", { status: 502 }), true],
  [
    "x-should-retry: false on a 500",
    new ServerError(undefined, { status: 500, shouldRetry: false }),
    false,
  ],
  [
    "x-should-retry: true on a 400",
    new ClientError(undefined, { status: 400, shouldRetry: true }),
    true,
  ],
  ["a task's own exception", new TypeError("bug"), false],
  ["a thrown string", "nope", false],
];

describe("classifyFailure", () => {
  it.each(table)("%s -> retryable %s", (_name, error, retryable) => {
    expect(classifyFailure(error).retryable).toBe(retryable);
  });

  it("reports the failure class, or task_error for non-provider errors", () => {
    expect(classifyFailure(new OverloadedError()).result).toBe("overload");
    expect(classifyFailure(new Error("x")).result).toBe("task_error");
  });
});

import { describe, expect, it } from "vitest";
import * as errors from "./errors.ts";

// Every error class: its stable code, its name, that it is a SalvoError, and that cause is kept.
const table: Array<[new (...args: never[]) => errors.SalvoError, string, unknown[]]> = [
  [errors.SalvoError, "SALVO_ERROR", []],
  [
    errors.ConfigError,
    "SALVO_CONFIG_INVALID",
    [{ field: "--rpm", expected: "an integer >= 1", got: -1 }],
  ],
  [errors.ProviderError, "SALVO_PROVIDER_ERROR", ["x"]],
  [errors.RateLimitError, "SALVO_RATE_LIMITED", []],
  [errors.QuotaExceededError, "SALVO_QUOTA_EXCEEDED", []],
  [errors.OverloadedError, "SALVO_OVERLOADED", []],
  [errors.ServerError, "SALVO_SERVER_ERROR", []],
  [errors.ClientError, "SALVO_CLIENT_ERROR", []],
  [errors.NetworkError, "SALVO_NETWORK_ERROR", []],
  [errors.InvalidResponseError, "SALVO_INVALID_RESPONSE", []],
  [errors.TimeoutError, "SALVO_TIMEOUT", []],
  [
    errors.InputLineError,
    "SALVO_INPUT_INVALID",
    [{ file: "in.jsonl", line: 3, field: "body.messages", expected: "a non-empty array", got: [] }],
  ],
  [
    errors.InputRejectedError,
    "SALVO_INPUT_REJECTED",
    [
      {
        file: "in.jsonl",
        errors: [],
        errorCount: 0,
        duplicates: [{ customId: "a", firstLine: 1, line: 2 }],
      },
    ],
  ],
  [errors.ResumeRefusedError, "SALVO_RESUME_REFUSED", ["out.jsonl", "it answers another input"]],
  [
    errors.RunLockedError,
    "SALVO_LOCKED",
    ["out.jsonl", "out.jsonl.lock", { pid: 42, host: "h", since: "2025-01-01T00:00:00.000Z" }],
  ],
  [errors.AbortedError, "SALVO_ABORTED", []],
  [errors.DeadlineExceededError, "SALVO_DEADLINE_EXCEEDED", []],
  [errors.RequestTooLargeError, "SALVO_REQUEST_TOO_LARGE", []],
  [errors.RetryAfterTooLongError, "SALVO_RETRY_AFTER_TOO_LONG", []],
  [errors.RequestInvalidError, "SALVO_REQUEST_INVALID", []],
  [errors.SchedulerClosedError, "SALVO_CLOSED", []],
  [errors.AuditWriteError, "SALVO_AUDIT_WRITE_FAILED", []],
  [errors.KeepFailedError, "SALVO_KEEP_FAILED", []],
  [errors.AuditClosedError, "SALVO_AUDIT_CLOSED", []],
  [errors.AuditRecordError, "SALVO_AUDIT_RECORD_INVALID", []],
  [errors.BudgetExceededError, "SALVO_BUDGET_EXCEEDED", [{ dimension: "cost", limit: 1 }]],
  [errors.PriceUnknownError, "SALVO_PRICE_UNKNOWN", ["ft:gpt-4o-mini:acme"]],
  [errors.CacheError, "SALVO_CACHE_FAILED", []],
  [errors.BatchLineNotRunError, "SALVO_BATCH_NOT_RUN", [{ reason: "expired", batchId: "batch_1" }]],
  [errors.BatchApiError, "SALVO_BATCH_API_FAILED", []],
  [errors.RedisUnavailableError, "SALVO_REDIS_UNAVAILABLE", []],
  [errors.WorkerLostError, "SALVO_WORKER_LOST", []],
];

describe("errors", () => {
  it.each(table)("%o has a stable code, a name and a message", (Class, code, args) => {
    const error = new (Class as unknown as new (...a: unknown[]) => errors.SalvoError)(...args);
    expect(error).toBeInstanceOf(errors.SalvoError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.name).toBe(Class.name);
    expect(error.message.length).toBeGreaterThan(0);
  });

  it("codes are unique", () => {
    expect(new Set(table.map(([, code]) => code)).size).toBe(table.length);
  });

  it("keeps the cause", () => {
    const cause = new Error("socket hang up");
    expect(new errors.NetworkError("reset", {}, { cause }).cause).toBe(cause);
  });

  it("ConfigError names the place, the field, what was expected and what was given", () => {
    const error = new errors.ConfigError({
      where: "scenario.yaml",
      field: "faults.p500",
      expected: "a probability between 0 and 1",
      got: 1.5,
    });
    expect(error.message).toBe(
      "scenario.yaml: faults.p500: expected a probability between 0 and 1, got 1.5",
    );
  });

  it("a bad value too deep to print does not crash the error that names it", () => {
    let deep: unknown[] = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const error = new errors.ConfigError({
      where: "salvo.json",
      field: "rpm",
      expected: "a number",
      got: deep,
    });
    expect(error.message).toBe("salvo.json: rpm: expected a number, got an array");
  });

  it("RequestTooLargeError names the dimension, the limit and the cost", () => {
    const error = new errors.RequestTooLargeError({ dimension: "tokens", limit: 1000, cost: 4000 });
    expect(error.message).toBe("the request costs 4000 tokens but the limit is 1000 per minute");
    expect([error.dimension, error.limit, error.cost]).toEqual(["tokens", 1000, 4000]);
  });
});

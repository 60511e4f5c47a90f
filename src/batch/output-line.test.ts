import { describe, expect, it } from "vitest";
import {
  DeadlineExceededError,
  InputLineError,
  RateLimitError,
  SchedulerClosedError,
} from "../errors.ts";
import type { BatchItem } from "./input-line.ts";
import {
  failureKind,
  formatOutputLine,
  invalidDigest,
  invalidOutputLine,
  itemError,
  itemOutcomeFrom,
  outputLine,
  redoOf,
  requestDigest,
} from "./output-line.ts";

const item: BatchItem = {
  index: 4,
  line: 6,
  customId: "req-5",
  provider: "openai",
  request: { path: "/chat/completions", body: { model: "m", messages: [] } },
};

describe("outputLine", () => {
  it("a success: the OpenAI Batch shape plus attempts, latency_ms, usage and line", () => {
    const line = outputLine(item, {
      ok: true,
      value: {
        status: 200,
        body: { choices: [] },
        requestId: "req_abc",
        usage: { inputTokens: 10, outputTokens: 3, cachedInputTokens: 4 },
      },
      attempts: 2,
      latencyMs: 812.6,
    });
    expect(line).toEqual({
      id: "batch_req_4",
      custom_id: "req-5",
      response: { status_code: 200, request_id: "req_abc", body: { choices: [] } },
      error: null,
      attempts: 2,
      latency_ms: 813,
      usage: { input_tokens: 10, output_tokens: 3, cached_input_tokens: 4 },
      line: 6,
      request_sha256: requestDigest(item).toString("hex"),
    });
    expect(Object.keys(line).slice(0, 4)).toEqual(["id", "custom_id", "response", "error"]);
    const bare = outputLine(item, {
      ok: true,
      value: { status: 200, body: null },
      attempts: 1,
      latencyMs: 1,
    });
    expect(bare.response?.request_id).toBeNull();
    expect(bare.usage).toBeNull();
  });

  it("a failed call: response null, a typed error with its code and last status", () => {
    const error = new RateLimitError(undefined, { status: 429 });
    const line = outputLine(item, {
      ok: false,
      error: itemError(error),
      attempts: 5,
      latencyMs: 3000,
    });
    expect(line).toMatchObject({
      custom_id: "req-5",
      response: null,
      error: {
        code: "SALVO_RATE_LIMITED",
        message: "rate limited by the provider (429)",
        status: 429,
      },
      attempts: 5,
      usage: null,
    });
    expect(JSON.parse(formatOutputLine(line))).toEqual(line);
  });

  it("an invalid input line: SALVO_INPUT_INVALID with the file:line message", () => {
    const error = new InputLineError({
      file: "in.jsonl",
      line: 9,
      field: "body",
      expected: "a JSON object",
      got: 1,
    });
    expect(invalidOutputLine({ index: 7, line: 9, customId: undefined, error })).toEqual({
      id: "batch_req_7",
      custom_id: null,
      response: null,
      error: {
        code: "SALVO_INPUT_INVALID",
        message: "in.jsonl:9: body: expected a JSON object, got 1",
      },
      attempts: 0,
      latency_ms: 0,
      usage: null,
      line: 9,
    });
  });
});

describe("itemError and itemOutcomeFrom", () => {
  it("keeps codes, finds the status of a scheduler error's cause, and maps unknown errors", () => {
    const deadline = new DeadlineExceededError(
      undefined,
      {},
      { cause: new RateLimitError(undefined, { status: 429 }) },
    );
    expect(itemError(deadline)).toEqual({
      code: "SALVO_DEADLINE_EXCEEDED",
      message: "the deadline was exceeded",
      status: 429,
    });
    expect(itemError(new SchedulerClosedError())).toEqual({
      code: "SALVO_CLOSED",
      message: "the scheduler is closed",
    });
    expect(itemError(new DOMException("stop", "AbortError")).code).toBe("SALVO_ABORTED");
    expect(itemError(new TypeError("bug"))).toEqual({ code: "SALVO_ERROR", message: "bug" });
    expect(itemError("weird")).toEqual({ code: "SALVO_ERROR", message: "weird" });
  });

  it("converts scheduler outcomes", () => {
    expect(
      itemOutcomeFrom({
        ok: true,
        id: 1,
        index: 1,
        attempts: 1,
        latencyMs: 5,
        value: {
          status: 200,
          body: { x: 1 },
          usage: undefined,
          rateLimits: undefined,
          requestId: "r",
          cached: false,
          shared: false,
        },
      }),
    ).toEqual({
      ok: true,
      value: {
        status: 200,
        body: { x: 1 },
        requestId: "r",
        usage: undefined,
        cached: false,
        shared: false,
      },
      attempts: 1,
      latencyMs: 5,
    });
    expect(
      itemOutcomeFrom({
        ok: false,
        id: 1,
        index: 1,
        attempts: 3,
        latencyMs: 9,
        reason: "attempts-exhausted",
        error: new RateLimitError(),
      }),
    ).toEqual({
      ok: false,
      error: { code: "SALVO_RATE_LIMITED", message: "rate limited by the provider (429)" },
      attempts: 3,
      latencyMs: 9,
    });
  });
});

describe("what a rerun does with an existing line", () => {
  const answered = (it: BatchItem) => ({
    custom_id: it.customId,
    error: null,
    line: it.line,
    request_sha256: requestDigest(it).toString("hex"),
  });
  const failed = (code: string, status?: number) => ({
    ...answered(item),
    response: null,
    error: status === undefined ? { code, message: "m" } : { code, message: "m", status },
  });

  it("the request digest ignores key order and whitespace, and sees the default model and the prompt", () => {
    const reordered: BatchItem = {
      ...item,
      request: { body: { messages: [], model: "m" }, path: "/chat/completions" },
    };
    expect(requestDigest(reordered)).toEqual(requestDigest(item));
    const edited: BatchItem = {
      ...item,
      request: {
        path: "/chat/completions",
        body: { model: "m", messages: [{ role: "user", content: "x" }] },
      },
    };
    expect(requestDigest(edited)).not.toEqual(requestDigest(item));
    expect(requestDigest({ ...item, provider: "anthropic" })).not.toEqual(requestDigest(item));
  });

  it("keeps an answer to the same request, and runs again one whose request changed", () => {
    expect(redoOf(answered(item), requestDigest(item))).toBeUndefined();
    const other = requestDigest({
      ...item,
      request: { path: "/embeddings", body: { model: "m" } },
    });
    expect(redoOf(answered(item), other)).toEqual({ reason: "changed", code: undefined });
    // Written before lines carried a digest: nothing to compare, kept.
    const { request_sha256: _, ...old } = answered(item);
    expect(redoOf(old, other)).toBeUndefined();
  });

  it("an invalid line is redone when the line is no longer the same invalid line", () => {
    const line = {
      custom_id: null,
      error: { code: "SALVO_INPUT_INVALID", message: "in:3: bad" },
      line: 3,
    };
    expect(redoOf(line, invalidDigest("in:3: bad"))).toBeUndefined();
    expect(redoOf(line, invalidDigest("in:3: other"))?.reason).toBe("changed");
    expect(redoOf(line, requestDigest(item))?.reason).toBe("changed");
  });

  it.each([
    ["SALVO_TIMEOUT", undefined, "transient"],
    ["SALVO_NETWORK_ERROR", undefined, "transient"],
    ["SALVO_SERVER_ERROR", 500, "transient"],
    ["SALVO_OVERLOADED", 529, "transient"],
    ["SALVO_RATE_LIMITED", 429, "transient"],
    ["SALVO_INVALID_RESPONSE", 200, "transient"],
    ["SALVO_DEADLINE_EXCEEDED", 503, "transient"],
    ["SALVO_CLIENT_ERROR", 408, "transient"],
    ["SALVO_CLIENT_ERROR", 400, "permanent"],
    ["SALVO_CLIENT_ERROR", 401, "permanent"],
    ["SALVO_CLIENT_ERROR", 403, "permanent"],
    ["SALVO_CLIENT_ERROR", 404, "permanent"],
    ["SALVO_QUOTA_EXCEEDED", 429, "permanent"],
    ["SALVO_REQUEST_TOO_LARGE", undefined, "permanent"],
    ["SALVO_PROVIDER_ERROR", 422, "permanent"],
    ["SALVO_PROVIDER_ERROR", 502, "transient"],
  ] as const)("%s (%s) is %s", (code, status, kind) => {
    expect(failureKind({ code, status })).toBe(kind);
    const redo = redoOf(failed(code, status), requestDigest(item));
    expect(redo).toEqual(kind === "transient" ? { reason: "transient", code } : undefined);
    const all = redoOf(failed(code, status), requestDigest(item), { retryFailed: true });
    expect(all).toEqual({ reason: kind, code });
  });

  it("an item a budget stopped is always run again", () => {
    expect(redoOf(failed("SALVO_BUDGET_EXCEEDED"), requestDigest(item))).toEqual({
      reason: "budget",
      code: "SALVO_BUDGET_EXCEEDED",
    });
  });
});

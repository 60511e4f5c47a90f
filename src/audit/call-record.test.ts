import { describe, expect, it } from "vitest";
import { ServerError } from "../errors.ts";
import type { ProviderResult } from "../providers/provider.ts";
import {
  allowedHeaders,
  applyContentMode,
  buildCallRecord,
  type CallRecordInput,
  DEFAULT_HEADER_ALLOWLIST,
} from "./call-record.ts";
import { canonicalJson, sha256Hex } from "./chain-record.ts";

const request = {
  path: "/chat/completions",
  body: {
    model: "gpt-4o",
    max_tokens: 50,
    temperature: 0.2,
    messages: [{ role: "user", content: "hi" }],
  },
};
const result: ProviderResult & { headers: Record<string, string> } = {
  status: 200,
  body: { id: "chatcmpl-1", model: "gpt-4o-2024-08-06", choices: [{ finish_reason: "stop" }] },
  usage: { inputTokens: 12, outputTokens: 3, cachedInputTokens: 0 },
  rateLimits: undefined,
  requestId: "req_1",
  headers: {
    "x-request-id": "req_1",
    authorization: "Bearer sk-secret",
    "x-ratelimit-remaining-tokens": "999",
  },
};
const input = (over: Partial<CallRecordInput>): CallRecordInput => ({
  runId: "run-1",
  id: 7,
  attemptId: "att-1",
  attempt: 2,
  index: 3,
  startedAt: 0,
  endedAt: 1500,
  durationMs: 1500.1234,
  context: { claim_id: "C1" },
  provider: "openai",
  request,
  headerAllowlist: [...DEFAULT_HEADER_ALLOWLIST, "authorization"],
  ...over,
});

describe("call records", () => {
  it("use OpenTelemetry GenAI names for a success", () => {
    const record = buildCallRecord(input({ result }));
    expect(record).toMatchObject({
      run_id: "run-1",
      call_id: "7",
      attempt_id: "att-1",
      attempt: 2,
      index: 3,
      ts_start: "1970-01-01T00:00:00.000Z",
      ts_end: "1970-01-01T00:00:01.500Z",
      duration_ms: 1500.123,
      status: "ok",
      http_status: 200,
      context: { claim_id: "C1" },
    });
    expect(record.attributes).toEqual({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "openai",
      "gen_ai.system": "openai",
      "gen_ai.request.model": "gpt-4o",
      "gen_ai.request.max_tokens": 50,
      "gen_ai.request.temperature": 0.2,
      "gen_ai.response.model": "gpt-4o-2024-08-06",
      "gen_ai.response.id": "chatcmpl-1",
      "gen_ai.response.finish_reasons": ["stop"],
      "gen_ai.usage.input_tokens": 12,
      "gen_ai.usage.output_tokens": 3,
      "gen_ai.usage.cache_read.input_tokens": 0,
      "salvo.provider.request_id": "req_1",
    });
    // Headers from the allowlist only; a credential is refused even when listed.
    expect(record.headers).toEqual({
      "x-request-id": "req_1",
      "x-ratelimit-remaining-tokens": "999",
    });
  });

  it("record the error's code, message, status and error.type for a failure", () => {
    const error = new ServerError("openai answered 500", {
      status: 500,
      providerCode: "server_error",
    });
    const record = buildCallRecord(input({ error }));
    expect(record.status).toBe("error");
    expect(record.http_status).toBe(500);
    expect(record.error).toEqual({
      code: "SALVO_SERVER_ERROR",
      message: "openai answered 500",
      status: 500,
      provider_code: "server_error",
    });
    expect(record.attributes["error.type"]).toBe("SALVO_SERVER_ERROR");
    expect(record.attributes["gen_ai.response.finish_reasons"]).toEqual(["error"]);
  });

  it("keep content by mode: full, hash (sha256 only) or none", () => {
    const record = buildCallRecord(input({ result }));
    const sha = sha256Hex(canonicalJson(request.body));
    expect(applyContentMode(record, "full").request).toEqual({ sha256: sha, body: request.body });
    expect(applyContentMode(record, "hash").request).toEqual({ sha256: sha });
    expect(applyContentMode(record, "hash").response).toEqual({
      sha256: sha256Hex(canonicalJson(result.body)),
    });
    const none = applyContentMode(record, "none");
    expect("request" in none || "response" in none).toBe(false);
  });

  it("read headers from fetch Headers too, case-insensitively", () => {
    const headers = new Headers({ "X-Request-Id": "r", "X-Api-Key": "k", Cookie: "c" });
    expect(allowedHeaders(headers, ["x-request-id", "x-api-key", "cookie"])).toEqual({
      "x-request-id": "r",
    });
  });
});

// One attempt's call-log record, with OpenTelemetry GenAI attribute names (semantic conventions,
// Development status): `gen_ai.provider.name` (and the deprecated `gen_ai.system`, same value),
// `gen_ai.operation.name`, `gen_ai.request.*`, `gen_ai.response.*`, `gen_ai.usage.*`, `error.type`.
import type { SalvoResult } from "../cache/call-layer.ts";
import type { ItemId } from "../core/outcome.ts";
import { MAX_JSON_DEPTH, valueTooDeep } from "../providers/json-depth.ts";
import type { ProviderRequest, ProviderResult } from "../providers/provider.ts";
import type { AuditContext } from "./audit-context.ts";
import { canonicalJson, sha256Hex } from "./chain-record.ts";

/** How request and response bodies are recorded. */
export type ContentMode = "full" | "hash" | "none";

/**
 * A body as recorded: its SHA-256 (hex) over canonical JSON, and the body itself in `full` mode.
 * A redaction hook sees `body` in every mode (the record is built in full first).
 */
export type RecordedContent = { sha256?: string | undefined; body?: unknown };

/** The fields of an `llm_call` record (the chain adds type, writer, seq, prev, ts, hash). */
export type CallRecord = {
  run_id: string;
  /** The scheduler's item id, as a string. */
  call_id: string;
  /** Unique per attempt (UUID). */
  attempt_id: string;
  attempt: number;
  index: number;
  /** Wall-clock start and end (ISO 8601); the duration is monotonic, ms. */
  ts_start: string;
  ts_end: string;
  duration_ms: number;
  status: "ok" | "error";
  /** The HTTP status, when there was a response. */
  http_status?: number | undefined;
  context: AuditContext;
  attributes: Record<string, unknown>;
  error?:
    | {
        code: string;
        message: string;
        status?: number | undefined;
        provider_code?: string | undefined;
      }
    | undefined;
  /** Allowlisted response headers (never credentials). */
  headers?: Record<string, string> | undefined;
  request?: RecordedContent | undefined;
  response?: RecordedContent | undefined;
};

/** Headers recorded when present: none carries a credential. */
export const DEFAULT_HEADER_ALLOWLIST: readonly string[] = [
  "x-request-id",
  "request-id",
  "openai-processing-ms",
  "openai-model",
  "openai-version",
  "anthropic-organization-id",
  "retry-after",
  "retry-after-ms",
  "x-should-retry",
  "x-ratelimit-limit-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens",
];

/** Never recorded, even when allowlisted. */
const NEVER =
  /^(authorization|proxy-authorization|x-api-key|api-key|x-goog-api-key|cookie|set-cookie)$|api[-_]?key|secret|auth/i;

export function allowedHeaders(
  headers: unknown,
  allowlist: readonly string[],
): Record<string, string> | undefined {
  if (headers === undefined || headers === null || typeof headers !== "object") return undefined;
  const get =
    typeof (headers as { get?: unknown }).get === "function"
      ? (name: string) => (headers as { get(n: string): string | null }).get(name) ?? undefined
      : (name: string) => {
          for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
            if (key.toLowerCase() === name)
              return Array.isArray(value) ? value.join(", ") : String(value);
          }
          return undefined;
        };
  const out: Record<string, string> = {};
  for (const name of allowlist) {
    const lower = name.toLowerCase();
    if (NEVER.test(lower)) continue;
    const value = get(lower);
    if (value !== undefined) out[lower] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function operationName(path: string): string {
  if (path.includes("embeddings")) return "embeddings";
  if (/(^|\/)completions$/.test(path) && !path.includes("chat")) return "text_completion";
  return "chat";
}

/** OTel GenAI request attributes of a request body. */
export function requestAttributes(
  provider: string,
  request: ProviderRequest,
): Record<string, unknown> {
  const body = request.body;
  const attributes: Record<string, unknown> = {
    "gen_ai.operation.name": operationName(request.path),
    "gen_ai.provider.name": provider,
    "gen_ai.system": provider,
  };
  const pick = (name: string, value: unknown) => {
    if (typeof value === "string" || typeof value === "number") attributes[name] = value;
  };
  pick("gen_ai.request.model", body.model);
  pick("gen_ai.request.max_tokens", body.max_tokens ?? body.max_completion_tokens);
  pick("gen_ai.request.temperature", body.temperature);
  pick("gen_ai.request.top_p", body.top_p);
  pick("gen_ai.request.seed", body.seed);
  return attributes;
}

/** OTel GenAI response attributes of a provider result (OpenAI or Anthropic shaped). */
export function responseAttributes(result: ProviderResult): Record<string, unknown> {
  const body = (result.body ?? {}) as Record<string, unknown>;
  const attributes: Record<string, unknown> = {};
  if (typeof body.model === "string") attributes["gen_ai.response.model"] = body.model;
  if (typeof body.id === "string") attributes["gen_ai.response.id"] = body.id;
  const reasons: string[] = [];
  if (Array.isArray(body.choices)) {
    for (const choice of body.choices as Array<{ finish_reason?: unknown }>) {
      if (typeof choice?.finish_reason === "string") reasons.push(choice.finish_reason);
    }
  } else if (typeof body.stop_reason === "string") reasons.push(body.stop_reason);
  if (reasons.length > 0) attributes["gen_ai.response.finish_reasons"] = reasons;
  if (result.usage) {
    attributes["gen_ai.usage.input_tokens"] = result.usage.inputTokens;
    attributes["gen_ai.usage.output_tokens"] = result.usage.outputTokens;
    if (result.usage.cachedInputTokens !== undefined) {
      attributes["gen_ai.usage.cache_read.input_tokens"] = result.usage.cachedInputTokens;
    }
  }
  if (result.requestId !== undefined) attributes["salvo.provider.request_id"] = result.requestId;
  // Salvo's own: what the answer cost (absent: unknown price), and whether it was called at all.
  const { cost, cached, shared } = result as SalvoResult;
  if (cost?.usd !== undefined) attributes["salvo.cost.usd"] = cost.usd;
  if (cached) attributes["salvo.cache.hit"] = true;
  if (shared) attributes["salvo.shared"] = true;
  return attributes;
}

/** The `error` of a failed attempt and its `error.type` (the stable code, else the class name). */
export function errorFields(error: unknown): {
  error: NonNullable<CallRecord["error"]>;
  type: string;
  requestId: string | undefined;
} {
  const e = (error ?? {}) as {
    code?: unknown;
    name?: unknown;
    message?: unknown;
    status?: unknown;
    providerCode?: unknown;
    requestId?: unknown;
  };
  const code = typeof e.code === "string" ? e.code : typeof e.name === "string" ? e.name : "Error";
  return {
    type: code,
    requestId: typeof e.requestId === "string" ? e.requestId : undefined,
    error: {
      code,
      message: typeof e.message === "string" ? e.message : String(error),
      status: typeof e.status === "number" ? e.status : undefined,
      provider_code: typeof e.providerCode === "string" ? e.providerCode : undefined,
    },
  };
}

/** The record with its bodies as the mode keeps them: hashed (`hash`), both (`full`), gone (`none`). */
export function applyContentMode(record: CallRecord, mode: ContentMode): CallRecord {
  const out = { ...record };
  for (const key of ["request", "response"] as const) {
    const content = record[key];
    if (mode === "none" || content === undefined || content.body === undefined) {
      delete out[key];
      continue;
    }
    const sha256 = sha256Hex(canonicalJson(content.body));
    out[key] = mode === "full" ? { sha256, body: content.body } : { sha256 };
  }
  return out;
}

export type CallRecordInput = {
  runId: string;
  id: ItemId;
  attemptId: string;
  attempt: number;
  index: number;
  startedAt: number;
  endedAt: number;
  durationMs: number;
  context: AuditContext;
  provider: string;
  request: ProviderRequest;
  result?: ProviderResult | undefined;
  error?: unknown;
  headerAllowlist: readonly string[];
};

/**
 * A body as the record holds it. One nested deeper than MAX_JSON_DEPTH (a library caller's, or a
 * custom provider's; input lines and the SDK providers refuse them) cannot be canonicalised
 * safely: the record says so instead.
 */
function recordable(body: unknown): unknown {
  return valueTooDeep(body) ? `[not recorded: nested deeper than ${MAX_JSON_DEPTH} levels]` : body;
}

/** The full record of an attempt, bodies included (the content mode is applied after redaction). */
export function buildCallRecord(input: CallRecordInput): CallRecord {
  const attributes = requestAttributes(input.provider, input.request);
  const record: CallRecord = {
    run_id: input.runId,
    call_id: String(input.id),
    attempt_id: input.attemptId,
    attempt: input.attempt,
    index: input.index,
    ts_start: new Date(input.startedAt).toISOString(),
    ts_end: new Date(input.endedAt).toISOString(),
    duration_ms: Math.round(input.durationMs * 1000) / 1000,
    status: input.result ? "ok" : "error",
    context: input.context,
    attributes,
    request: { body: recordable(input.request.body) },
  };
  if (input.result) {
    record.http_status = input.result.status;
    Object.assign(attributes, responseAttributes(input.result));
    record.response = { body: recordable(input.result.body) };
    const headers = allowedHeaders(
      (input.result as { headers?: unknown }).headers,
      input.headerAllowlist,
    );
    if (headers) record.headers = headers;
  } else {
    const { error, type, requestId } = errorFields(input.error);
    record.error = error;
    if (error.status !== undefined) record.http_status = error.status;
    attributes["error.type"] = type;
    attributes["gen_ai.response.finish_reasons"] = ["error"];
    if (requestId !== undefined) attributes["salvo.provider.request_id"] = requestId;
  }
  return record;
}

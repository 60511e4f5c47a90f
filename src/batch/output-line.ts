// One line of a batch output file: the OpenAI Batch output shape, plus Salvo's `attempts`,
// `latency_ms`, `usage`, the input `line` and the `request_sha256` of what was asked. Built from
// an item and its outcome. Also what a rerun does with a line it finds: keep it, or run its item
// again (`redoOf`).

import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { SalvoResult } from "../cache/call-layer.ts";
import type { Outcome } from "../core/outcome.ts";
import { ProviderError } from "../errors.ts";
import type { TokenUsage } from "../providers/provider.ts";
import type { BatchItem, InvalidLine } from "./input-line.ts";

/** Why an item failed, as the output records it. */
export type ItemError = {
  /** A stable Salvo error code, e.g. `SALVO_RATE_LIMITED`, `SALVO_CLIENT_ERROR`. */
  code: string;
  message: string;
  /** The last HTTP status the provider answered, when there was one. */
  status?: number | undefined;
};

/** What a successful call returned. */
export type ItemValue = {
  /** The HTTP status (200 for a custom function). */
  status: number;
  /** The provider's response body, unchanged. */
  body: unknown;
  requestId?: string | undefined;
  usage?: TokenUsage | undefined;
  /** What the call cost, USD; undefined when unknown (no usage, or no price for the model). */
  costUsd?: number | undefined;
  /** From the response cache: no call was made. */
  cached?: boolean | undefined;
  /** Shared with an identical request in flight: no call of its own. */
  shared?: boolean | undefined;
  /** Answered by the provider's batch API, in this batch (priced at its batch price). */
  batchId?: string | undefined;
};

/** How one item ended: the result `runBatch`'s `execute` resolves with. */
export type ItemOutcome =
  | {
      ok: true;
      value: ItemValue;
      /** Attempts made (1 if the first succeeded). */
      attempts: number;
      /** From the first attempt's start to the answer, in milliseconds. */
      latencyMs: number;
    }
  | {
      ok: false;
      error: ItemError;
      attempts: number;
      latencyMs: number;
    };

/** One output line, as written (one JSON object per line, in input order). */
export type OutputLine = {
  /** `batch_req_<index>`: stable across resumes. */
  id: string;
  /** The item's custom_id; `null` for an invalid line without a readable one. */
  custom_id: string | null;
  response: { status_code: number; request_id: string | null; body: unknown } | null;
  error: ItemError | null;
  /** Attempts made; 0 for an invalid input line. */
  attempts: number;
  /** Milliseconds from the first attempt's start to the outcome; 0 for an invalid line. */
  latency_ms: number;
  usage: { input_tokens: number; output_tokens: number; cached_input_tokens?: number } | null;
  /** What this answer cost now, USD (0 from the cache or shared); absent when unknown. */
  cost_usd?: number;
  /** Present (true) when the answer came from the response cache: no call was made. */
  cached?: true;
  /** Present (true) when the answer was shared with an identical request in flight. */
  shared?: true;
  /**
   * Present when the provider's batch API answered this line (`--backend batch|auto`): the id
   * of its batch; `cost_usd` is then at the batch price.
   */
  batch_id?: string;
  /** The 1-based line of the input file this answers. */
  line: number;
  /**
   * SHA-256 (hex) of the request that was asked (`requestDigest`), so a rerun can tell an answer
   * to a line edited since. Absent on invalid lines and on lines written by Salvo before 0.2.
   */
  request_sha256?: string;
};

function usageOf(usage: TokenUsage | undefined): OutputLine["usage"] {
  if (usage === undefined) return null;
  return {
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    ...(usage.cachedInputTokens === undefined
      ? {}
      : { cached_input_tokens: usage.cachedInputTokens }),
  };
}

/** The output line of an item that was called. */
export function outputLine(item: BatchItem, outcome: ItemOutcome): OutputLine {
  const base = {
    id: `batch_req_${item.index}`,
    custom_id: item.customId,
  };
  if (outcome.ok) {
    return {
      ...base,
      response: {
        status_code: outcome.value.status,
        request_id: outcome.value.requestId ?? null,
        body: outcome.value.body,
      },
      error: null,
      attempts: outcome.attempts,
      latency_ms: Math.round(outcome.latencyMs),
      usage: usageOf(outcome.value.usage),
      ...(outcome.value.costUsd === undefined ? {} : { cost_usd: outcome.value.costUsd }),
      ...(outcome.value.cached ? { cached: true as const } : {}),
      ...(outcome.value.shared ? { shared: true as const } : {}),
      ...(outcome.value.batchId === undefined ? {} : { batch_id: outcome.value.batchId }),
      line: item.line,
      request_sha256: requestDigest(item).toString("hex"),
    };
  }
  const { code, message, status } = outcome.error;
  return {
    ...base,
    response: null,
    error: status === undefined ? { code, message } : { code, message, status },
    attempts: outcome.attempts,
    latency_ms: Math.round(outcome.latencyMs),
    usage: null,
    line: item.line,
    request_sha256: requestDigest(item).toString("hex"),
  };
}

/**
 * Error codes of items that were not attempted (the run's budget refused them, or the provider's
 * batch API never ran them and the run deadline left no time to run them in real time): their
 * lines do not count as done, and a rerun runs them.
 */
export const RERUN_CODES: ReadonlySet<string> = new Set([
  "SALVO_BUDGET_EXCEEDED",
  "SALVO_PRICE_UNKNOWN",
  "SALVO_BATCH_NOT_RUN",
]);

/** Whether a parsed output line is one of an item not attempted (see `RERUN_CODES`). */
export function isRerun(line: unknown): boolean {
  const error = (line as { error?: { code?: unknown } | null } | null)?.error;
  return typeof error?.code === "string" && RERUN_CODES.has(error.code);
}

/** The output line of an invalid input line: `error.code` is `SALVO_INPUT_INVALID`. */
export function invalidOutputLine(entry: InvalidLine): OutputLine {
  return {
    id: `batch_req_${entry.index}`,
    custom_id: entry.customId ?? null,
    response: null,
    error: { code: entry.error.code, message: entry.error.message },
    attempts: 0,
    latency_ms: 0,
    usage: null,
    line: entry.line,
  };
}

/** The line's text, without the newline. */
export function formatOutputLine(line: OutputLine): string {
  return JSON.stringify(line);
}

/**
 * Any thrown value as an ItemError: a SalvoError keeps its `code`, and the HTTP `status` of a
 * ProviderError (itself or as the `cause` of a scheduler error); an AbortError is
 * `SALVO_ABORTED`; anything else is `SALVO_ERROR`.
 */
export function itemError(error: unknown): ItemError {
  if (error instanceof ProviderError)
    return error.status === undefined
      ? { code: error.code, message: error.message }
      : { code: error.code, message: error.message, status: error.status };
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("SALVO_")) {
      // A scheduler error (deadline, aborted) keeps the last attempt's error as its cause.
      const status = error.cause instanceof ProviderError ? error.cause.status : undefined;
      return status === undefined
        ? { code, message: error.message }
        : { code, message: error.message, status };
    }
    if (error.name === "AbortError") return { code: "SALVO_ABORTED", message: error.message };
    return { code: "SALVO_ERROR", message: error.message };
  }
  return { code: "SALVO_ERROR", message: String(error) };
}

/** A Salvo answer as a succeeded ItemOutcome. */
export function answeredOutcome(
  value: SalvoResult,
  attempts: number,
  latencyMs: number,
): ItemOutcome {
  return {
    ok: true,
    value: {
      status: value.status,
      body: value.body,
      requestId: value.requestId,
      usage: value.usage,
      costUsd: value.cost?.usd,
      cached: value.cached,
      shared: value.shared,
    },
    attempts,
    latencyMs,
  };
}

/** A Salvo outcome (`Outcome<SalvoResult>`) as an ItemOutcome. */
export function itemOutcomeFrom(outcome: Outcome<SalvoResult>): ItemOutcome {
  if (outcome.ok) return answeredOutcome(outcome.value, outcome.attempts, outcome.latencyMs);
  return {
    ok: false,
    error: itemError(outcome.error),
    attempts: outcome.attempts,
    latencyMs: outcome.latencyMs,
  };
}

/**
 * SHA-256 of what an item asks: its provider and request (path and body, the default model filled
 * in) as RFC 8785 canonical JSON, so key order and whitespace in the input do not count.
 */
export function requestDigest(item: Pick<BatchItem, "provider" | "request">): Buffer {
  const text = canonicalize({ provider: item.provider, request: item.request }) ?? "";
  return createHash("sha256").update(text).digest();
}

/** SHA-256 standing for an invalid line: its error message (which quotes what was wrong). */
export function invalidDigest(message: string): Buffer {
  return createHash("sha256").update(`invalid\n${message}`).digest();
}

/** Failures a rerun runs again by default: the provider may well answer next time. */
export type FailureKind = "transient" | "permanent";

/**
 * Codes of failures that another attempt later will not fix: the request itself is refused
 * (400 bad request or context too long, 401, 403, 404, 413, 422), the account is out of quota,
 * the request can never fit the token limits, or the task threw an error of its own. Any other
 * failure (timeouts, network errors, 5xx, 429 and 529 after their attempts, malformed answers) is
 * transient.
 */
const PERMANENT_CODES: ReadonlySet<string> = new Set([
  "SALVO_QUOTA_EXCEEDED",
  "SALVO_REQUEST_TOO_LARGE",
  "SALVO_CONFIG_INVALID",
  "SALVO_ERROR",
]);

/** Whether a failed line's error is worth running again (see `PERMANENT_CODES`). */
export function failureKind(error: Pick<ItemError, "code" | "status">): FailureKind {
  const { code, status } = error;
  if (PERMANENT_CODES.has(code)) return "permanent";
  // Statuses the retry policy retries (408 timeout, 409 conflict, 429) are transient; any other
  // 4xx the provider gave is about the request itself.
  if (status === 408 || status === 409 || status === 429) return "transient";
  if (code === "SALVO_CLIENT_ERROR") return "permanent";
  if (code === "SALVO_PROVIDER_ERROR" && status !== undefined && status >= 400 && status < 500)
    return "permanent";
  return "transient";
}

/**
 * Why a rerun runs an item again although its line exists: `budget` (not attempted: a budget
 * stopped the run), `changed` (its input line was edited since it was answered), `transient` (it
 * failed in a way that may pass now), `permanent` (it failed for good, run again because
 * `retryFailed` asks).
 */
export type RedoReason = "budget" | "changed" | "transient" | "permanent";

export type Redo = {
  reason: RedoReason;
  /** The line's error code (undefined for a changed answer). */
  code: string | undefined;
};

/**
 * What a rerun does with an existing output line (as parsed JSON) of the item whose current input
 * digest is `digest` (`requestDigest`, or `invalidDigest` for an invalid line): undefined to keep
 * it, or why to run the item again. A line without `request_sha256` (written before it existed)
 * cannot be compared and counts as unchanged.
 */
export function redoOf(
  line: unknown,
  digest: Buffer | undefined,
  options: { retryFailed?: boolean | undefined } = {},
): Redo | undefined {
  const value = line as Partial<OutputLine> | null;
  const error = value?.error ?? null;
  const code = typeof error?.code === "string" ? error.code : undefined;
  if (code !== undefined && RERUN_CODES.has(code)) return { reason: "budget", code };
  if (digest !== undefined) {
    const seen =
      code === "SALVO_INPUT_INVALID"
        ? invalidDigest(String(error?.message)).toString("hex")
        : value?.request_sha256;
    if (typeof seen === "string" && seen !== digest.toString("hex"))
      return { reason: "changed", code };
  }
  if (error === null || code === undefined || code === "SALVO_INPUT_INVALID") return undefined;
  const kind = failureKind({
    code,
    status: typeof error.status === "number" ? error.status : undefined,
  });
  if (kind === "transient") return { reason: "transient", code };
  return options.retryFailed ? { reason: "permanent", code } : undefined;
}

// One line of a batch output file: the OpenAI Batch output shape, plus Salvo's `attempts`,
// `latency_ms`, `usage` and the input `line`. Built from an item and its outcome.

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

/** Whether a parsed output line is one of an item to run again (see `RERUN_CODES`). */
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

/** A Salvo outcome (`Outcome<SalvoResult>`) as an ItemOutcome. */
export function itemOutcomeFrom(outcome: Outcome<SalvoResult>): ItemOutcome {
  if (outcome.ok)
    return {
      ok: true,
      value: {
        status: outcome.value.status,
        body: outcome.value.body,
        requestId: outcome.value.requestId,
        usage: outcome.value.usage,
        costUsd: outcome.value.cost?.usd,
        cached: outcome.value.cached,
        shared: outcome.value.shared,
      },
      attempts: outcome.attempts,
      latencyMs: outcome.latencyMs,
    };
  return {
    ok: false,
    error: itemError(outcome.error),
    attempts: outcome.attempts,
    latencyMs: outcome.latencyMs,
  };
}

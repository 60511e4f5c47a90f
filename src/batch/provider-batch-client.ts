// A provider's own batch API (OpenAI Batch + Files, Anthropic Message Batches), as the batch
// backend of `salvo run` needs it: encode requests, submit a batch, find one again after a crash,
// poll it, cancel it, read its results. One interface, one implementation per provider
// (openai-batch-client.ts, anthropic-batch-client.ts), and test fakes are just more of them.
import type { ProviderRequest } from "../providers/provider.ts";
import type { ProviderName } from "../providers/provider-names.ts";

/** A provider's size limits for one batch. */
export type BatchLimits = {
  /** Most requests in one batch (OpenAI 50,000; Anthropic 100,000). */
  maxRequests: number;
  /** Most bytes of one batch: the input file (OpenAI, 200 MB) or request body (Anthropic, 256 MB). */
  maxBytes: number;
};

/** Requests that may share a batch: OpenAI wants one endpoint and one model per batch. */
export type BatchGroup = {
  /** Equal keys may share a batch. */
  key: string;
  /** The endpoint the batch runs, e.g. `/v1/chat/completions`. */
  endpoint: string;
  model: string | undefined;
};

/** A submitted batch as the provider reports it. */
export type ProviderBatchStatus = {
  id: string;
  /** `running` (validating, in progress, finalizing), `cancelling`, or `ended`. */
  state: "running" | "cancelling" | "ended";
  /** How it ended, once it has. */
  outcome: "completed" | "expired" | "cancelled" | "failed" | undefined;
  /** The provider's own word for its status (`in_progress`, `finalizing`, `canceling`...). */
  status: string;
  /** Requests in the batch, and those done so far (Anthropic counts them only at the end). */
  total: number;
  done: number;
  /** Why a failed batch failed, in the provider's words (its validation errors). */
  failure: string | undefined;
};

/** One line of a batch's results. */
export type ProviderBatchResult = {
  customId: string;
  /** The provider answered this request: the HTTP status and body (an error body if not 2xx). */
  response?: { status: number; body: unknown; requestId: string | undefined } | undefined;
  /** The request never ran: the batch expired or was cancelled first, or failed. */
  notRun?: "expired" | "cancelled" | "failed" | undefined;
  /** The provider's message for a request that did not run. */
  message?: string | undefined;
};

export interface ProviderBatchClient {
  readonly provider: ProviderName;
  readonly limits: BatchLimits;
  /** Bytes a batch adds around its encoded lines: `fixed + perLine * lines + sum(line bytes)`. */
  readonly framing: { fixed: number; perLine: number };
  /** Which batches a request may go in. */
  groupOf(request: ProviderRequest): BatchGroup;
  /** The request as one line of a batch, in the provider's format. */
  encode(customId: string, request: ProviderRequest): string;
  /**
   * Uploads the lines as a batch input file (OpenAI); resolves with its id. Providers without
   * input files (Anthropic) have no `upload`: `create` takes the lines.
   */
  upload?(lines: readonly string[], name: string, signal: AbortSignal): Promise<string>;
  /** Creates a batch, tagged with `tag` where the provider keeps metadata; resolves with its id. */
  create(
    input: {
      group: BatchGroup;
      tag: string;
      fileId?: string | undefined;
      lines?: readonly string[];
    },
    signal: AbortSignal,
  ): Promise<string>;
  /**
   * Finds a batch that `create` may have made just before a crash (the answer never reached the
   * state file): by its tag (OpenAI metadata), else a batch of `requests` requests created since
   * `sinceMs` (epoch) that is none of `known`. Undefined when there is none, or no single one.
   */
  find(
    query: { tag: string; sinceMs: number; requests: number; known: ReadonlySet<string> },
    signal: AbortSignal,
  ): Promise<string | undefined>;
  retrieve(id: string, signal: AbortSignal): Promise<ProviderBatchStatus>;
  /** Asks the provider to cancel; what it processed by then stays in its results. */
  cancel(id: string, signal: AbortSignal): Promise<void>;
  /** Every result line of an ended batch, streamed. */
  results(id: string, signal: AbortSignal): AsyncIterable<ProviderBatchResult>;
  /** Deletes an uploaded input file no batch will use (best effort). */
  discard?(fileId: string, signal: AbortSignal): Promise<void>;
}

/** The bytes of a batch of lines of `lineBytes` bytes each, framing included. */
export function batchBytes(
  client: Pick<ProviderBatchClient, "framing">,
  lines: number,
  lineBytes: number,
): number {
  return client.framing.fixed + client.framing.perLine * lines + lineBytes;
}

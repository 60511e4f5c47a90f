// Anthropic's Message Batches API through the official `@anthropic-ai/sdk`: the requests go in
// the create call's body (no input file), results come back as JSONL. Message Batches keep no
// metadata, so a batch created just before a crash is found again by its size and creation time.
// The SDK's own retries are off: the batch backend decides what to retry.
import Anthropic from "@anthropic-ai/sdk";
import { modelOf } from "../cost/pricing.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { errorFromSdk } from "../providers/sdk-errors.ts";
import type {
  BatchGroup,
  BatchLimits,
  ProviderBatchClient,
  ProviderBatchResult,
  ProviderBatchStatus,
} from "./provider-batch-client.ts";

/** Anthropic's documented limits: 100,000 requests and 256 MB per Message Batch. */
export const ANTHROPIC_BATCH_LIMITS: BatchLimits = {
  maxRequests: 100_000,
  maxBytes: 256 * 1024 * 1024,
};

export type AnthropicBatchClientOptions = {
  /** @default the SDK's (ANTHROPIC_API_KEY) */
  apiKey?: string | undefined;
  /** The API origin (no `/v1`). @default the SDK's (ANTHROPIC_BASE_URL) */
  baseURL?: string | undefined;
  /** An existing client; a copy with retries off is used. */
  client?: Anthropic | undefined;
  /** Tighter limits than Anthropic's. @default ANTHROPIC_BATCH_LIMITS */
  limits?: Partial<BatchLimits> | undefined;
};

const SDK_OPTIONS = { maxRetries: 0, timeout: 10 * 60_000 } as const;

type CreateParams = Anthropic.Messages.Batches.BatchCreateParams;

export class AnthropicBatchClient implements ProviderBatchClient {
  readonly provider = "anthropic";
  readonly limits: BatchLimits;
  /** `{"requests":[` + lines joined by `,` + `]}` */
  readonly framing = { fixed: 15, perLine: 1 };
  readonly #client: Anthropic;

  constructor(options: AnthropicBatchClientOptions = {}) {
    this.#client = options.client
      ? options.client.withOptions(SDK_OPTIONS)
      : new Anthropic({ apiKey: options.apiKey, baseURL: options.baseURL, ...SDK_OPTIONS });
    this.limits = { ...ANTHROPIC_BATCH_LIMITS, ...options.limits };
  }

  groupOf(request: ProviderRequest): BatchGroup {
    // Message Batches mix models freely.
    return { key: "messages", endpoint: "/v1/messages", model: modelOf(request.body) };
  }

  encode(customId: string, request: ProviderRequest): string {
    return JSON.stringify({ custom_id: customId, params: request.body });
  }

  async create(
    input: { lines?: readonly string[] | undefined },
    signal: AbortSignal,
  ): Promise<string> {
    const requests = (input.lines ?? []).map((line) =>
      JSON.parse(line),
    ) as CreateParams["requests"];
    return this.#sdk(signal, async () => {
      return (await this.#client.messages.batches.create({ requests }, { signal })).id;
    });
  }

  async find(
    query: { sinceMs: number; requests: number; known: ReadonlySet<string> },
    signal: AbortSignal,
  ): Promise<string | undefined> {
    return this.#sdk(signal, async () => {
      const candidates: string[] = [];
      // Newest first: stop at batches made well before the create was sent.
      for await (const batch of this.#client.messages.batches.list({ limit: 100 }, { signal })) {
        if (Date.parse(batch.created_at) < query.sinceMs - 60_000) break;
        const c = batch.request_counts;
        const total = c.processing + c.succeeded + c.errored + c.canceled + c.expired;
        if (total === query.requests && !query.known.has(batch.id)) candidates.push(batch.id);
      }
      return candidates.length === 1 ? candidates[0] : undefined;
    });
  }

  async retrieve(id: string, signal: AbortSignal): Promise<ProviderBatchStatus> {
    const batch = await this.#sdk(signal, () =>
      this.#client.messages.batches.retrieve(id, {}, { signal }),
    );
    const c = batch.request_counts;
    const total = c.processing + c.succeeded + c.errored + c.canceled + c.expired;
    const ended = batch.processing_status === "ended";
    return {
      id: batch.id,
      state: ended ? "ended" : batch.processing_status === "canceling" ? "cancelling" : "running",
      // Message Batches end one way; the requests say what happened to each.
      outcome: ended ? (batch.cancel_initiated_at ? "cancelled" : "completed") : undefined,
      status: batch.processing_status,
      total,
      done: total - c.processing,
      failure: undefined,
    };
  }

  async cancel(id: string, signal: AbortSignal): Promise<void> {
    await this.#sdk(signal, () => this.#client.messages.batches.cancel(id, {}, { signal }));
  }

  async *results(id: string, signal: AbortSignal): AsyncIterable<ProviderBatchResult> {
    const lines = await this.#sdk(signal, () =>
      this.#client.messages.batches.results(id, {}, { signal }),
    );
    for await (const line of lines) {
      const result = line.result;
      if (result.type === "succeeded")
        yield {
          customId: line.custom_id,
          response: { status: 200, body: result.message, requestId: undefined },
        };
      else if (result.type === "errored")
        yield {
          customId: line.custom_id,
          response: {
            status: statusOfError(result.error.error.type),
            body: result.error,
            requestId: result.error.request_id ?? undefined,
          },
        };
      else
        yield {
          customId: line.custom_id,
          notRun: result.type === "expired" ? "expired" : "cancelled",
        };
    }
  }

  async #sdk<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw errorFromSdk(error, "anthropic", signal);
    }
  }
}

/** The HTTP status the Messages API answers an error type with (an errored result has none). */
function statusOfError(type: string): number {
  switch (type) {
    case "invalid_request_error":
      return 400;
    case "authentication_error":
      return 401;
    case "billing_error":
      return 402;
    case "permission_error":
      return 403;
    case "not_found_error":
      return 404;
    case "request_too_large":
      return 413;
    case "rate_limit_error":
      return 429;
    case "timeout_error":
      return 504;
    case "overloaded_error":
      return 529;
    default:
      return 500;
  }
}

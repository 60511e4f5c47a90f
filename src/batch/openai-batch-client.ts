// OpenAI's Batch API through the official `openai` SDK: the input uploaded as a JSONL file
// (purpose `batch`), one batch per endpoint and model, `metadata.salvo_tag` to find a batch again
// after a crash, and the output and error files read back line by line. The SDK's own retries are
// off: the batch backend decides what to retry.
import OpenAI, { toFile } from "openai";
import { modelOf } from "../cost/pricing.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { errorFromSdk } from "../providers/sdk-errors.ts";
import { splitLines } from "./line-splitter.ts";
import type {
  BatchGroup,
  BatchLimits,
  ProviderBatchClient,
  ProviderBatchResult,
  ProviderBatchStatus,
} from "./provider-batch-client.ts";

/** OpenAI's documented limits: 50,000 requests and 200 MB per batch input file. */
export const OPENAI_BATCH_LIMITS: BatchLimits = {
  maxRequests: 50_000,
  maxBytes: 200 * 1024 * 1024,
};

export type OpenAIBatchClientOptions = {
  /** @default the SDK's (OPENAI_API_KEY) */
  apiKey?: string | undefined;
  /** @default the SDK's (OPENAI_BASE_URL or OpenAI) */
  baseURL?: string | undefined;
  /** An existing client; a copy with retries off is used. */
  client?: OpenAI | undefined;
  /** Tighter limits than OpenAI's (another OpenAI-compatible server's). @default OPENAI_BATCH_LIMITS */
  limits?: Partial<BatchLimits> | undefined;
};

type Endpoint = OpenAI.Batches.BatchCreateParams["endpoint"];

/** Control calls are small; result files can be large (their download gets 10 minutes). */
const SDK_OPTIONS = { maxRetries: 0, timeout: 10 * 60_000 } as const;

export class OpenAIBatchClient implements ProviderBatchClient {
  readonly provider = "openai";
  readonly limits: BatchLimits;
  readonly framing = { fixed: 0, perLine: 1 };
  readonly #client: OpenAI;

  constructor(options: OpenAIBatchClientOptions = {}) {
    this.#client = options.client
      ? options.client.withOptions(SDK_OPTIONS)
      : new OpenAI({ apiKey: options.apiKey, baseURL: options.baseURL, ...SDK_OPTIONS });
    this.limits = { ...OPENAI_BATCH_LIMITS, ...options.limits };
  }

  groupOf(request: ProviderRequest): BatchGroup {
    const endpoint = request.path.startsWith("/v1/") ? request.path : `/v1${request.path}`;
    const model = modelOf(request.body);
    return { key: `${endpoint} ${model ?? ""}`, endpoint, model };
  }

  encode(customId: string, request: ProviderRequest): string {
    const url = request.path.startsWith("/v1/") ? request.path : `/v1${request.path}`;
    return JSON.stringify({ custom_id: customId, method: "POST", url, body: request.body });
  }

  async upload(lines: readonly string[], name: string, signal: AbortSignal): Promise<string> {
    return this.#sdk(signal, async () => {
      const file = await toFile(Buffer.from(`${lines.join("\n")}\n`), name, {
        type: "application/jsonl",
      });
      return (await this.#client.files.create({ file, purpose: "batch" }, { signal })).id;
    });
  }

  async create(
    input: { group: BatchGroup; tag: string; fileId?: string | undefined },
    signal: AbortSignal,
  ): Promise<string> {
    if (input.fileId === undefined) throw new Error("OpenAIBatchClient.create: upload first");
    return this.#sdk(signal, async () => {
      const batch = await this.#client.batches.create(
        {
          input_file_id: input.fileId!,
          endpoint: input.group.endpoint as Endpoint,
          completion_window: "24h",
          metadata: { salvo_tag: input.tag },
        },
        { signal },
      );
      return batch.id;
    });
  }

  async find(
    query: { tag: string; sinceMs: number },
    signal: AbortSignal,
  ): Promise<string | undefined> {
    return this.#sdk(signal, async () => {
      // Newest first: stop at batches made well before the create was sent.
      for await (const batch of this.#client.batches.list({ limit: 100 }, { signal })) {
        if (batch.created_at * 1000 < query.sinceMs - 5 * 60_000) return undefined;
        if (batch.metadata?.salvo_tag === query.tag) return batch.id;
      }
      return undefined;
    });
  }

  async retrieve(id: string, signal: AbortSignal): Promise<ProviderBatchStatus> {
    const batch = await this.#sdk(signal, () => this.#client.batches.retrieve(id, { signal }));
    return statusOf(batch);
  }

  async cancel(id: string, signal: AbortSignal): Promise<void> {
    await this.#sdk(signal, () => this.#client.batches.cancel(id, { signal }));
  }

  async *results(id: string, signal: AbortSignal): AsyncIterable<ProviderBatchResult> {
    const batch = await this.#sdk(signal, () => this.#client.batches.retrieve(id, { signal }));
    for (const fileId of [batch.output_file_id, batch.error_file_id]) {
      if (!fileId) continue;
      const response = await this.#sdk(signal, () =>
        this.#client.files.content(fileId, { signal }),
      );
      if (response.body === null) continue;
      const chunks = response.body as unknown as AsyncIterable<Uint8Array>;
      for await (const { text } of splitLines(asBuffers(chunks))) {
        if (text.trim() === "") continue;
        yield resultOf(JSON.parse(text));
      }
    }
  }

  async discard(fileId: string, signal: AbortSignal): Promise<void> {
    await this.#sdk(signal, () => this.#client.files.delete(fileId, { signal }));
  }

  async #sdk<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw errorFromSdk(error, "openai", signal);
    }
  }
}

async function* asBuffers(chunks: AsyncIterable<Uint8Array>): AsyncIterable<Buffer> {
  for await (const chunk of chunks) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
}

function statusOf(batch: OpenAI.Batches.Batch): ProviderBatchStatus {
  const counts = batch.request_counts;
  const done = (counts?.completed ?? 0) + (counts?.failed ?? 0);
  const ended = ["completed", "expired", "cancelled", "failed"].includes(batch.status);
  const failure = batch.errors?.data
    ?.slice(0, 3)
    .map(
      (e) =>
        `${e.code ?? "error"}${e.line == null ? "" : ` at line ${e.line}`}: ${e.message ?? ""}`,
    )
    .join("; ");
  return {
    id: batch.id,
    state: ended ? "ended" : batch.status === "cancelling" ? "cancelling" : "running",
    outcome: ended ? (batch.status as ProviderBatchStatus["outcome"]) : undefined,
    status: batch.status,
    total: counts?.total ?? 0,
    done,
    failure: failure || undefined,
  };
}

/** An output- or error-file line: `{custom_id, response: {status_code, request_id, body} | null, error}`. */
function resultOf(value: unknown): ProviderBatchResult {
  const line = value as {
    custom_id?: unknown;
    response?: { status_code?: unknown; request_id?: unknown; body?: unknown } | null;
    error?: { code?: unknown; message?: unknown } | null;
  };
  const customId = typeof line.custom_id === "string" ? line.custom_id : "";
  const response = line.response;
  if (response && typeof response.status_code === "number")
    return {
      customId,
      response: {
        status: response.status_code,
        body: response.body,
        requestId: typeof response.request_id === "string" ? response.request_id : undefined,
      },
    };
  const code = typeof line.error?.code === "string" ? line.error.code : undefined;
  const message = typeof line.error?.message === "string" ? line.error.message : undefined;
  return {
    customId,
    notRun:
      code === "batch_expired" ? "expired" : code === "batch_cancelled" ? "cancelled" : "failed",
    message: code === undefined ? message : `${code}: ${message ?? ""}`,
  };
}

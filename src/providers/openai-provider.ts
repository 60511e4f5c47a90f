// OpenAI-compatible endpoints (OpenAI, Azure OpenAI, DeepSeek, vLLM, Ollama, llama.cpp server)
// through the official `openai` SDK, with the SDK's own retries off: Salvo is the retry authority.
import OpenAI from "openai";
import type {
  CallOptions,
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "./provider.ts";
import { callThrough, type SdkWire, sdkClient } from "./sdk-call.ts";
import { type ChatLike, estimatePromptTokens, estimateTextTokens } from "./token-estimate.ts";

export type OpenAIProviderOptions = {
  /** Base URL of the API, e.g. `https://api.openai.com/v1`. @default the SDK's (OPENAI_BASE_URL or OpenAI) */
  baseURL?: string | undefined;
  /** The API key. Never logged or written. @default the SDK's (OPENAI_API_KEY) */
  apiKey?: string | undefined;
  /** An existing client to use instead; a copy with retries off is made. */
  client?: OpenAI | undefined;
  /**
   * Output tokens to reserve when a request sets no `max_tokens`/`max_completion_tokens`.
   * @default 4096
   */
  defaultMaxTokens?: number | undefined;
};

export function usageFromOpenAI(body: unknown): TokenUsage | undefined {
  const usage = (body as { usage?: Record<string, unknown> } | undefined)?.usage;
  if (usage === undefined || usage === null) return undefined;
  const n = (value: unknown) => (typeof value === "number" ? value : 0);
  // Chat completions and embeddings say prompt/completion; the Responses API says input/output.
  const inputTokens = n(usage.prompt_tokens ?? usage.input_tokens);
  const outputTokens = n(usage.completion_tokens ?? usage.output_tokens);
  const details = (usage.prompt_tokens_details ?? usage.input_tokens_details) as
    | { cached_tokens?: unknown }
    | undefined;
  const cached = details?.cached_tokens;
  return {
    inputTokens,
    outputTokens,
    cachedInputTokens: typeof cached === "number" ? cached : undefined,
  };
}

/** The OpenAI SDK's base URL ends in the version (`.../v1`): paths do not repeat it. */
function apiPath(path: string): string {
  return path.startsWith("/v1/") ? path.slice(3) : path;
}

const WIRE: SdkWire = {
  apiPath,
  requestIdHeader: "x-request-id",
  requiredArray: (path) => (path.endsWith("/chat/completions") ? "choices" : undefined),
  usage: usageFromOpenAI,
};

export class OpenAIProvider implements Provider {
  readonly name = "openai";
  #client: OpenAI;
  #defaultMaxTokens: number;

  constructor(options: OpenAIProviderOptions = {}) {
    this.#client = sdkClient(
      options.client,
      (own) => new OpenAI({ apiKey: options.apiKey, baseURL: options.baseURL, ...own }),
    );
    this.#defaultMaxTokens = options.defaultMaxTokens ?? 4096;
  }

  call(request: ProviderRequest, { signal }: CallOptions): Promise<ProviderResult> {
    return callThrough(this.#client, this.name, WIRE, request, signal);
  }

  /** OpenAI counts `max_tokens` against TPM whatever the answer's length: only the input is reconciled. */
  charged(request: ProviderRequest, usage: TokenUsage): CostEstimate {
    const outputTokens = request.path.endsWith("/embeddings") ? 0 : this.#outputTokens(request);
    return { inputTokens: usage.inputTokens, outputTokens };
  }

  estimate(request: ProviderRequest): CostEstimate {
    const body = request.body;
    if (request.path.endsWith("/embeddings")) {
      const input = body.input;
      // One text or token array, or a list of them. Strings are counted; a token array is its length.
      const single = !Array.isArray(input) || input.every((t) => typeof t === "number");
      const items: unknown[] = single ? [input] : input;
      const texts: string[] = [];
      let tokens = 0;
      for (const item of items) {
        if (typeof item === "string") texts.push(item);
        else if (Array.isArray(item)) tokens += item.length;
      }
      return { inputTokens: tokens + estimateTextTokens(texts), outputTokens: 0 };
    }
    return {
      inputTokens: estimatePromptTokens(body as ChatLike),
      outputTokens: this.#outputTokens(request),
    };
  }

  /** What OpenAI reserves for the answer: `n` times the token cap. */
  #outputTokens(request: ProviderRequest): number {
    const body = request.body;
    const n = typeof body.n === "number" && body.n > 0 ? body.n : 1;
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? body.max_output_tokens;
    return n * (typeof maxTokens === "number" ? maxTokens : this.#defaultMaxTokens);
  }
}

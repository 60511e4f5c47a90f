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
    return {
      inputTokens: usage.inputTokens,
      outputTokens: openAIOutputReserve(request, this.#defaultMaxTokens),
    };
  }

  estimate(request: ProviderRequest): CostEstimate {
    return estimateOpenAIRequest(request, this.#defaultMaxTokens);
  }
}

/** The Responses API's `input` and `instructions` as chat messages, for the same count. */
function responsesAsChat(body: Record<string, unknown>): ChatLike {
  const input = body.input;
  const messages: Array<{ role?: string; content?: unknown }> = [];
  if (typeof input === "string") messages.push({ role: "user", content: input });
  else if (Array.isArray(input)) {
    for (const item of input as unknown[]) {
      if (typeof item !== "object" || item === null) continue;
      const it = item as Record<string, unknown>;
      if (it.type === undefined || it.type === "message") {
        messages.push({
          role: typeof it.role === "string" ? it.role : "user",
          content: it.content,
        });
      } else if (typeof it.output === "string") messages.push({ role: "tool", content: it.output });
      else if (typeof it.arguments === "string") {
        messages.push({ role: "assistant", content: it.arguments });
      }
    }
  }
  return { messages, system: body.instructions ?? undefined, tools: body.tools } as ChatLike;
}

/** Texts and token arrays (embeddings, moderations, legacy prompts): texts counted in bounded time. */
function inputTokens(input: unknown): number {
  // One text or token array, or a list of them. Strings are counted; a token array is its length.
  const single = !Array.isArray(input) || input.every((t) => typeof t === "number");
  const items: unknown[] = single ? [input] : input;
  const texts: string[] = [];
  let tokens = 0;
  for (const item of items) {
    if (typeof item === "string") texts.push(item);
    else if (Array.isArray(item)) tokens += item.length;
  }
  return tokens + estimateTextTokens(texts);
}

/**
 * The tokens an OpenAI-compatible server reserves for a request: the prompt by tokenizer, plus
 * `n` times the output cap (OpenAI charges `max_tokens` against TPM up front), for chat
 * completions, the Responses API (`input`, `instructions`, `max_output_tokens`), embeddings and
 * moderations (input only), and legacy completions (16 output tokens by default).
 */
export function estimateOpenAIRequest(
  request: ProviderRequest,
  defaultMaxTokens = 4096,
): CostEstimate {
  const { path, body } = request;
  const outputTokens = openAIOutputReserve(request, defaultMaxTokens);
  if (/(^|\/)(embeddings|moderations)$/.test(path))
    return { inputTokens: inputTokens(body.input), outputTokens };
  if (/(^|\/)responses$/.test(path))
    return { inputTokens: estimatePromptTokens(responsesAsChat(body)), outputTokens };
  if (isLegacyCompletion(path)) return { inputTokens: inputTokens(body.prompt), outputTokens };
  if (isChat(path)) return { inputTokens: estimatePromptTokens(body as ChatLike), outputTokens };
  // Any other endpoint (images, audio, ...): a request against RPM, no token estimate.
  return { inputTokens: 0, outputTokens: 0 };
}

const isChat = (path: string) => /(^|\/)chat\/completions$/.test(path);

const isLegacyCompletion = (path: string) =>
  /(^|\/)completions$/.test(path) && !/chat\/completions$/.test(path);

/**
 * The output tokens an OpenAI-compatible server reserves for a request, up front and whatever
 * the answer's length: `n` times the cap (16 by default for legacy completions), none for
 * embeddings and moderations. Cheap: no prompt is counted.
 */
export function openAIOutputReserve(request: ProviderRequest, defaultMaxTokens = 4096): number {
  const { path, body } = request;
  if (/(^|\/)(embeddings|moderations)$/.test(path)) return 0;
  const cap = body.max_completion_tokens ?? body.max_tokens ?? body.max_output_tokens;
  if (/(^|\/)responses$/.test(path)) return typeof cap === "number" ? cap : defaultMaxTokens;
  const n = typeof body.n === "number" && body.n > 0 ? body.n : 1;
  if (!isChat(path) && !isLegacyCompletion(path)) return 0;
  const fallback = isLegacyCompletion(path) ? 16 : defaultMaxTokens;
  return n * (typeof cap === "number" ? cap : fallback);
}

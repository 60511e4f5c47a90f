// Anthropic's Messages API through the official `@anthropic-ai/sdk`, with the SDK's retries off.
import Anthropic from "@anthropic-ai/sdk";
import type {
  CallOptions,
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "./provider.ts";
import { callThrough, type SdkWire, sdkClient } from "./sdk-call.ts";
import { type ChatLike, estimatePromptTokens } from "./token-estimate.ts";

export type AnthropicProviderOptions = {
  /** The API origin, e.g. `https://api.anthropic.com` (no `/v1`). @default the SDK's (ANTHROPIC_BASE_URL) */
  baseURL?: string | undefined;
  /** The API key. Never logged or written. @default the SDK's (ANTHROPIC_API_KEY) */
  apiKey?: string | undefined;
  /** An existing client to use instead; a copy with retries off is made. */
  client?: Anthropic | undefined;
};

export function usageFromAnthropic(body: unknown): TokenUsage | undefined {
  const usage = (body as { usage?: Record<string, unknown> } | undefined)?.usage;
  if (usage === undefined || usage === null) return undefined;
  const n = (value: unknown) => (typeof value === "number" ? value : 0);
  const cacheRead = n(usage.cache_read_input_tokens);
  return {
    inputTokens: n(usage.input_tokens) + n(usage.cache_creation_input_tokens) + cacheRead,
    outputTokens: n(usage.output_tokens),
    cachedInputTokens: cacheRead > 0 ? cacheRead : undefined,
  };
}

/** The Anthropic SDK's base URL is the origin: paths carry the version (`/v1/messages`). */
function apiPath(path: string): string {
  return path.startsWith("/v1/") ? path : `/v1${path}`;
}

const WIRE: SdkWire = {
  apiPath,
  requestIdHeader: "request-id",
  requiredArray: (path) => (path.endsWith("/messages") ? "content" : undefined),
  usage: usageFromAnthropic,
};

export class AnthropicProvider implements Provider {
  readonly name = "anthropic";
  #client: Anthropic;

  constructor(options: AnthropicProviderOptions = {}) {
    this.#client = sdkClient(
      options.client,
      (own) => new Anthropic({ apiKey: options.apiKey, baseURL: options.baseURL, ...own }),
    );
  }

  call(request: ProviderRequest, { signal }: CallOptions): Promise<ProviderResult> {
    return callThrough(this.#client, this.name, WIRE, request, signal);
  }

  /** ITPM counts uncached input and cache writes, not cache reads; OTPM counts the real output. */
  charged(_request: ProviderRequest, usage: TokenUsage): CostEstimate {
    return {
      inputTokens: usage.inputTokens - (usage.cachedInputTokens ?? 0),
      outputTokens: usage.outputTokens,
    };
  }

  /**
   * ITPM is charged on the estimated input. OTPM counts only real output ("max_tokens does not
   * factor into OTPM"), so `max_tokens` is a ceiling here; the scheduler reconciles with usage.
   */
  estimate(request: ProviderRequest): CostEstimate {
    const maxTokens = request.body.max_tokens;
    return {
      inputTokens: estimatePromptTokens(request.body as ChatLike),
      outputTokens: typeof maxTokens === "number" ? maxTokens : 0,
    };
  }
}

// Any async function as a provider: other SDKs, local models, non-HTTP work, all through the same
// scheduler. The function makes one attempt; to be retried it throws a ProviderError subclass.
import type {
  CallOptions,
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "./provider.ts";
import { type ChatLike, estimatePromptTokens } from "./token-estimate.ts";

export type CustomCall = (
  request: ProviderRequest,
  options: CallOptions,
) => Promise<{ body: unknown; usage?: TokenUsage | undefined; status?: number | undefined }>;

export type CustomProviderOptions = {
  /** A name for logs and errors. @default "custom" */
  name?: string | undefined;
  /** Estimates the tokens a request costs. @default prompt tokens by tokenizer + `max_tokens` or 0 */
  estimate?: ((request: ProviderRequest) => CostEstimate) | undefined;
};

export class CustomProvider implements Provider {
  readonly name: string;
  #fn: CustomCall;
  #estimate: ((request: ProviderRequest) => CostEstimate) | undefined;

  constructor(fn: CustomCall, options: CustomProviderOptions = {}) {
    this.name = options.name ?? "custom";
    this.#fn = fn;
    this.#estimate = options.estimate;
  }

  async call(request: ProviderRequest, options: CallOptions): Promise<ProviderResult> {
    const result = await this.#fn(request, options);
    return {
      status: result.status ?? 200,
      body: result.body,
      usage: result.usage,
      rateLimits: undefined,
      requestId: undefined,
    };
  }

  /** A custom function is charged what it reports using. */
  charged(_request: ProviderRequest, usage: TokenUsage): CostEstimate {
    return { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens };
  }

  estimate(request: ProviderRequest): CostEstimate {
    if (this.#estimate) return this.#estimate(request);
    const maxTokens = request.body.max_tokens;
    return {
      inputTokens: request.body.messages ? estimatePromptTokens(request.body as ChatLike) : 0,
      outputTokens: typeof maxTokens === "number" ? maxTokens : 0,
    };
  }
}

// What calls cost: USD per million tokens for the common OpenAI and Anthropic models, overridable
// per model, and the cost of a call from its usage (with the cached-input discount when the
// provider reports cached tokens). A model without a known price has an unknown cost, said so,
// never zero.
//
// Source of the built-in prices: the providers' own pricing pages (openai.com/api/pricing,
// platform.openai.com/docs/pricing; anthropic.com/pricing, docs.anthropic.com "Pricing"), standard
// (non-batch) tier, as published in 2025, written down from those pages as of late 2025 (this
// repository's machines have no network to re-check them). Prices change: override them in the
// config file (`pricing: {MODEL: {input, output, cachedInput}}`).
//
// Why not gpt-tokenizer's model data (a dependency, v4): its `price_data` is wrong for current
// models: it gives gpt-4o, gpt-4.1 and gpt-5 the legacy GPT-4 Turbo price ($10 in / $30 out)
// where OpenAI publishes $2.50/$10, $2/$8 and $1.25/$10; it has no price for gpt-4o-mini,
// gpt-4.1-mini, gpt-5-mini or o4-mini; and it files o1's and o3's cached-input price as
// `cached_output`. A cost or a budget built on it would be off by up to 8x, so it is not used.
//
// Batch prices: both providers bill their batch APIs (OpenAI Batch, Anthropic Message Batches) at
// 50% of the standard price, input and output alike (cached input included), as their pricing
// pages state; `BATCH_PRICE_FACTOR` applies that to every model of the table. `Pricing.cost` with
// `{batch: true}` prices an answer the provider's batch API gave.
import type { CostEstimate, TokenUsage } from "../providers/provider.ts";

/** A model's price, USD per million tokens. */
export type ModelPrice = {
  /** Input (prompt) tokens. */
  input: number;
  /** Output (completion) tokens, reasoning tokens included. */
  output: number;
  /** Input tokens read from the provider's prompt cache. @default `input` (no discount) */
  cachedInput?: number | undefined;
};

/** Prices by model name. */
export type PriceTable = Readonly<Record<string, ModelPrice>>;

/** USD per million tokens: input, output, cached input. */
const p = (input: number, output: number, cachedInput?: number): ModelPrice =>
  cachedInput === undefined ? { input, output } : { input, output, cachedInput };

/** The built-in prices (see the module comment for their source and date). */
export const BUILT_IN_PRICES: PriceTable = {
  // OpenAI
  "gpt-5": p(1.25, 10, 0.125),
  "gpt-5-mini": p(0.25, 2, 0.025),
  "gpt-5-nano": p(0.05, 0.4, 0.005),
  "gpt-4.1": p(2, 8, 0.5),
  "gpt-4.1-mini": p(0.4, 1.6, 0.1),
  "gpt-4.1-nano": p(0.1, 0.4, 0.025),
  "gpt-4o": p(2.5, 10, 1.25),
  "gpt-4o-2024-05-13": p(5, 15),
  "gpt-4o-mini": p(0.15, 0.6, 0.075),
  o1: p(15, 60, 7.5),
  "o1-mini": p(1.1, 4.4, 0.55),
  o3: p(2, 8, 0.5),
  "o3-mini": p(1.1, 4.4, 0.55),
  "o4-mini": p(1.1, 4.4, 0.275),
  "gpt-4-turbo": p(10, 30),
  "gpt-4": p(30, 60),
  "gpt-3.5-turbo": p(0.5, 1.5),
  "text-embedding-3-small": p(0.02, 0),
  "text-embedding-3-large": p(0.13, 0),
  "text-embedding-ada-002": p(0.1, 0),
  // Anthropic (cache reads are 0.1x the input price)
  "claude-opus-4-5": p(5, 25, 0.5),
  "claude-opus-4-1": p(15, 75, 1.5),
  "claude-opus-4-0": p(15, 75, 1.5),
  "claude-opus-4": p(15, 75, 1.5),
  "claude-sonnet-4-5": p(3, 15, 0.3),
  "claude-sonnet-4-0": p(3, 15, 0.3),
  "claude-sonnet-4": p(3, 15, 0.3),
  "claude-3-7-sonnet": p(3, 15, 0.3),
  "claude-3-5-sonnet": p(3, 15, 0.3),
  "claude-haiku-4-5": p(1, 5, 0.1),
  "claude-3-5-haiku": p(0.8, 4, 0.08),
  "claude-3-haiku": p(0.25, 1.25, 0.03),
  "claude-3-opus": p(15, 75, 1.5),
};

/** What the providers' batch APIs cost, as a share of the standard price: half. */
export const BATCH_PRICE_FACTOR = 0.5;

/** Which of a provider's prices applies: the standard (real-time) one, or its batch API's. */
export type PriceTier = { batch?: boolean | undefined };

/** A dated snapshot or alias suffix: `-2024-07-18`, `-20250929`, `-latest`. */
const SNAPSHOT_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$/;

/** What one call cost. */
export type CallCost = {
  /** USD; undefined when the model's price is unknown. */
  usd: number | undefined;
  /** The model it was priced as (the table's name), or the request's model when unknown. */
  model: string | undefined;
};

/** Prices by model: the built-in table with overrides on top. */
export class Pricing {
  readonly #prices: Map<string, ModelPrice>;

  /** `overrides` replace (or add) whole entries of the built-in table. */
  constructor(overrides: PriceTable = {}, base: PriceTable = BUILT_IN_PRICES) {
    this.#prices = new Map([...Object.entries(base), ...Object.entries(overrides)]);
  }

  /**
   * The price of a model, by its exact name, else without a snapshot suffix
   * (`gpt-4o-mini-2024-07-18` is `gpt-4o-mini`; `claude-sonnet-4-5-20250929` is
   * `claude-sonnet-4-5`). Undefined when unknown (fine-tuned models, other providers' models).
   */
  priceOf(model: string | undefined): { model: string; price: ModelPrice } | undefined {
    if (model === undefined) return undefined;
    const exact = this.#prices.get(model);
    if (exact) return { model, price: exact };
    const base = model.replace(SNAPSHOT_SUFFIX, "");
    const price = base === model ? undefined : this.#prices.get(base);
    return price ? { model: base, price } : undefined;
  }

  /**
   * What a call with this usage cost; cached input tokens at the cached-input price; an answer
   * of the provider's batch API (`{batch: true}`) at `BATCH_PRICE_FACTOR` of it.
   */
  cost(model: string | undefined, usage: TokenUsage, tier: PriceTier = {}): CallCost {
    const found = this.priceOf(model);
    if (found === undefined) return { usd: undefined, model };
    const { price } = found;
    const cached = Math.min(usage.cachedInputTokens ?? 0, usage.inputTokens);
    const usd =
      ((usage.inputTokens - cached) * price.input +
        cached * (price.cachedInput ?? price.input) +
        usage.outputTokens * price.output) /
      1e6;
    return { usd: tier.batch ? usd * BATCH_PRICE_FACTOR : usd, model: found.model };
  }

  /** The most a call estimated at `estimate` can cost (no cache discount assumed). */
  bound(
    model: string | undefined,
    estimate: CostEstimate,
    tier: PriceTier = {},
  ): number | undefined {
    return this.cost(
      model,
      { inputTokens: estimate.inputTokens, outputTokens: estimate.outputTokens },
      tier,
    ).usd;
  }
}

/** The model a request or an answer names (`body.model`), if any. */
export function modelOf(body: unknown): string | undefined {
  const model = (body as { model?: unknown } | undefined)?.model;
  return typeof model === "string" ? model : undefined;
}

/** `$12.35`, `$0.0141`, `$0.000019`: enough decimals for a single call's fraction of a cent. */
export function formatUsd(usd: number): string {
  const abs = Math.abs(usd);
  return `$${usd.toFixed(abs >= 1 || abs === 0 ? 2 : abs >= 0.01 ? 4 : 6)}`;
}

import { describe, expect, it } from "vitest";
import { BUILT_IN_PRICES, formatUsd, Pricing } from "./pricing.ts";

describe("Pricing", () => {
  const pricing = new Pricing();

  it("prices dated snapshots as their model, and knows an unknown model is unknown", () => {
    expect(pricing.priceOf("gpt-4o-mini-2024-07-18")?.model).toBe("gpt-4o-mini");
    expect(pricing.priceOf("claude-sonnet-4-5-20250929")?.model).toBe("claude-sonnet-4-5");
    // An exact entry wins over the stripped name: this snapshot has its own price.
    expect(pricing.priceOf("gpt-4o-2024-05-13")?.price.input).toBe(5);
    expect(pricing.priceOf("ft:gpt-4o-mini:acme::abc")).toBeUndefined();
    expect(pricing.priceOf(undefined)).toBeUndefined();
    // gpt-4o-mini must not be priced as gpt-4o.
    expect(pricing.priceOf("gpt-4o-mini")?.price).toEqual(BUILT_IN_PRICES["gpt-4o-mini"]);
  });

  it("costs input, cached input and output at their prices; unknown is undefined, not 0", () => {
    // gpt-4o: $2.50 in, $1.25 cached in, $10 out per million.
    const cost = pricing.cost("gpt-4o", {
      inputTokens: 1_000_000,
      cachedInputTokens: 400_000,
      outputTokens: 100_000,
    });
    expect(cost.usd).toBeCloseTo(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10, 10);
    expect(pricing.cost("no-such-model", { inputTokens: 10, outputTokens: 10 }).usd).toBe(
      undefined,
    );
  });

  it("overrides replace built-in prices and add new models", () => {
    const custom = new Pricing({
      "gpt-4o": { input: 1, output: 2 },
      "my-vllm-model": { input: 0, output: 0 },
    });
    expect(custom.cost("gpt-4o", { inputTokens: 1e6, outputTokens: 1e6 }).usd).toBe(3);
    expect(custom.cost("my-vllm-model", { inputTokens: 5, outputTokens: 5 }).usd).toBe(0);
  });

  it("bounds a call by its estimate", () => {
    expect(pricing.bound("gpt-4o-mini", { inputTokens: 1e6, outputTokens: 1e6 })).toBeCloseTo(0.75);
  });

  it("prices an answer of the provider's batch API at half the standard price, bound included", () => {
    const usage = { inputTokens: 1_000_000, cachedInputTokens: 400_000, outputTokens: 100_000 };
    const standard = pricing.cost("gpt-4o", usage).usd!;
    expect(pricing.cost("gpt-4o", usage, { batch: true }).usd).toBeCloseTo(standard / 2, 12);
    expect(
      pricing.bound("claude-haiku-4-5", { inputTokens: 1e6, outputTokens: 1e6 }, { batch: true }),
    ).toBeCloseTo((1 + 5) / 2);
    expect(pricing.cost("no-such-model", usage, { batch: true }).usd).toBeUndefined();
  });

  it("formats small amounts with enough decimals", () => {
    expect(formatUsd(12.345)).toBe("$12.35");
    expect(formatUsd(0.01414)).toBe("$0.0141");
    expect(formatUsd(0.0000192)).toBe("$0.000019");
    expect(formatUsd(0)).toBe("$0.00");
  });
});

import { describe, expect, it } from "vitest";
import type { ProviderRequest } from "../providers/provider.ts";
import { BatchEstimate, expectedFromHistory, uniformCappedMean } from "./batch-estimate.ts";
import { Pricing } from "./pricing.ts";

const request = (model: string, maxTokens: number): ProviderRequest => ({
  path: "/chat/completions",
  body: { model, max_tokens: maxTokens, messages: [{ role: "user", content: "hi" }] },
});
const estimate = (r: ProviderRequest) => ({
  inputTokens: 100,
  outputTokens: r.body.max_tokens as number,
});

describe("batch estimate", () => {
  it("uniformCappedMean is the mean of min(k, cap) over min..max", () => {
    expect(uniformCappedMean(10, 40, 60)).toBe(25);
    expect(uniformCappedMean(1, 4, 2)).toBe((1 + 2 + 2 + 2) / 4);
    expect(uniformCappedMean(5, 5, 100)).toBe(5);
  });

  it("sums tokens and cost, bound and expected, and keeps unpriced calls out of the cost", () => {
    const e = new BatchEstimate({
      estimate,
      pricing: new Pricing(),
      expected: { source: "test", tokens: (_r, bound) => bound / 2 },
    });
    e.add(request("gpt-4o-mini", 60));
    e.add(request("gpt-4o-mini", 40));
    e.add(request("mystery", 10));
    const s = e.summary();
    expect(s.calls).toBe(3);
    expect(s.tokens).toEqual({ input: 300, outputBound: 110, outputExpected: 55 });
    expect(s.cost.bound).toBeCloseTo((200 * 0.15 + 100 * 0.6) / 1e6, 12);
    expect(s.cost.expected).toBeCloseTo((200 * 0.15 + 50 * 0.6) / 1e6, 12);
    expect([s.unpriced, s.unpricedModels, s.models]).toEqual([
      1,
      ["mystery"],
      ["gpt-4o-mini", "mystery"],
    ]);
  });

  it("without a source the expected figures are unknown, not guessed", () => {
    const e = new BatchEstimate({ estimate, pricing: new Pricing() });
    e.add(request("gpt-4o-mini", 60));
    const s = e.summary();
    expect(s.tokens.outputExpected).toBeUndefined();
    expect(s.cost.expected).toBeUndefined();
    expect(s.expectedSource).toBeUndefined();
  });

  it("learns the share of max_tokens used from answers already received, given enough of them", () => {
    const answers = Array.from({ length: 10 }, (_, i) => ({ outputTokens: 20 + i, bound: 60 }));
    const learned = expectedFromHistory(answers)!;
    expect(learned.tokens(request("m", 100), 100)).toBeCloseTo((245 / 600) * 100);
    expect(learned.source).toContain("10 answers");
    expect(expectedFromHistory(answers.slice(0, 9))).toBeUndefined();
  });
});

import { describe, expect, it } from "vitest";
import { countTokens, estimatePromptTokens } from "./token-estimate.ts";

describe("token estimates", () => {
  it("counts with the o200k tokenizer", () => {
    expect(countTokens("")).toBe(0);
    expect(countTokens("hello world")).toBe(2);
  });

  it("adds the chat format's per-message overhead", () => {
    const text = "Classify this insurance line item: brake pads, 2 units.";
    const one = estimatePromptTokens({ messages: [{ role: "user", content: text }] });
    expect(one).toBe(3 + 3 + 1 + countTokens(text));
    const two = estimatePromptTokens({
      messages: [
        { role: "system", content: "You are an assessor." },
        { role: "user", content: text },
      ],
    });
    expect(two).toBe(one + 3 + 1 + countTokens("You are an assessor."));
  });

  it("reads content parts and Anthropic's separate system prompt", () => {
    const parts = estimatePromptTokens({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "abc" },
            { type: "text", text: "def" },
          ],
        },
      ],
    });
    expect(parts).toBe(3 + 3 + 1 + countTokens("abcdef"));
    const anthropic = estimatePromptTokens({
      system: "Be brief.",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(anthropic).toBe(3 + 3 + 1 + countTokens("Be brief.") + 3 + 1 + countTokens("hi"));
  });
});

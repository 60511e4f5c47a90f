import { describe, expect, it } from "vitest";
import { countTokens } from "../tokens/o200k.ts";
import { countPromptTokens } from "./prompt-tokens.ts";

describe("the simulator's prompt token count", () => {
  it("counts a long run of one character as the client does, in linear time (the tokenizer's merge is quadratic on it)", () => {
    const text = "A".repeat(100_000);
    expect(countPromptTokens([{ role: "user", content: text }])).toBe(3 + 4 + countTokens(text));
  });
});

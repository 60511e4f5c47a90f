import { countTokens } from "gpt-tokenizer";
import { describe, expect, it } from "vitest";
import { answerHead, answerPiece, answerText, echoOf, expectedMarker } from "./marker.ts";
import { countPromptTokens } from "./prompt-tokens.ts";

describe("expectedMarker", () => {
  it("is a stable function of roles and texts", () => {
    const a = expectedMarker([{ role: "user", content: "hello" }]);
    expect(a).toMatch(/^sim-[0-9a-f]{12}$/);
    expect(expectedMarker([{ role: "user", content: "hello" }])).toBe(a);
    expect(expectedMarker([{ role: "user", content: [{ type: "text", text: "hello" }] }])).toBe(a);
    expect(expectedMarker([{ role: "user", content: "hello!" }])).not.toBe(a);
    expect(expectedMarker([{ role: "assistant", content: "hello" }])).not.toBe(a);
  });

  it("treats Anthropic's system prompt as a leading system message", () => {
    const messages = [{ role: "user", content: "hi" }];
    expect(expectedMarker(messages, { system: "be brief" })).toBe(
      expectedMarker([{ role: "system", content: "be brief" }, ...messages]),
    );
  });
});

describe("answer text", () => {
  it("has `tokens` pieces whose concatenation is the whole text", () => {
    const head = answerHead(
      "sim-0123456789ab",
      echoOf([{ role: "user", content: "What is\n2+2?" }], 8),
    );
    expect(head).toBe("sim-0123456789ab What is ");
    for (const tokens of [1, 2, 8, 9, 17, 100]) {
      const pieces = Array.from({ length: tokens }, (_, i) => answerPiece(head, i)).join("");
      expect(answerText(head, tokens)).toBe(pieces);
    }
  });
});

describe("countPromptTokens", () => {
  it("is 3 + per message (4 + tokens of the text)", () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Count the words in this sentence, please." },
    ];
    const expected =
      3 +
      4 +
      countTokens("You are terse.") +
      4 +
      countTokens("Count the words in this sentence, please.");
    expect(countPromptTokens(messages)).toBe(expected);
    expect(countPromptTokens(messages.slice(1), "You are terse.")).toBe(expected);
  });
});

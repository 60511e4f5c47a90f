import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { countTokens as o200kCount } from "gpt-tokenizer/encoding/o200k_base";
import { O200K_TOKEN_SPLIT_REGEX } from "gpt-tokenizer/encodingParams/constants";
import { describe, expect, it } from "vitest";
import {
  countSliced,
  countTokens,
  EXACT_CHARS,
  estimatePromptTokens,
  estimateTextTokens,
  MAX_PIECE_CHARS,
} from "./token-estimate.ts";

/** Natural text: the README and the library's own sources, about 750 KB, none of it repeated. */
function naturalText(): string {
  const sources = (readdirSync("src", { recursive: true }) as string[])
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .sort()
    .map((f) => join("src", f));
  return ["README.md", ...sources].map((f) => readFileSync(f, "utf8")).join("\n\n");
}

/** The tokenizer's own count, special tokens as plain text (as the estimate counts them). */
const exactCount = (text: string) => o200kCount(text, { disallowedSpecial: new Set() });

/** The longest piece the tokenizer would merge in one go, in `text`. */
function longestPiece(text: string): number {
  let longest = 0;
  for (const [piece] of text.matchAll(O200K_TOKEN_SPLIT_REGEX))
    longest = Math.max(longest, piece.length);
  return longest;
}

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

describe("token estimates take time linear in the input (a long run of one character froze the process)", () => {
  it("never hands the tokenizer a piece longer than MAX_PIECE_CHARS, and hands it each character once", () => {
    for (const run of ["A", " ", "\n", "é", "😀", "/\n", "ab", "!"]) {
      const text = `start ${run.repeat(300_000 / run.length)} end`;
      expect(longestPiece(text)).toBeGreaterThan(MAX_PIECE_CHARS); // what made it quadratic
      let handed = 0;
      let longest = 0;
      const tokens = countSliced(text, (slice) => {
        handed += slice.length;
        longest = Math.max(longest, longestPiece(slice));
        return o200kCount(slice);
      });
      expect(longest, JSON.stringify(run)).toBeLessThanOrEqual(MAX_PIECE_CHARS);
      expect(handed).toBe(text.length);
      expect(tokens).toBeGreaterThan(0);
    }
  });

  it("slices a long run close to the tokenizer's own count of it", () => {
    for (const run of ["A", " ", "é", "😀", "/\n"]) {
      const text = run.repeat(8_000 / run.length); // short enough for the quadratic tokenizer
      const exact = o200kCount(text);
      expect(Math.abs(countTokens(text) - exact), JSON.stringify(run)).toBeLessThanOrEqual(
        Math.ceil(text.length / MAX_PIECE_CHARS),
      );
    }
  });

  it("counts a request of any size from a bounded amount of text", () => {
    const texts = ["A".repeat(2_000_000), "hello world ".repeat(100_000)];
    let handed = 0;
    const sampled = estimateTextTokens(texts, (text) => {
      handed += text.length;
      return countTokens(text);
    });
    expect(handed).toBeLessThanOrEqual(EXACT_CHARS);
    const exact = countTokens(texts[0]!) + countTokens(texts[1]!);
    expect(Math.abs(sampled - exact) / exact).toBeLessThan(0.01);
  });

  it("treats special tokens in a prompt as the text they are (the API does)", () => {
    expect(countTokens("hi <|endoftext|> there")).toBe(exactCount("hi <|endoftext|> there"));
    expect(() =>
      estimatePromptTokens({ messages: [{ role: "user", content: "<|endofprompt|>" }] }),
    ).not.toThrow();
  });
});

describe("token estimates stay close to the real count on normal text", () => {
  const text = naturalText();

  it("is exact up to EXACT_CHARS of text", () => {
    const slice = text.slice(0, EXACT_CHARS);
    expect(longestPiece(slice)).toBeLessThanOrEqual(MAX_PIECE_CHARS);
    expect(estimateTextTokens([slice])).toBe(exactCount(slice));
    const paragraphs = slice.split("\n\n");
    expect(estimateTextTokens(paragraphs)).toBe(
      paragraphs.reduce((sum, p) => sum + exactCount(p), 0),
    );
  });

  it("is within 2% above EXACT_CHARS, in one text or in many", () => {
    expect(text.length).toBeGreaterThan(2 * EXACT_CHARS);
    const exact = exactCount(text);
    const one = estimateTextTokens([text]);
    expect(Math.abs(one - exact) / exact).toBeLessThan(0.02);
    const paragraphs = text.split("\n\n");
    const exactParts = paragraphs.reduce((sum, p) => sum + exactCount(p), 0);
    const many = estimateTextTokens(paragraphs);
    expect(Math.abs(many - exactParts) / exactParts).toBeLessThan(0.02);
  });

  it("skips what is not a message in a library caller's request instead of throwing", () => {
    const request = { messages: [null, { role: "user", content: "hi", name: 7 }] } as never;
    expect(estimatePromptTokens(request)).toBe(3 + 3 + 3 + 1 + countTokens("hi"));
  });
});

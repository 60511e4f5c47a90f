import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countTokens } from "../providers/token-estimate.ts";
import { assembleContext, type ContextSection, truncateToTokens } from "./context-budget.ts";

const words = (n: number, word = "insight") =>
  Array.from({ length: n }, (_, i) => `${word}${i}`).join(" ");

describe("assembleContext", () => {
  it("keeps everything within the budget, in priority order, and reports nothing trimmed", () => {
    const sections: ContextSection[] = [
      { name: "raw", priority: 2, text: "raw text" },
      { name: "insights", priority: 0, text: "top insight" },
      { name: "structured", priority: 1, text: '{"a":1}' },
    ];
    const { text, report } = assembleContext(sections, 1000);
    expect(text).toBe('top insight\n\n{"a":1}\n\nraw text');
    expect(report.tokens).toBe(countTokens(text));
    expect(report.dropped).toEqual([]);
    expect(report.truncated).toEqual([]);
    expect(report.sections.map((s) => [s.name, s.kept])).toEqual([
      ["insights", "whole"],
      ["structured", "whole"],
      ["raw", "whole"],
    ]);
  });

  it("cuts the first section that does not fit and drops every less important one", () => {
    const sections: ContextSection[] = [
      { name: "raw", priority: 2, text: words(400, "raw") },
      { name: "insights", priority: 0, text: words(20) },
      { name: "structured", priority: 1, text: words(200, "field") },
      { name: "more-raw", priority: 2, text: "short" },
    ];
    const { text, report } = assembleContext(sections, 120);
    expect(countTokens(text)).toBeLessThanOrEqual(120);
    expect(report.tokens).toBe(countTokens(text));
    expect(text.startsWith(words(20))).toBe(true);
    expect(report.truncated).toEqual(["structured"]);
    // A short section after the cut is dropped too: less important never displaces more important.
    expect(report.dropped).toEqual(["raw", "more-raw"]);
    const structured = report.sections.find((s) => s.name === "structured")!;
    expect(structured.keptTokens).toBeGreaterThan(0);
    expect(structured.keptTokens).toBeLessThan(structured.tokens);
  });

  it("keeps ties in their given order and has no limit without a budget", () => {
    const sections = [
      { name: "b", priority: 1, text: words(300, "b") },
      { name: "a", priority: 1, text: words(300, "a") },
    ];
    const { text, report } = assembleContext(sections, undefined);
    expect(text.startsWith("b0")).toBe(true);
    expect(report.budget).toBeNull();
    expect(report.dropped).toEqual([]);
  });

  it("never exceeds the budget, counted with the real tokenizer, for any sections", () => {
    const section = fc.record({
      name: fc.string({ maxLength: 5 }),
      priority: fc.integer({ min: 0, max: 3 }),
      text: fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.lorem({ maxCount: 60 }),
        fc.string({ unit: "grapheme", maxLength: 80 }),
      ),
    });
    fc.assert(
      fc.property(
        fc.array(section, { maxLength: 8 }),
        fc.integer({ min: 1, max: 200 }),
        (sections, budget) => {
          const { text, report } = assembleContext(sections, budget);
          expect(countTokens(text)).toBeLessThanOrEqual(budget);
          expect(report.tokens).toBe(countTokens(text));
          // What is kept comes from the sections, most important first.
          const kept = report.sections.filter((s) => s.kept !== "dropped" && s.tokens > 0);
          for (let i = 1; i < kept.length; i++)
            expect(kept[i]!.priority).toBeGreaterThanOrEqual(kept[i - 1]!.priority);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("truncateToTokens", () => {
  it("gives the longest prefix within the count and never splits a surrogate pair", () => {
    const text = "😀".repeat(50);
    const cut = truncateToTokens(text, 7);
    expect(countTokens(cut)).toBeLessThanOrEqual(7);
    expect(text.startsWith(cut)).toBe(true);
    expect(cut.length % 2).toBe(0);
    expect(truncateToTokens("hello world", 100)).toBe("hello world");
    expect(truncateToTokens("hello world", 0)).toBe("");
  });
});

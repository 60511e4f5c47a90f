import { describe, expect, it } from "vitest";
import { modelMatcher } from "./model-pattern.ts";

describe("modelMatcher", () => {
  it("matches exact names and * patterns, and everything when none are given", () => {
    const match = modelMatcher(["gpt-4o-mini", "claude-*-4-5", "o*"]);
    expect(match("gpt-4o-mini")).toBe(true);
    expect(match("gpt-4o")).toBe(false);
    expect(match("claude-haiku-4-5")).toBe(true);
    expect(match("claude-haiku-4-6")).toBe(false);
    expect(match("o3")).toBe(true);
    expect(modelMatcher(undefined)("anything")).toBe(true);
    expect(modelMatcher(["*"])("anything")).toBe(true);
  });

  it("treats regular-expression characters literally", () => {
    const match = modelMatcher(["a.b+c*"]);
    expect(match("a.b+cd")).toBe(true);
    expect(match("aXb+cd")).toBe(false);
  });
});

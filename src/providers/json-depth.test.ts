import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonTextTooDeep, MAX_JSON_DEPTH, valueTooDeep } from "./json-depth.ts";

/** The nesting depth of a JSON value, recursively (fine for the small values generated here). */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

describe("JSON depth, measured without recursion", () => {
  it("agrees with the recursive depth on any JSON value, as text and as a value", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 9 }), (value, limit) => {
        const deep = depthOf(value) > limit;
        expect(valueTooDeep(value, limit)).toBe(deep);
        expect(jsonTextTooDeep(JSON.stringify(value), limit) !== -1).toBe(deep);
      }),
    );
  });

  it("ignores brackets in strings, escaped quotes included", () => {
    expect(jsonTextTooDeep(JSON.stringify({ a: '[[[\\"[[[', b: ['"]]]{{{'] }), 2)).toBe(-1);
    expect(jsonTextTooDeep('[["\\\\"]]', 2)).toBe(-1);
    expect(jsonTextTooDeep('[["\\\\"],[[1]]]', 2)).toBe(9);
  });

  it("handles a million levels, and a cycle, without overflowing the stack", () => {
    const text = `${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}`;
    expect(jsonTextTooDeep(text)).toBe(MAX_JSON_DEPTH);
    expect(valueTooDeep(JSON.parse(text))).toBe(true);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(valueTooDeep(cycle)).toBe(true);
    const shared = { leaf: [1] };
    expect(valueTooDeep({ a: shared, b: [shared, shared] }, 4)).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { formatGoDuration } from "./go-duration.ts";

describe("formatGoDuration", () => {
  it.each([
    [0, "0s"],
    [-5, "0s"],
    [0.2, "1ms"],
    [1, "1ms"],
    [120, "120ms"],
    [999, "999ms"],
    [998.2, "999ms"],
    [999.6, "1s"],
    [1000, "1s"],
    [1500, "1.5s"],
    [8710, "8.71s"],
    [1001, "1.001s"],
    [59_999, "59.999s"],
    [60_000, "1m0s"],
    [360_000, "6m0s"],
    [61_500, "1m1.5s"],
    [3_600_000, "1h0m0s"],
    [3_723_000, "1h2m3s"],
  ])("%d ms -> %s", (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it("matches the pattern a client parses", () => {
    const pattern = /^(\d+(\.\d+)?h)?(\d+(\.\d+)?m(?!s))?(\d+(\.\d+)?s)?(\d+(\.\d+)?ms)?$/;
    for (const ms of [1, 10, 500, 1000, 1234, 65_432, 7_265_001]) {
      expect(formatGoDuration(ms)).toMatch(pattern);
    }
  });
});

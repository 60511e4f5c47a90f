import { describe, expect, it } from "vitest";
import { type Field, fitLine, REQUIRED } from "./fit-line.ts";

const fields: Field[] = [
  { text: "1234/2000", priority: REQUIRED },
  { text: "3 failed", priority: REQUIRED },
  {
    text: "in flight 12 (limit lowered to 9)",
    short: "in flight 12 (limit 9)",
    priority: 70,
    shortPriority: 55,
  },
  { text: "1.2k req/min", priority: 30 },
  { text: "429s 5", priority: 60 },
  { text: "retries 11", priority: 50 },
  { text: "elapsed 12.3s", short: "12.3s", priority: 10 },
];

describe("fitLine", () => {
  it("keeps everything when it fits", () => {
    expect(fitLine(fields, 200)).toBe(
      "1234/2000 | 3 failed | in flight 12 (limit lowered to 9) | 1.2k req/min | 429s 5 | retries 11 | elapsed 12.3s",
    );
  });

  it("shortens, then drops, the least important first; a short form can come before a drop", () => {
    expect(fitLine(fields, 101)).toBe(
      "1234/2000 | 3 failed | in flight 12 (limit lowered to 9) | 1.2k req/min | 429s 5 | retries 11 | 12.3s",
    );
    expect(fitLine(fields, 80)).toBe(
      "1234/2000 | 3 failed | in flight 12 (limit lowered to 9) | 429s 5 | retries 11",
    );
    // Shortening "in flight" (55) goes before dropping the 429s (60).
    expect(fitLine(fields, 60)).toBe("1234/2000 | 3 failed | in flight 12 (limit 9) | 429s 5");
  });

  it("never drops the counts: when they alone are too long, the line is cut with an ellipsis", () => {
    expect(fitLine(fields, 21)).toBe("1234/2000 | 3 failed");
    expect(fitLine(fields, 12)).toBe("1234/2000 |…");
  });
});

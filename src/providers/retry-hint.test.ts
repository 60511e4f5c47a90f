import { describe, expect, it } from "vitest";
import { retryAfterMs, shouldRetryHeader } from "./retry-hint.ts";

const now = Date.parse("2026-11-23T12:00:00Z");

describe("retryAfterMs", () => {
  it("prefers retry-after-ms, then x-ms-retry-after-ms, then retry-after", () => {
    expect(retryAfterMs({ "retry-after-ms": "250", "retry-after": "9" }, undefined, now)).toBe(250);
    expect(retryAfterMs({ "x-ms-retry-after-ms": "40", "retry-after": "9" }, undefined, now)).toBe(
      40,
    );
    expect(retryAfterMs({ "retry-after": "9" }, undefined, now)).toBe(9000);
    expect(retryAfterMs({ "retry-after": "1.5" }, undefined, now)).toBe(1500);
  });

  it("reads an HTTP date", () => {
    expect(retryAfterMs({ "retry-after": "Mon, 23 Nov 2026 12:00:07 GMT" }, undefined, now)).toBe(
      7000,
    );
    expect(retryAfterMs({ "retry-after": "Mon, 23 Nov 2026 11:00:00 GMT" }, undefined, now)).toBe(
      0,
    );
  });

  it("keeps long hints (the scheduler pauses the key instead of dropping them)", () => {
    expect(retryAfterMs({ "retry-after": "120" }, undefined, now)).toBe(120_000);
  });

  it("falls back on the body hint", () => {
    const message =
      "Rate limit reached for gpt-4o (TPM): Limit 30000, Used 30000, Requested 4355. Please try again in 8.71s.";
    expect(retryAfterMs({}, message, now)).toBe(8710);
    expect(retryAfterMs(undefined, "Please try again in 20ms.", now)).toBe(20);
    expect(retryAfterMs(undefined, "Please try again in 1m30s.", now)).toBe(90_000);
  });

  it("ignores garbage and is undefined without a hint", () => {
    expect(retryAfterMs({ "retry-after": "soon" }, "no hint here", now)).toBeUndefined();
    expect(retryAfterMs({ "retry-after-ms": "-5" }, undefined, now)).toBeUndefined();
    expect(retryAfterMs({ "retry-after": "" }, undefined, now)).toBeUndefined();
  });
});

describe("shouldRetryHeader", () => {
  it("reads true, false and absent", () => {
    expect(shouldRetryHeader({ "x-should-retry": "true" })).toBe(true);
    expect(shouldRetryHeader(new Headers({ "x-should-retry": "false" }))).toBe(false);
    expect(shouldRetryHeader({})).toBeUndefined();
  });
});

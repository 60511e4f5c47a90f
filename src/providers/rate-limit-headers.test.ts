import { describe, expect, it } from "vitest";
import { parseDurationMs, parseRateLimitHeaders } from "./rate-limit-headers.ts";

describe("parseDurationMs", () => {
  it.each([
    ["6m0s", 360_000],
    ["1s", 1000],
    ["1.5s", 1500],
    ["120ms", 120],
    ["0s", 0],
    ["1h2m3.5s", 3_723_500],
    ["2m", 120_000],
    ["17ms", 17],
    ["60", 60_000], // Azure: integer seconds
    ["0.25", 250],
  ])("%s -> %d ms", (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it.each(["", "-1", "abc", "1x", "s", "1m1h"])("rejects %o", (text) => {
    expect(parseDurationMs(text)).toBeUndefined();
  });
});

describe("parseRateLimitHeaders", () => {
  it("reads OpenAI headers with Go-style durations", () => {
    const headers = new Headers({
      "x-ratelimit-limit-requests": "500",
      "x-ratelimit-remaining-requests": "499",
      "x-ratelimit-reset-requests": "120ms",
      "x-ratelimit-limit-tokens": "30000",
      "x-ratelimit-remaining-tokens": "29000",
      "x-ratelimit-reset-tokens": "6m0s",
    });
    expect(parseRateLimitHeaders(headers)).toEqual({
      requests: { limit: 500, remaining: 499, resetMs: 120 },
      tokens: { limit: 30_000, remaining: 29_000, resetMs: 360_000 },
    });
  });

  it("reads Azure integer seconds and ignores -1", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "10",
      "x-ratelimit-reset-requests": "2",
      "x-ratelimit-remaining-tokens": "1000",
      "x-ratelimit-reset-tokens": "-1",
    };
    expect(parseRateLimitHeaders(headers)).toEqual({
      requests: { limit: undefined, remaining: 10, resetMs: 2000, fixedWindow: true },
      tokens: { limit: undefined, remaining: 1000, resetMs: undefined },
    });
  });

  it("reads Anthropic headers with RFC 3339 resets, per dimension", () => {
    const now = Date.parse("2026-11-23T12:00:00Z");
    const headers = {
      "anthropic-ratelimit-requests-limit": "50",
      "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-requests-reset": "2026-11-23T12:00:01.2Z",
      "anthropic-ratelimit-input-tokens-limit": "40000",
      "anthropic-ratelimit-input-tokens-remaining": "39000",
      "anthropic-ratelimit-input-tokens-reset": "2026-11-23T12:00:02Z",
      "anthropic-ratelimit-output-tokens-limit": "8000",
      "anthropic-ratelimit-output-tokens-remaining": "8000",
      "anthropic-ratelimit-output-tokens-reset": "2026-11-23T11:59:59Z",
    };
    expect(parseRateLimitHeaders(headers, now)).toEqual({
      requests: { limit: 50, remaining: 49, resetMs: 1200 },
      inputTokens: { limit: 40_000, remaining: 39_000, resetMs: 2000 },
      outputTokens: { limit: 8000, remaining: 8000, resetMs: 0 },
    });
  });

  it("is undefined without rate-limit headers", () => {
    expect(parseRateLimitHeaders({ "content-type": "application/json" })).toBeUndefined();
    expect(parseRateLimitHeaders(undefined)).toBeUndefined();
  });
});

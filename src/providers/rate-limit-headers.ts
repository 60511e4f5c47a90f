// Rate-limit response headers of every provider family, normalised into a RateLimitSnapshot:
// OpenAI `x-ratelimit-*` with Go-style durations (`6m0s`), Azure OpenAI the same names with
// integer seconds (where -1 means "unknown"), Anthropic `anthropic-ratelimit-*` with RFC 3339
// reset times.
import type { LimitReading, RateLimitSnapshot } from "../core/rate-limit-snapshot.ts";
import { type HeaderSource, headerValue } from "./headers.ts";

const GO_DURATION =
  /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/;

/**
 * Parses a Go-style duration (`1h2m3.5s`, `6m0s`, `120ms`, `0s`) into milliseconds.
 * A bare number is read as seconds (Azure). Returns undefined for anything else.
 */
export function parseDurationMs(text: string): number | undefined {
  const value = text.trim();
  if (value === "") return undefined;
  if (/^-?\d+(?:\.\d+)?$/.test(value)) {
    const seconds = Number(value);
    return seconds < 0 ? undefined : seconds * 1000;
  }
  const match = GO_DURATION.exec(value);
  if (match === null) return undefined;
  const [, h, m, s, ms] = match;
  if (h === undefined && m === undefined && s === undefined && ms === undefined) return undefined;
  return (
    Number(h ?? 0) * 3_600_000 + Number(m ?? 0) * 60_000 + Number(s ?? 0) * 1000 + Number(ms ?? 0)
  );
}

function count(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text.trim());
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

function reading(
  limit: number | undefined,
  remaining: number | undefined,
  resetMs: number | undefined,
): LimitReading | undefined {
  if (limit === undefined && remaining === undefined && resetMs === undefined) return undefined;
  return { limit, remaining, resetMs };
}

/** Azure OpenAI gives resets as bare seconds and counts in fixed windows; OpenAI as Go durations. */
const BARE_SECONDS = /^\s*\d+(?:\.\d+)?\s*$/;

function openAiReading(headers: HeaderSource, dimension: string): LimitReading | undefined {
  const reset = headerValue(headers, `x-ratelimit-reset-${dimension}`);
  const result = reading(
    count(headerValue(headers, `x-ratelimit-limit-${dimension}`)),
    count(headerValue(headers, `x-ratelimit-remaining-${dimension}`)),
    reset === undefined ? undefined : parseDurationMs(reset),
  );
  if (result && reset !== undefined && BARE_SECONDS.test(reset) && result.resetMs !== undefined) {
    result.fixedWindow = true;
  }
  return result;
}

function anthropicReading(
  headers: HeaderSource,
  dimension: string,
  nowMs: number,
): LimitReading | undefined {
  const reset = headerValue(headers, `anthropic-ratelimit-${dimension}-reset`);
  let resetMs: number | undefined;
  if (reset !== undefined) {
    const at = Date.parse(reset);
    if (Number.isFinite(at)) resetMs = Math.max(0, at - nowMs);
  }
  return reading(
    count(headerValue(headers, `anthropic-ratelimit-${dimension}-limit`)),
    count(headerValue(headers, `anthropic-ratelimit-${dimension}-remaining`)),
    resetMs,
  );
}

/**
 * Reads whichever family of rate-limit headers is present.
 * @param nowMs wall-clock time the response arrived (epoch ms), for RFC 3339 resets.
 * @returns undefined when the response carries no rate-limit headers at all.
 */
export function parseRateLimitHeaders(
  headers: HeaderSource | undefined,
  nowMs: number = Date.now(),
): RateLimitSnapshot | undefined {
  if (headers === undefined) return undefined;
  const snapshot: RateLimitSnapshot = {};
  const requests =
    anthropicReading(headers, "requests", nowMs) ?? openAiReading(headers, "requests");
  const tokens = anthropicReading(headers, "tokens", nowMs) ?? openAiReading(headers, "tokens");
  const inputTokens = anthropicReading(headers, "input-tokens", nowMs);
  const outputTokens = anthropicReading(headers, "output-tokens", nowMs);
  if (requests) snapshot.requests = requests;
  if (tokens) snapshot.tokens = tokens;
  if (inputTokens) snapshot.inputTokens = inputTokens;
  if (outputTokens) snapshot.outputTokens = outputTokens;
  return Object.keys(snapshot).length === 0 ? undefined : snapshot;
}

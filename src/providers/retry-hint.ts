// How long a provider asked us to wait, from every place providers put it. Precedence:
// `retry-after-ms`, `x-ms-retry-after-ms` (Azure), `retry-after` (seconds or an HTTP date),
// then a hint in the error message ("Please try again in 8.71s", "in 20ms", "in 1m30s").
// Unlike the SDKs, long hints are kept: the scheduler pauses the key instead of dropping them.
import { type HeaderSource, headerValue } from "./headers.ts";
import { parseDurationMs } from "./rate-limit-headers.ts";

const BODY_HINT = /try again in ((?:\d+(?:\.\d+)?(?:h|ms|m|s))+)/i;

function nonNegative(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text.trim());
  return text.trim() !== "" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The wait the provider asked for, in milliseconds, or undefined when it gave none.
 * @param message the error message or body text, searched for a "try again in" hint.
 * @param nowMs wall-clock time (epoch ms), for HTTP-date `retry-after` values.
 */
export function retryAfterMs(
  headers: HeaderSource | undefined,
  message?: string,
  nowMs: number = Date.now(),
): number | undefined {
  const ms = nonNegative(headerValue(headers, "retry-after-ms"));
  if (ms !== undefined) return ms;
  const azureMs = nonNegative(headerValue(headers, "x-ms-retry-after-ms"));
  if (azureMs !== undefined) return azureMs;
  const retryAfter = headerValue(headers, "retry-after");
  if (retryAfter !== undefined) {
    const seconds = nonNegative(retryAfter);
    if (seconds !== undefined) return seconds * 1000;
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return Math.max(0, at - nowMs);
  }
  if (message !== undefined) {
    const hint = BODY_HINT.exec(message)?.[1];
    if (hint !== undefined) return parseDurationMs(hint);
  }
  return undefined;
}

/** The `x-should-retry` header: true, false, or undefined when absent or unreadable. */
export function shouldRetryHeader(headers: HeaderSource | undefined): boolean | undefined {
  const value = headerValue(headers, "x-should-retry")?.trim().toLowerCase();
  if (value === "true") return true;
  if (value === "false") return false;
  return undefined;
}

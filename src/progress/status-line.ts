// One line of run status, shared by the bar's payload and plain mode.
import type { RunSnapshot } from "../metrics/run-metrics.ts";
import { formatCount, formatDuration } from "./format.ts";

export function statusLine(s: RunSnapshot): string {
  const done = s.succeeded + s.failed + s.skipped;
  const total = s.total === undefined ? "?" : String(s.total);
  const parts = [
    `${done}/${total} done`,
    `${s.failed} failed`,
    `in flight ${s.inFlight}/${Number.isFinite(s.limit) ? s.limit : "∞"}`,
    `${formatCount(s.requestsPerMinute)} req/min`,
    `${formatCount(s.tokensPerMinute)} tok/min`,
    `429s ${s.rateLimited}`,
    `retries ${s.retries}`,
    `elapsed ${formatDuration(s.elapsedMs)}`,
  ];
  if (s.etaMs !== undefined) parts.push(`eta ${formatDuration(s.etaMs)}`);
  if (s.paused) parts.push("paused (rate limit)");
  return parts.join(" | ");
}

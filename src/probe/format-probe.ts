// The probe's report for people: the curve as a table, a plain-text bar chart of throughput with
// p50 latency beside it, the knee, the limits read from the headers, and the flags to run with.

import type { Recommendation } from "./knee.ts";
import type { LevelResult, StopReason, SweepResult } from "./sweep.ts";

const STOPS: Record<StopReason, string> = {
  "levels-done": "every level probed",
  plateau: "throughput (calls in flight over their latency) stopped growing for two levels",
  "rate-limited": "the endpoint answered 429",
  budget: "the request budget is spent",
  errors: "a level had no successful answer",
  aborted: "interrupted",
};

const BAR = 30;

export function formatProbe(result: SweepResult, rec: Recommendation): string {
  const lines: string[] = [];
  const header = [
    "concurrency",
    "requests",
    "ok",
    "429",
    "errors",
    "req/s",
    "tok/s",
    "p50 ms",
    "p95 ms",
  ];
  const rows = result.levels.map((l) => [
    String(l.concurrency),
    String(l.requests),
    String(l.ok),
    String(l.rateLimited),
    String(l.errors),
    num(l.throughputRps),
    num(l.outputTokensPerSec),
    ms(l.p50Ms),
    ms(l.p95Ms),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
  lines.push(line(header), ...rows.map(line), "");

  const best = Math.max(1e-9, ...result.levels.map((l) => l.throughputRps));
  lines.push("throughput (req/s), p50 latency:");
  const label = Math.max(...result.levels.map((l) => String(l.concurrency).length));
  for (const l of result.levels) {
    const filled = Math.round((l.throughputRps / best) * BAR);
    const mark = l === rec.knee ? " <- knee" : "";
    lines.push(
      `${String(l.concurrency).padStart(label)} |${"#".repeat(filled).padEnd(BAR)}| ${num(l.throughputRps)} req/s, ${ms(l.p50Ms)} ms${mark}`,
    );
  }
  lines.push("");
  lines.push(`stopped: ${STOPS[result.stoppedBecause]} (${result.requestsSent} requests sent)`);
  for (const note of rec.notes) lines.push(`- ${note}`);
  lines.push(`limits from headers: ${limitsText(rec)}`);
  const firstError = result.levels.find((l) => l.firstError !== undefined)?.firstError;
  if (firstError !== undefined) lines.push(`first error: ${firstError}`);
  lines.push(`recommendation: ${rec.flags}`);
  return `${lines.join("\n")}\n`;
}

function limitsText(rec: Recommendation): string {
  const l = rec.limits;
  const parts: string[] = [];
  if (l.requestsPerMinute !== undefined) parts.push(`${l.requestsPerMinute} requests/min`);
  if (l.tokensPerMinute !== undefined) parts.push(`${l.tokensPerMinute} tokens/min`);
  if (l.inputTokensPerMinute !== undefined)
    parts.push(`${l.inputTokensPerMinute} input tokens/min`);
  if (l.outputTokensPerMinute !== undefined)
    parts.push(`${l.outputTokensPerMinute} output tokens/min`);
  return parts.length === 0 ? "none" : parts.join(", ");
}

/** The sweep and recommendation for programs (`--json`). */
export function probeJson(
  target: { provider: string; baseUrl: string; model: string },
  result: SweepResult,
  rec: Recommendation,
): unknown {
  return {
    target,
    levels: result.levels.map((l: LevelResult) => ({
      concurrency: l.concurrency,
      requests: l.requests,
      ok: l.ok,
      rateLimited: l.rateLimited,
      errors: l.errors,
      throughputRps: round(l.throughputRps),
      ...(l.serverRps === undefined ? {} : { serverRps: round(l.serverRps) }),
      outputTokensPerSec: round(l.outputTokensPerSec),
      p50Ms: round(l.p50Ms),
      p95Ms: round(l.p95Ms),
      durationMs: round(l.durationMs),
    })),
    stoppedBecause: result.stoppedBecause,
    requestsSent: result.requestsSent,
    knee:
      rec.knee === undefined
        ? null
        : {
            concurrency: rec.knee.concurrency,
            throughputRps: round(rec.knee.throughputRps),
            latencyInflation: round(rec.kneeInflation),
          },
    bestThroughputRps: round(rec.bestThroughputRps),
    unloadedP50Ms: round(rec.unloadedP50Ms),
    stillGrowing: rec.stillGrowing,
    limits: rec.limits,
    recommendation: {
      concurrency: rec.concurrency,
      requestsPerMinute: rec.limits.requestsPerMinute ?? null,
      tokensPerMinute: rec.limits.tokensPerMinute ?? null,
      flags: rec.flags,
    },
    notes: rec.notes,
  };
}

function round(x: number): number | null {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : null;
}

function num(x: number): string {
  if (!Number.isFinite(x)) return "-";
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function ms(x: number): string {
  return Number.isFinite(x) ? String(Math.round(x)) : "-";
}

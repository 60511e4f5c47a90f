// The text `salvo run` prints when a run ends, and the budget's part of the JSON report: built from
// the batch summary and the run's metrics, so a program running a batch file can print the same.

import type { ResponseCache } from "../cache/response-cache.ts";
import type { Budget } from "../cost/budget.ts";
import { formatUsd } from "../cost/pricing.ts";
import type { BoundLimits, LatencySummary, RunSummary } from "../metrics/run-metrics.ts";
import { formatCount, formatDuration } from "../progress/format.ts";
import type { BatchSummary } from "./run-batch.ts";

export function budgetReport(budget: Budget) {
  return {
    maxCostUsd: Number.isFinite(budget.maxCostUsd) ? budget.maxCostUsd : null,
    maxTokens: Number.isFinite(budget.maxTokens) ? budget.maxTokens : null,
    spent: { ...budget.spent },
    refused: budget.refused,
    exhausted: budget.exhausted !== undefined,
  };
}

/** Why answers of this run were or were not reused without a call. */
export type CacheNotes = {
  /**
   * Requests executed with the cache on whose answers are samples (temperature > 0 or unset),
   * neither cached nor shared: their answers differ on every call. @default 0
   */
  samples?: number | undefined;
};

/** The summary's lines on money: cost, the cache's savings and why, the budget. */
export function spendLines(
  run: RunSummary,
  cache: ResponseCache | undefined,
  budget: Budget | undefined,
  notes: CacheNotes = {},
): string[] {
  const lines: string[] = [];
  const unpriced =
    run.cost.unpriced > 0
      ? `; ${run.cost.unpriced} call(s) at an unknown price are not included (add their model under pricing: in the config file)`
      : "";
  lines.push(`  cost ${formatUsd(run.cost.usd)}${unpriced}`);
  if (cache !== undefined) {
    const { stored, errors } = cache.counters;
    const failures = errors > 0 ? `, ${errors} cache errors` : "";
    lines.push(
      `  cache: ${run.cached} answered from the cache without a call, ${stored} new answers stored${failures} (${cache.dir})`,
    );
  }
  if (run.shared > 0)
    lines.push(
      `  ${run.shared} shared the answer of an identical call in flight (no call of their own)`,
    );
  const samples = notes.samples ?? 0;
  if (cache !== undefined && samples > 0)
    lines.push(
      `  ${samples} request(s) were not cached: they ask for samples (temperature > 0 or unset), whose answers differ on every call; set temperature: 0 in them for repeatable answers, or add --cache-force to cache them anyway`,
    );
  if (budget !== undefined) {
    const limits = [
      Number.isFinite(budget.maxCostUsd)
        ? `${formatUsd(budget.spent.usd)} of --max-cost ${formatUsd(budget.maxCostUsd)}`
        : undefined,
      Number.isFinite(budget.maxTokens)
        ? `${formatCount(budget.spent.tokens)} of --max-tokens-total ${formatCount(budget.maxTokens)} tokens`
        : undefined,
    ].filter(Boolean);
    lines.push(
      `  budget: spent ${limits.join(", ")}${budget.exhausted ? `; exhausted: ${budget.refused} item(s) not run (SALVO_BUDGET_EXCEEDED), rerun with a larger budget to run them` : ""}`,
    );
  }
  return lines;
}

const LIMIT_NAMES: Array<[keyof BoundLimits, (n: number) => string]> = [
  ["concurrency", (n) => `concurrency ${n}`],
  ["requestsPerMinute", (n) => `${formatCount(n)} requests/min`],
  ["tokensPerMinute", (n) => `${formatCount(n)} tokens/min`],
  ["inputTokensPerMinute", (n) => `${formatCount(n)} input tokens/min`],
  ["outputTokensPerMinute", (n) => `${formatCount(n)} output tokens/min`],
];

/** `1.2k requests/min set, 200k tokens/min learned from the provider's headers`. */
export function limitsText(limits: BoundLimits): string {
  const parts: string[] = [];
  for (const [key, name] of LIMIT_NAMES) {
    const limit = limits[key];
    if (limit === undefined) continue;
    if (limit.source === "set") parts.push(`${name(limit.value)} set`);
    else if (limit.source === "learned")
      parts.push(`${name(limit.value)} learned from the provider's headers`);
    else
      parts.push(
        `${name(limit.value)} from the provider's headers (lower than the ${formatCount(limit.set ?? 0)} set)`,
      );
  }
  return parts.join(", ");
}

/** The latency lines: every attempt (failed ones included) and the answered calls. */
function latencyLines(run: RunSummary): string[] {
  const p = (l: LatencySummary) =>
    `p50 ${formatDuration(l.p50)}, p95 ${formatDuration(l.p95)}, p99 ${formatDuration(l.p99)}`;
  const tokens = `tokens ${formatCount(run.tokens.input)} in, ${formatCount(run.tokens.output)} out`;
  const all = run.attemptLatencyMs;
  const failed = run.failedAttemptLatencyMs;
  if (failed.count === 0) {
    if (run.latencyMs.count === 0) return [];
    return [`  latency per call ${p(run.latencyMs)}; ${tokens}`];
  }
  const lines = [
    `  latency of all ${all.count} attempts, the ${failed.count} failed ${failed.count === 1 ? "one" : "ones"} (errors, timeouts, 429s) included: ${p(all)}, max ${formatDuration(all.max)}`,
  ];
  lines.push(
    run.latencyMs.count > 0
      ? `  latency of the ${run.latencyMs.count} answered calls alone: ${p(run.latencyMs)}; ${tokens}`
      : `  no call was answered; ${tokens}`,
  );
  return lines;
}

/**
 * The text `salvo run` prints at the end. `_limitsSet` is no longer read: M* is computed with the
 * limits in force, set or learned, and says which (`run.boundLimits`).
 */
export function summaryText(
  batch: BatchSummary,
  run: RunSummary,
  output: string,
  _limitsSet: boolean,
  spend: string[],
): string {
  const lines: string[] = [];
  const failedCodes = Object.entries(run.failedByCode)
    .map(([code, n]) => `${code} ${n}`)
    .join(", ");
  // An interrupted run leaves items without an output line: they are not failures.
  const notRun = batch.total - batch.succeeded - batch.failed - batch.invalid;
  const stopped =
    batch.interrupted && notRun > 0
      ? `; ${notRun} not run (stopped: run the same command again to run them)`
      : "";
  lines.push(
    `salvo run: ${batch.total} items in ${formatDuration(run.makespanMs)}: ${batch.succeeded} succeeded, ${batch.failed} failed${failedCodes ? ` (${failedCodes})` : ""}, ${batch.invalid} invalid input lines${stopped}`,
  );
  const retried = batch.retried.transient + batch.retried.permanent;
  if (
    batch.resumedFromOutput + batch.resumedFromJournal + batch.rerun + retried + batch.changed >
    0
  ) {
    const again = [
      batch.rerun > 0 ? `${batch.rerun} not run before (over budget)` : undefined,
      retried > 0
        ? `${retried} failed before and run again (${Object.entries(batch.retried.byCode)
            .map(([code, n]) => `${code} ${n}`)
            .join(
              ", ",
            )}${batch.retried.permanent > 0 ? `; ${batch.retried.permanent} of them permanent, by --retry-failed` : ""})`
        : undefined,
      batch.changed > 0 ? `${batch.changed} changed in the input since their answer` : undefined,
    ].filter(Boolean);
    lines.push(
      `  resumed: ${batch.resumedFromOutput} already in the output, ${batch.resumedFromJournal} from the journal${again.length > 0 ? `, ${again.join(", ")}` : ""}; ${batch.executed} items run now`,
    );
  }
  const statuses = Object.entries(run.byStatus)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, n]) => `${status === "none" ? "no answer" : status} ${n}`)
    .join(", ");
  lines.push(
    `  attempts ${run.attempts}, retries ${run.retries}, 429s ${run.rateLimited}, paused ${formatDuration(run.pausedMs)}; final status: ${statuses || "none"}`,
  );
  lines.push(...latencyLines(run));
  if (run.attemptLatencyMs.count > 0) {
    const sequentialMs = run.attemptLatencyMs.mean * run.attemptLatencyMs.count;
    lines.push(
      `  throughput ${run.throughputPerSecond.toFixed(1)} calls/s; one at a time these calls would have taken about ${formatDuration(sequentialMs)}`,
    );
  }
  const { limit } = run;
  lines.push(
    limit.min === limit.max
      ? `  concurrency ${limit.final}`
      : `  concurrency adapted between ${limit.min} and ${limit.max}, ending at ${limit.final} (the report has its timeline)`,
  );
  if (run.bound && run.ratioToBound !== undefined) {
    const limits = limitsText(run.boundLimits);
    if (limits === "") {
      lines.push(
        "  no concurrency or rate limit was set or learned from the provider's headers, so M* is only the longest call; set --rpm/--tpm (or a number for --concurrency) to compare with the physical bound",
      );
    } else {
      lines.push(
        `  lower bound M* ${formatDuration(run.bound.boundMs)} (bound by ${run.bound.binding}) with ${limits}; this run took ${run.ratioToBound.toFixed(2)}x M*`,
      );
    }
  }
  lines.push(...spend);
  lines.push(`  output: ${output}`);
  return `${lines.join("\n")}\n`;
}

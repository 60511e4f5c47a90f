// The text `salvo run` prints when a run ends, and the budget's part of the JSON report: built from
// the batch summary and the run's metrics, so a program running a batch file can print the same.

import type { ResponseCache } from "../cache/response-cache.ts";
import type { Budget } from "../cost/budget.ts";
import { formatUsd } from "../cost/pricing.ts";
import type { RunSummary } from "../metrics/run-metrics.ts";
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

/** The summary's lines on money: cost, the cache's savings, the budget. */
export function spendLines(
  run: RunSummary,
  cache: ResponseCache | undefined,
  budget: Budget | undefined,
): string[] {
  const lines: string[] = [];
  const unpriced =
    run.cost.unpriced > 0
      ? `; ${run.cost.unpriced} call(s) at an unknown price are not included (add their model under pricing: in the config file)`
      : "";
  lines.push(`  cost ${formatUsd(run.cost.usd)}${unpriced}`);
  if (cache !== undefined || run.shared > 0) {
    const parts: string[] = [];
    if (cache !== undefined || run.cached > 0) parts.push(`${run.cached} answered from the cache`);
    if (run.shared > 0) parts.push(`${run.shared} shared with an identical call in flight`);
    const stored =
      cache === undefined
        ? ""
        : `; ${cache.counters.stored} answers stored in the cache${cache.counters.errors > 0 ? `, ${cache.counters.errors} cache errors` : ""}`;
    lines.push(`  no call made: ${parts.join(", ")}${stored}`);
  }
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

export function summaryText(
  batch: BatchSummary,
  run: RunSummary,
  output: string,
  limitsSet: boolean,
  spend: string[],
): string {
  const lines: string[] = [];
  const failedCodes = Object.entries(run.failedByCode)
    .map(([code, n]) => `${code} ${n}`)
    .join(", ");
  lines.push(
    `salvo run: ${batch.total} items in ${formatDuration(run.makespanMs)}: ${batch.succeeded} succeeded, ${batch.failed} failed${failedCodes ? ` (${failedCodes})` : ""}, ${batch.invalid} invalid input lines`,
  );
  if (batch.resumedFromOutput + batch.resumedFromJournal + batch.rerun > 0) {
    const rerun = batch.rerun > 0 ? `, ${batch.rerun} not run before (over budget)` : "";
    lines.push(
      `  resumed: ${batch.resumedFromOutput} already in the output, ${batch.resumedFromJournal} from the journal${rerun}; ${batch.executed} items run now`,
    );
  }
  const statuses = Object.entries(run.byStatus)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, n]) => `${status === "none" ? "no answer" : status} ${n}`)
    .join(", ");
  lines.push(
    `  attempts ${run.attempts}, retries ${run.retries}, 429s ${run.rateLimited}, paused ${formatDuration(run.pausedMs)}; final status: ${statuses || "none"}`,
  );
  if (run.latencyMs.count > 0) {
    lines.push(
      `  latency per call p50 ${formatDuration(run.latencyMs.p50)}, p95 ${formatDuration(run.latencyMs.p95)}, p99 ${formatDuration(run.latencyMs.p99)}; tokens ${formatCount(run.tokens.input)} in, ${formatCount(run.tokens.output)} out`,
    );
    const sequentialMs = run.latencyMs.mean * run.latencyMs.count;
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
    if (!limitsSet) {
      lines.push(
        "  no concurrency or rate limit was set, so M* is only the longest call; set --rpm/--tpm (or a number for --concurrency) to compare with the physical bound",
      );
    } else {
      lines.push(
        `  lower bound M* ${formatDuration(run.bound.boundMs)} (bound by ${run.bound.binding}); this run took ${run.ratioToBound.toFixed(2)}x M*`,
      );
    }
  }
  lines.push(...spend);
  lines.push(`  output: ${output}`);
  return `${lines.join("\n")}\n`;
}

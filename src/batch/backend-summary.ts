// The summary's lines on the backend (`salvo run --backend batch|auto`): what was placed where and
// why, the provider batches, and what the batch price saved.
import { formatUsd } from "../cost/pricing.ts";
import type { BackendReport } from "./batch-backend.ts";

export function backendLines(report: BackendReport): string[] {
  const lines: string[] = [];
  const plan = report.plan;
  if (plan !== undefined) {
    const placed =
      plan.mode === "split"
        ? `split: ${plan.batch} items to the batch API, ${plan.realtime} in real time`
        : plan.mode === "batch"
          ? `batch API for ${plan.batch} items`
          : `real time for ${plan.realtime} items`;
    lines.push(`  backend ${report.backend}: ${placed}; ${plan.reason}`);
  } else lines.push(`  backend ${report.backend}: every item was placed by an earlier run`);
  if (report.batches.length > 0) {
    const ids = report.batches.map((b) => b.id ?? "(not created)").join(", ");
    const parts = [
      `${report.submitted} batch${report.submitted === 1 ? "" : "es"} submitted`,
      report.reattached > 0 ? `${report.reattached} re-attached after a restart` : undefined,
    ].filter(Boolean);
    lines.push(`  batch API: ${parts.join(", ")} (${ids})`);
    const saved = report.realtimeCostUsd - report.costUsd;
    const rest = [
      report.fellBack > 0
        ? `${report.fellBack} that it errored or did not run were run in real time`
        : undefined,
      report.notRun > 0
        ? `${report.notRun} it did not run and the deadline left no time for (SALVO_BATCH_NOT_RUN: rerun to run them)`
        : undefined,
      report.overBudget > 0
        ? `${report.overBudget} kept out of a batch by the budget (SALVO_BUDGET_EXCEEDED)`
        : undefined,
    ].filter(Boolean);
    lines.push(
      `  batch API answered ${report.answered} lines for ${formatUsd(report.costUsd)} at the batch price (${formatUsd(saved)} less than in real time)${rest.length > 0 ? `; ${rest.join("; ")}` : ""}`,
    );
  }
  return lines;
}

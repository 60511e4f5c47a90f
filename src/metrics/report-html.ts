// The HTML report: one self-contained file (no network, no external script, style or font; a
// Content-Security-Policy that forbids fetching anything) that draws a run's charts in SVG from
// the same data as the JSON report: the RunSummary (key numbers, latency percentiles, cost, the
// bound M* and the ratio, the limit's timeline), the RunTimeline's series (throughput, in flight
// against the limit, 429s, retries and cooldowns over time, the latency histogram) and, for a
// pipeline, its report and a Gantt chart of its tasks with the critical path.
//
// The data is embedded as JSON (`<script type="application/json" id="salvo-report">`); a small
// inline script draws from it in the browser, and every number it shows carries its source path
// (`data-key`) and raw value (`data-value`), so a test can check the page against the JSON.

import { writeFile } from "node:fs/promises";
import type { PipelineReport } from "../pipeline/pipeline-report.ts";
import type { TaskRecord } from "../pipeline/task-record.ts";
import { REPORT_SCRIPT, REPORT_STYLE } from "./report-html-assets.ts";
import type { RunSummary } from "./run-metrics.ts";
import type { RunSeries } from "./run-timeline.ts";

/** One task of a pipeline as the Gantt chart draws it; times in ms since the run started. */
export type GanttTask = {
  id: string;
  stage: string;
  startMs: number;
  endMs: number;
  status: string;
  /** On the critical path (the longest chain of measured latencies). */
  critical: boolean;
};

export type HtmlReportInput = {
  /** The page's title. @default "Salvo run report" */
  title?: string | undefined;
  /** The run's summary (the JSON report's `run`). */
  run?: RunSummary | undefined;
  /** The run over time (`RunTimeline.series`). */
  series?: RunSeries | undefined;
  /** A pipeline run: its report.json and its tasks' times. */
  pipeline?: { report: PipelineReport; tasks: GanttTask[] } | undefined;
  /** When the report was written (ISO 8601). @default now */
  generatedAt?: string | undefined;
};

/** The Gantt rows of a pipeline run: every task that started, in start order. */
export function ganttTasks(
  records: ReadonlyMap<string, TaskRecord>,
  report: PipelineReport,
): GanttTask[] {
  const critical = new Set(report.criticalPath.tasks);
  const tasks: GanttTask[] = [];
  for (const [id, record] of records) {
    if (record.startedAtMs === undefined || record.endedAtMs === undefined || record.reused) {
      continue;
    }
    tasks.push({
      id,
      stage: id.includes("/") ? id.slice(0, id.indexOf("/")) : id,
      startMs: record.startedAtMs,
      endMs: record.endedAtMs,
      status: record.status,
      critical: critical.has(id),
    });
  }
  return tasks.sort((a, b) => a.startMs - b.startMs || a.id.localeCompare(b.id));
}

/** Text for HTML: escapes the five characters that could end or open markup. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that cannot close its `<script>` element (or open a comment) inside the page. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** The report as one HTML page. */
export function renderHtmlReport(input: HtmlReportInput): string {
  const title = input.title ?? "Salvo run report";
  const data = {
    title,
    generatedAt: input.generatedAt ?? new Date().toISOString(),
    run: input.run ?? null,
    series: input.series ?? null,
    pipeline: input.pipeline ?? null,
  };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${REPORT_STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(title)}</h1><p class="meta" id="generated"></p></header>
<main id="report"><noscript>This report draws its charts with JavaScript; the data is in the script element below.</noscript></main>
<script type="application/json" id="salvo-report">${scriptJson(data)}</script>
<script>${REPORT_SCRIPT}</script>
</body>
</html>
`;
}

/** Writes the report to `path` (created 0600, like the JSON report). */
export async function writeHtmlReport(path: string, input: HtmlReportInput): Promise<void> {
  await writeFile(path, renderHtmlReport(input), { mode: 0o600 });
}

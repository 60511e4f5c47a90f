// A pipeline run's report (`report.json`): per task its latency, tokens and attempts; per stage
// its wall-clock against the sum and the max of its tasks (seed 003's criteria: a stage of
// parallel tasks should take about its longest task, not their sum); the critical path (the
// longest chain of measured task latencies: no schedule can beat it, whatever the concurrency)
// with the makespan's ratio to it; and what each context assembly trimmed.
import { formatCount, formatDuration } from "../progress/format.ts";
import type { TaskCounts } from "./run-dir.ts";
import { longestChain, type TaskGraph } from "./task-graph.ts";
import type { RunStatus, TaskRecord } from "./task-record.ts";

export type StageReport = {
  name: string;
  tasks: number;
  /** Tasks that ran in this run (not reused, skipped or cancelled before they started). */
  executed: number;
  /** From the first start to the last end of its executed tasks, ms. */
  wallMs: number;
  /** Sum of its executed tasks' latencies, ms: what running them one at a time would take. */
  sumMs: number;
  /** Its longest task latency, ms: the best a stage of independent tasks can do. */
  maxMs: number;
  /** wallMs / maxMs (1 is ideal for tasks that can all run at once). */
  wallToMax: number | null;
  /** sumMs / wallMs: how many tasks ran at once on average. */
  parallelism: number | null;
};

export type PipelineReport = {
  pipeline: string;
  status: RunStatus;
  startedAt: string;
  /** From the run's start to its last task's end, ms. */
  makespanMs: number;
  tasks: TaskCounts;
  /** Over the tasks run now. */
  calls: { attempts: number; inputTokens: number; outputTokens: number };
  stages: StageReport[];
  /**
   * The longest chain of measured latencies of the tasks run now (reused tasks count 0): a lower
   * bound on the makespan for any concurrency; `ratio` is the makespan over it.
   */
  criticalPath: { boundMs: number; ratio: number | null; tasks: string[] };
  /** Tasks whose context was trimmed to its budget: what was cut and dropped. */
  contextTrimmed: Array<{
    task: string;
    budget: number | null;
    tokens: number;
    truncated: string[];
    dropped: string[];
  }>;
  /** Every task, in topological order. */
  perTask: Array<{
    task: string;
    status: TaskRecord["status"];
    reused: boolean;
    attempts: number;
    waitMs: number | null;
    latencyMs: number | null;
    inputTokens: number | null;
    outputTokens: number | null;
    contextTokens: number | null;
    partial: boolean;
    error: string | null;
  }>;
};

const ratio = (a: number, b: number) => (b > 0 ? a / b : null);

/** Counts of records by status. */
export function countTasks(records: Iterable<TaskRecord>, total: number): TaskCounts {
  const counts: TaskCounts = {
    total,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    cancelled: 0,
    reused: 0,
  };
  for (const record of records) {
    counts[record.status]++;
    if (record.reused) counts.reused++;
  }
  return counts;
}

export function buildReport<I>(options: {
  name: string;
  status: RunStatus;
  startedAt: string;
  makespanMs: number;
  graph: TaskGraph<I>;
  records: Map<string, TaskRecord>;
}): PipelineReport {
  const { graph, records } = options;
  const ran = (r: TaskRecord | undefined): r is TaskRecord & { startedAtMs: number } =>
    r !== undefined && !r.reused && r.startedAtMs !== undefined && r.endedAtMs !== undefined;
  const calls = { attempts: 0, inputTokens: 0, outputTokens: 0 };
  for (const record of records.values()) {
    if (record.reused) continue;
    calls.attempts += record.attempts;
    calls.inputTokens += record.usage?.inputTokens ?? 0;
    calls.outputTokens += record.usage?.outputTokens ?? 0;
  }
  const stages = graph.stages.map(({ name, ids }): StageReport => {
    const executed = ids.map((id) => records.get(id)).filter(ran);
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    let sumMs = 0;
    let maxMs = 0;
    for (const r of executed) {
      first = Math.min(first, r.startedAtMs);
      last = Math.max(last, r.endedAtMs!);
      sumMs += r.latencyMs ?? 0;
      maxMs = Math.max(maxMs, r.latencyMs ?? 0);
    }
    const wallMs = executed.length > 0 ? last - first : 0;
    return {
      name,
      tasks: ids.length,
      executed: executed.length,
      wallMs,
      sumMs,
      maxMs,
      wallToMax: ratio(wallMs, maxMs),
      parallelism: ratio(sumMs, wallMs),
    };
  });
  const chain = longestChain(graph, (node) => {
    const record = records.get(node.id);
    return ran(record) ? (record.latencyMs ?? 0) : 0;
  });
  return {
    pipeline: options.name,
    status: options.status,
    startedAt: options.startedAt,
    makespanMs: options.makespanMs,
    tasks: countTasks(records.values(), graph.order.length),
    calls,
    stages,
    criticalPath: {
      boundMs: chain.lengthMs,
      ratio: ratio(options.makespanMs, chain.lengthMs),
      tasks: chain.lengthMs > 0 ? chain.tasks : [],
    },
    contextTrimmed: graph.order.flatMap((node) => {
      const context = records.get(node.id)?.context;
      if (!context || (context.dropped.length === 0 && context.truncated.length === 0)) return [];
      return [
        {
          task: node.id,
          budget: context.budget,
          tokens: context.tokens,
          truncated: context.truncated,
          dropped: context.dropped,
        },
      ];
    }),
    perTask: graph.order.map((node) => {
      const r = records.get(node.id);
      return {
        task: node.id,
        status: r?.status ?? "cancelled",
        reused: r?.reused ?? false,
        attempts: r?.attempts ?? 0,
        waitMs: r?.waitMs ?? null,
        latencyMs: r?.latencyMs ?? null,
        inputTokens: r?.usage?.inputTokens ?? null,
        outputTokens: r?.usage?.outputTokens ?? null,
        contextTokens: r?.context?.tokens ?? null,
        partial: r?.partial ?? false,
        error: r?.error?.code ?? null,
      };
    }),
  };
}

/** The human summary of a report, a few lines. */
export function reportSummary(report: PipelineReport, runDir: string | undefined): string {
  const t = report.tasks;
  const lines = [
    `salvo pipeline ${report.pipeline}: ${t.total} tasks in ${formatDuration(report.makespanMs)}: ${t.succeeded} succeeded${t.reused ? ` (${t.reused} reused from the run directory)` : ""}, ${t.failed} failed, ${t.skipped} skipped, ${t.cancelled} cancelled; ${report.status}`,
    `  attempts ${report.calls.attempts}; tokens ${formatCount(report.calls.inputTokens)} in, ${formatCount(report.calls.outputTokens)} out`,
  ];
  for (const s of report.stages) {
    if (s.executed === 0) continue;
    lines.push(
      `  stage ${s.name}: ${s.executed} of ${s.tasks} tasks ran, wall ${formatDuration(s.wallMs)} vs longest task ${formatDuration(s.maxMs)} and sum ${formatDuration(s.sumMs)}`,
    );
  }
  const cp = report.criticalPath;
  if (cp.boundMs > 0 && cp.ratio !== null)
    lines.push(
      `  critical path ${formatDuration(cp.boundMs)} (${cp.tasks.join(" -> ")}); this run took ${cp.ratio.toFixed(2)}x it`,
    );
  if (report.contextTrimmed.length > 0)
    lines.push(
      `  context trimmed to its budget in ${report.contextTrimmed.length} task(s); report.json lists what was cut`,
    );
  if (runDir) lines.push(`  run directory: ${runDir}`);
  return `${lines.join("\n")}\n`;
}

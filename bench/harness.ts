// The benchmark harness: every scenario against every contender, on a fresh simulator per run
// (buckets start equal), each contender in its own child process, repetitions interleaved so drift
// hits all alike, medians reported against M* and against Salvo. Used by `npm run bench`
// (bench/run.ts) and `salvo bench`.

import { type ChildProcess, fork } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../src/errors.ts";
import { resolveSimConfig, startSimulator } from "../src/sim/index.ts";
import type { ChildFailure, ChildJob, ChildReport } from "./child.ts";
import {
  CONTENDERS,
  type ContenderContext,
  isSweepContender,
  salvoAutoAvailable,
} from "./contenders.ts";
import { type ModelBound, modelBound } from "./model-bound.ts";
import { type BenchScenario, loadBenchScenario, type Targets } from "./scenario.ts";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

export type BenchOptions = {
  /** Scenario files (bench scenario format). */
  files: string[];
  /** The quick mode: each scenario's `bench.quick` overrides, fewer repetitions. */
  quick: boolean;
  /** Repetitions per contender and scenario. @default quick ? 1 : 3 */
  repetitions?: number | undefined;
  /**
   * Repetitions of the peers (p-limit, p-queue, Bottleneck, LangChain), whose figures are the
   * context Salvo's rows are read in, not targets. @default `repetitions` when given, else 1
   */
  peerRepetitions?: number | undefined;
  /** Contenders to run, by name. @default every available one */
  contenders?: string[] | undefined;
  /** Sequential runs whose modelled time exceeds this are skipped, ms. @default quick ? 12_000 : 60_000 */
  sequentialBudgetMs?: number | undefined;
  /** A progress line. */
  onProgress?: ((line: string) => void) | undefined;
  /** Stops between runs when aborted. */
  signal?: AbortSignal | undefined;
};

/** One contender's run, as the child and the simulator saw it. */
export type RunRecord = {
  contender: string;
  repetition: number;
  /** The child's report, or why it failed. */
  report: ChildReport | ChildFailure;
  sim: {
    arrivals: number;
    completions: number;
    byStatus: Record<string, number>;
    rateLimited: number;
    queueFull: number;
    faults: number;
    maxInService: number;
    /** With `queueStats`: the most requests in the server at once after the run's first quarter. */
    steadyMaxInServer?: number | undefined;
    /** With `queueStats`: the median answered call's time in the server (arrival to end), ms. */
    serverP50Ms?: number | undefined;
  };
};

/** Medians over a contender's repetitions. */
export type ResultRow = {
  contender: string;
  description: string;
  repetitions: number;
  /** Why it was not run, when it was not. */
  skipped?: string;
  makespanMs: number;
  makespansMs: number[];
  ratioToBound: number | undefined;
  ratioToSalvo: number | undefined;
  throughputPerSecond: number;
  items: number;
  succeeded: number;
  failed: number;
  wrong: number;
  lost: number;
  duplicates: number;
  /** Items not accounted for: items - succeeded - failed - wrong (the lost ones). */
  unaccounted: number;
  /** 429 responses the simulator sent (median of runs; the most in one run). */
  http429: number;
  http429Max: number;
  /** Items that succeeded in the worst run. */
  succeededMin: number;
  /** Requests the simulator received beyond one per item (retries, as the server sees them). */
  retries: number;
  /** Salvo's own retry count from its events. */
  clientRetries: number | undefined;
  errors: Record<string, number>;
  latencyMs: { p50: number; p95: number; p99: number };
  cpuMs: number;
  peakRssMb: number;
  runRssGrowthMb: number;
  /** Medians of the simulator's queue readings, with `queueStats`. */
  steadyMaxInServer?: number | undefined;
  serverP50Ms?: number | undefined;
};

/** The best fixed limit a scenario's sweep found, and `salvo-auto` against it. */
export type SweepSummary = {
  /** Each fixed limit's median makespan (the `salvo` row stands for the scenario's concurrency). */
  values: Array<{ limit: number; makespanMs: number; makespansMs: number[] }>;
  best: { limit: number; makespanMs: number };
  auto:
    | {
        makespanMs: number;
        makespansMs: number[];
        /** auto / best fixed. */
        ratioToBest: number;
        /** auto / fixed N, for every N swept. */
        vsFixed: Record<number, number>;
      }
    | undefined;
  /** A call's unloaded latency in the server, ms (the fixed-1 run's median, else the model's). */
  unloadedMs: number;
  /** The server's slots, when it has a finite number. */
  slots: number | undefined;
};

export type ScenarioResult = {
  id: string;
  title: string;
  path: string;
  calls: number;
  stages: number[];
  concurrency: number;
  knownLimits: boolean;
  timeScale: number;
  bound: ModelBound;
  rows: ResultRow[];
  sweep: SweepSummary | undefined;
  targets: Targets;
  verdicts: Verdict[];
  runs: RunRecord[];
};

export type Verdict = { target: string; met: boolean; detail: string };

export type BenchResults = {
  date: string;
  machine: { cpu: string; cores: number; node: string; platform: string };
  mode: "quick" | "full";
  repetitions: number;
  wallMs: number;
  scenarios: ScenarioResult[];
};

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function message<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string } & Record<string, unknown>) => {
      if (m.type !== type) return;
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`the contender process exited (code ${code}) before "${type}"`));
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

/** A contender process kept up between runs (see `ChildJob.keepAlive`). */
type Session = { child: ChildProcess | undefined };

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve();
    }, 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    if (child.connected) child.disconnect();
    child.kill("SIGTERM");
  });
}

async function endSession(session: Session): Promise<void> {
  const child = session.child;
  session.child = undefined;
  if (child) await stop(child);
}

async function runOnce(
  scenario: BenchScenario,
  bound: ModelBound,
  contender: string,
  stages: number[],
  repetition: number,
  session?: Session,
): Promise<RunRecord> {
  const w = scenario.workload;
  const calls = stages.reduce((a, b) => a + b, 0);
  const sim = await startSimulator({
    ...scenario.sim,
    host: "127.0.0.1",
    port: 0,
    timelineLimit: w.queueStats ? Math.min(500_000, calls * 20) : 0,
  });
  const pool = sim.config.pools.openai;
  const known = w.knownLimits;
  const context: ChildJob["context"] = {
    baseURL: sim.baseUrl,
    concurrency: contender === "sequential" ? 1 : w.concurrency,
    timeoutMs: w.timeoutMs,
    limits: {
      requestsPerMinute: known ? pool.rpm : undefined,
      tokensPerMinute: known ? pool.tpm : undefined,
      inputTokensPerMinute: known ? pool.itpm : undefined,
      outputTokensPerMinute: known ? pool.otpm : undefined,
      burstSeconds: pool.burstSeconds,
      ratePerSecond: known ? bound.ratePerSecond : undefined,
    },
    stream: w.stream,
    autoMax: w.autoMax,
    maxAttempts: w.maxAttempts,
  } satisfies Omit<ContenderContext, "fetch" | "onRetry">;
  // A guard against a hung contender, not a target: ten times the bound, plus a minute, plus
  // 2 ms a call (a contender at 500 calls/s still finishes the 100,000-call scale run).
  const deadlineMs =
    Math.max(bound.boundMs, bound.serialMs / w.concurrency) * 10 + 60_000 + calls * 2;
  const job: ChildJob = {
    contender,
    scenarioId: scenario.id,
    baseURL: sim.baseUrl,
    stages,
    promptTokens: w.promptTokens,
    maxTokens: w.maxTokens,
    context,
    deadlineMs: contender === "sequential" ? deadlineMs + bound.serialMs * 2 : deadlineMs,
  };
  const child =
    session?.child ?? fork(CHILD, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  if (session) {
    session.child = child;
    job.keepAlive = true;
  }
  let report: ChildReport | ChildFailure;
  try {
    const ready = message(child, "ready");
    child.send({ type: "job", job });
    await ready;
    sim.reset();
    const done = message<{ report: ChildReport | ChildFailure }>(child, "report");
    child.send({ type: "go" });
    report = (await done).report;
    if (session && (!report.ok || report.timedOut)) await endSession(session);
  } catch (error) {
    report = { ok: false, error: error instanceof Error ? error.message : String(error) };
    if (session) await endSession(session);
  } finally {
    if (!session) await stop(child);
  }
  const stats = sim.stats({ timeline: w.queueStats });
  await sim.close();
  const queue = w.queueStats ? queueReadings(stats.timeline) : undefined;
  if (report.ok && report.items !== calls) throw new Error("item count mismatch");
  return {
    contender,
    repetition,
    report,
    sim: {
      arrivals: stats.arrivals,
      completions: stats.completions,
      byStatus: stats.byStatus,
      rateLimited: stats.refusals.rateLimited,
      queueFull: stats.refusals.queueFull,
      faults: Object.values(stats.byFault).reduce((a, b) => a + b, 0),
      maxInService: stats.maxInService,
      steadyMaxInServer: queue?.steadyMaxInServer,
      serverP50Ms: queue?.serverP50Ms,
    },
  };
}

type TimelineEntry = ReturnType<
  Awaited<ReturnType<typeof startSimulator>>["stats"]
>["timeline"][number];

/**
 * From the simulator's timeline: the most requests in the server at once (in service or queued,
 * refusals left out) after the first quarter of the run (the search is over by then), and the
 * median answered call's time in the server.
 */
export function queueReadings(timeline: TimelineEntry[]): {
  steadyMaxInServer: number;
  serverP50Ms: number;
} {
  const stays = timeline.filter((e) => e.startMs !== null || e.status === 499 || e.status === 0);
  const events: Array<[number, number]> = [];
  for (const e of stays) events.push([e.arrivalMs, 1], [e.endMs, -1]);
  // Ends before arrivals at the same instant: a freed place is free.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const first = events[0]?.[0] ?? 0;
  const last = events.at(-1)?.[0] ?? 0;
  const steadyFrom = first + (last - first) / 4;
  let inServer = 0;
  let steadyMax = 0;
  for (const [at, delta] of events) {
    inServer += delta;
    if (at >= steadyFrom && inServer > steadyMax) steadyMax = inServer;
  }
  const answered = timeline.filter((e) => e.status === 200).map((e) => e.endMs - e.arrivalMs);
  return { steadyMaxInServer: steadyMax, serverP50Ms: median(answered) };
}

function aggregate(contender: string, runs: RunRecord[], bound: ModelBound): ResultRow {
  const ok = runs.filter((r) => r.report.ok) as Array<RunRecord & { report: ChildReport }>;
  const m = (f: (r: RunRecord & { report: ChildReport }) => number) => median(ok.map(f));
  const first = ok[0]?.report;
  const errors: Record<string, number> = {};
  for (const r of ok)
    for (const [k, v] of Object.entries(r.report.errors)) errors[k] = (errors[k] ?? 0) + v;
  const makespanMs = m((r) => r.report.makespanMs);
  const items = first?.items ?? 0;
  const succeeded = m((r) => r.report.succeeded);
  return {
    contender,
    description: first?.description ?? (runs[0]?.report as ChildFailure | undefined)?.error ?? "",
    repetitions: ok.length,
    makespanMs,
    makespansMs: ok.map((r) => r.report.makespanMs),
    ratioToBound: bound.boundMs > 0 ? makespanMs / bound.boundMs : undefined,
    ratioToSalvo: undefined,
    throughputPerSecond: makespanMs > 0 ? (succeeded * 1000) / makespanMs : 0,
    items,
    succeeded,
    failed: m((r) => r.report.failed),
    wrong: m((r) => r.report.wrong),
    lost: m((r) => r.report.lost),
    duplicates: m((r) => r.report.duplicates),
    unaccounted: Math.max(
      ...ok.map((r) => r.report.items - r.report.succeeded - r.report.failed - r.report.wrong),
      0,
    ),
    http429: m((r) => r.sim.byStatus["429"] ?? 0),
    http429Max: Math.max(0, ...ok.map((r) => r.sim.byStatus["429"] ?? 0)),
    succeededMin: Math.min(...ok.map((r) => r.report.succeeded)),
    retries: m((r) => r.sim.arrivals - r.report.items),
    clientRetries:
      first?.clientRetries === undefined ? undefined : m((r) => r.report.clientRetries!),
    errors,
    latencyMs: {
      p50: m((r) => r.report.itemLatencyMs.p50),
      p95: m((r) => r.report.itemLatencyMs.p95),
      p99: m((r) => r.report.itemLatencyMs.p99),
    },
    cpuMs: m((r) => r.report.cpuMs),
    peakRssMb: m((r) => r.report.peakRssMb),
    runRssGrowthMb: m((r) => r.report.runRssGrowthMb),
    steadyMaxInServer:
      ok[0]?.sim.steadyMaxInServer === undefined ? undefined : m((r) => r.sim.steadyMaxInServer!),
    serverP50Ms: ok[0]?.sim.serverP50Ms === undefined ? undefined : m((r) => r.sim.serverP50Ms!),
  };
}

function skippedRow(contender: string, reason: string): ResultRow {
  return {
    contender,
    description: "",
    repetitions: 0,
    skipped: reason,
    makespanMs: Number.NaN,
    makespansMs: [],
    ratioToBound: undefined,
    ratioToSalvo: undefined,
    throughputPerSecond: Number.NaN,
    items: 0,
    succeeded: 0,
    failed: 0,
    wrong: 0,
    lost: 0,
    duplicates: 0,
    unaccounted: 0,
    http429: 0,
    http429Max: 0,
    succeededMin: 0,
    retries: 0,
    clientRetries: undefined,
    errors: {},
    latencyMs: { p50: Number.NaN, p95: Number.NaN, p99: Number.NaN },
    cpuMs: Number.NaN,
    peakRssMb: Number.NaN,
    runRssGrowthMb: Number.NaN,
  };
}

/** Checks Salvo's row of a scenario against the scenario's targets. */
export function verdicts(targets: Targets, rows: ResultRow[]): Verdict[] {
  const salvo = rows.find((r) => r.contender === "salvo" && !r.skipped);
  if (!salvo) return [];
  const out: Verdict[] = [];
  if (targets.maxRatioToBound !== undefined && salvo.ratioToBound !== undefined) {
    out.push({
      target: `within ${Math.round((targets.maxRatioToBound - 1) * 100)}% of M*`,
      met: salvo.ratioToBound <= targets.maxRatioToBound,
      detail: `${salvo.ratioToBound.toFixed(3)}x M*`,
    });
  }
  if (targets.aheadOfPeers) {
    const peers = rows.filter((r) => !r.skipped && !r.contender.startsWith("salvo"));
    const behind = peers.filter(
      (p) => p.makespanMs <= salvo.makespanMs && p.succeeded >= salvo.succeeded,
    );
    out.push({
      target: "ahead of every peer",
      met: behind.length === 0,
      detail:
        behind.length === 0
          ? `next best: ${nextBest(peers, salvo)}`
          : `not ahead of ${behind.map((p) => `${p.contender} (${(p.makespanMs / 1000).toFixed(2)} s vs ${(salvo.makespanMs / 1000).toFixed(2)} s)`).join(", ")}`,
    });
  }
  if (targets.noLoss) {
    const bad = salvo.lost + salvo.duplicates + salvo.wrong + salvo.unaccounted;
    out.push({
      target: "no item lost or unaccounted",
      met: bad === 0,
      detail: `${salvo.succeeded} ok + ${salvo.failed} failed of ${salvo.items}; lost ${salvo.lost}, wrong ${salvo.wrong}, duplicated ${salvo.duplicates}`,
    });
  }
  if (targets.minThroughput !== undefined) {
    out.push({
      target: `over ${targets.minThroughput} requests/s`,
      met: salvo.throughputPerSecond >= targets.minThroughput,
      detail: `${Math.round(salvo.throughputPerSecond)} requests/s`,
    });
  }
  return out;
}

function nextBest(peers: ResultRow[], salvo: ResultRow): string {
  const complete = peers.filter((p) => p.succeeded >= salvo.succeeded);
  if (complete.length === 0) return "no peer finished every item";
  const best = complete.reduce((a, b) => (b.makespanMs < a.makespanMs ? b : a));
  return `${best.contender} at ${(best.makespanMs / salvo.makespanMs).toFixed(2)}x Salvo's makespan`;
}

/**
 * The contenders to run by default: every peer, Salvo at the scenario's concurrency, and
 * `salvo-auto` (Salvo's default, adaptive concurrency: what every user gets). Quick mode keeps
 * Salvo's rows and the naive baseline (p-limit around the SDK), to stay within a few minutes.
 * Scenarios with a `sweep` also run Salvo at each of its fixed limits (`salvo-fixed-N`).
 */
export function defaultContenders(quick = false): string[] {
  const auto = salvoAutoAvailable();
  return CONTENDERS.map((c) => c.name).filter(
    (n) =>
      (n !== "salvo-auto" || auto) &&
      n !== "salvo-no-headers" &&
      (!quick || n === "salvo" || n === "salvo-auto" || n === "p-limit"),
  );
}

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const started = performance.now();
  const progress = options.onProgress ?? (() => {});
  const reps = options.repetitions ?? (options.quick ? 1 : 3);
  const budget = options.sequentialBudgetMs ?? (options.quick ? 12_000 : 60_000);
  const names = options.contenders ?? defaultContenders(options.quick);
  for (const name of names) {
    if (!CONTENDERS.some((c) => c.name === name) && !isSweepContender(name)) {
      throw new ConfigError({
        field: "contenders",
        expected: `one of ${CONTENDERS.map((c) => c.name).join(", ")}, or salvo-fixed-N`,
        got: name,
      });
    }
  }
  const scenarios: BenchScenario[] = [];
  for (const file of options.files) scenarios.push(await loadBenchScenario(file, options.quick));
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const w = scenario.workload;
    const bound = modelBound(scenario);
    const calls = w.stages.reduce((a, b) => a + b, 0);
    progress(
      `\n${scenario.id}: ${w.title} — ${calls} calls${w.stages.length > 1 ? ` in stages ${w.stages.join(" + ")}` : ""}, concurrency ${w.concurrency}; M* ${(bound.boundMs / 1000).toFixed(2)} s (${bound.binding})`,
    );
    const skipped = new Map<string, string>();
    for (const name of names) {
      if (w.skip.includes(name)) skipped.set(name, "skipped by the scenario");
      else if (name === "sequential" && bound.serialMs > budget)
        skipped.set(
          name,
          `skipped: one at a time would take about ${(bound.serialMs / 1000).toFixed(0)} s`,
        );
    }
    const active = names.filter((n) => !skipped.has(n));
    // The sweep: Salvo at each fixed limit, but the scenario's own concurrency, which the `salvo`
    // row measures already (when it runs). Only when Salvo is among the contenders asked for.
    const salvoRuns = active.includes("salvo");
    const sweepNames = (active.includes("salvo-auto") || salvoRuns ? w.sweep : [])
      .filter((limit) => !(salvoRuns && limit === w.concurrency))
      .map((limit) => `salvo-fixed-${limit}`)
      .filter((n) => !w.skip.includes(n) && !names.includes(n));
    const runs: RunRecord[] = [];
    // Salvo's runs share one process per scenario (its CPU and memory are reported per run; its
    // peak RSS is the process's): only the scale scenario, which reports memory, forks each.
    const session: Session = { child: undefined };
    const shared = (name: string) =>
      !w.memoryCheck && (name === "salvo" || name === "salvo-auto" || isSweepContender(name));
    const scenarioReps = options.repetitions ?? w.reps ?? reps;
    const sweepReps = options.repetitions ?? w.sweepReps ?? scenarioReps;
    const peerReps = Math.min(scenarioReps, options.peerRepetitions ?? options.repetitions ?? 1);
    const repsOf = (name: string) =>
      isSweepContender(name) ? sweepReps : name.startsWith("salvo") ? scenarioReps : peerReps;
    for (let rep = 1; rep <= Math.max(scenarioReps, sweepReps); rep++) {
      const order = [...active, ...sweepNames].filter((name) => rep <= repsOf(name));
      for (const name of order) {
        if (options.signal?.aborted) throw options.signal.reason;
        // One call at a time, the makespan is the sum of the latencies: repeating it measures
        // the simulator's seed again, and costs the most time of any contender.
        if (name === "sequential" && rep > 1) continue;
        const record = await runOnce(
          scenario,
          bound,
          name,
          w.stages,
          rep,
          shared(name) ? session : undefined,
        );
        runs.push(record);
        const of = name === "sequential" ? 1 : repsOf(name);
        progress(`  ${line(name, rep, of, record, bound)}`);
      }
    }
    await endSession(session);
    if (w.memoryCheck && active.includes("salvo")) {
      const small = w.stages.map((s) => Math.max(1, Math.round(s / 5)));
      const record = await runOnce(scenario, bound, "salvo", small, 1);
      const label = `salvo (N/5)`;
      runs.push({ ...record, contender: label });
      progress(`  ${line(label, 1, 1, record, undefined)}`);
    }
    const rows: ResultRow[] = [];
    for (const name of [...names, ...sweepNames, "salvo (N/5)"]) {
      const own = runs.filter((r) => r.contender === name);
      if (skipped.has(name)) rows.push(skippedRow(name, skipped.get(name)!));
      else if (own.length > 0) rows.push(aggregate(name, own, bound));
    }
    const salvo = rows.find((r) => r.contender === "salvo" && !r.skipped);
    for (const row of rows) {
      if (salvo && !row.skipped && row.contender !== "salvo (N/5)")
        row.ratioToSalvo = row.makespanMs / salvo.makespanMs;
    }
    const sweep = w.sweep.length > 0 ? sweepSummary(scenario, bound, rows, runs) : undefined;
    results.push({
      id: scenario.id,
      title: w.title,
      path: scenario.path,
      calls,
      stages: w.stages,
      concurrency: w.concurrency,
      knownLimits: w.knownLimits,
      timeScale: w.timeScale,
      bound,
      rows,
      sweep,
      targets: w.targets,
      verdicts: [...verdicts(w.targets, rows), ...autoVerdicts(w.targets, rows, sweep, bound)],
      runs,
    });
    if (sweep?.auto) {
      progress(
        `  best fixed limit ${sweep.best.limit} (${(sweep.best.makespanMs / 1000).toFixed(2)} s); auto ${(sweep.auto.makespanMs / 1000).toFixed(2)} s = ${sweep.auto.ratioToBest.toFixed(3)}x the best, ${(sweep.auto.vsFixed[5] ?? Number.NaN).toFixed(3)}x fixed 5`,
      );
    }
  }
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    machine: {
      cpu: cpu[0]?.model.trim() ?? "unknown",
      cores: cpu.length,
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
    },
    mode: options.quick ? "quick" : "full",
    repetitions: reps,
    wallMs: performance.now() - started,
    scenarios: results,
  };
}

/** The sweep's fixed limits (the `salvo` row for the scenario's concurrency), the best, auto. */
function sweepSummary(
  scenario: BenchScenario,
  bound: ModelBound,
  rows: ResultRow[],
  runs: RunRecord[],
): SweepSummary {
  const w = scenario.workload;
  const values: SweepSummary["values"] = [];
  for (const row of rows) {
    if (row.skipped || row.repetitions === 0) continue;
    const fixed = /^salvo-fixed-(\d+)$/.exec(row.contender)?.[1];
    const limit =
      fixed !== undefined ? Number(fixed) : row.contender === "salvo" ? w.concurrency : undefined;
    if (limit === undefined || row.succeeded < row.items) continue;
    values.push({ limit, makespanMs: row.makespanMs, makespansMs: row.makespansMs });
  }
  values.sort((a, b) => a.limit - b.limit);
  const top = values.reduce(
    (a, v) => (v.makespanMs < a.makespanMs ? v : a),
    values[0] ?? { limit: 0, makespanMs: Number.NaN, makespansMs: [] },
  );
  const autoRow = rows.find((r) => r.contender === "salvo-auto" && !r.skipped && r.repetitions > 0);
  const vsFixed: Record<number, number> = {};
  if (autoRow) for (const v of values) vsFixed[v.limit] = autoRow.makespanMs / v.makespanMs;
  const config = resolveSimConfig(scenario.sim);
  const one = runs.filter(
    (r) =>
      (r.contender === "salvo-fixed-1" || (r.contender === "salvo" && w.concurrency === 1)) &&
      r.sim.serverP50Ms !== undefined,
  );
  const { ttftMs, msPerToken } = config.latency;
  const modelled = ttftMs + Math.max(0, bound.meanOutputTokens - 1) * msPerToken;
  return {
    values,
    best: { limit: top.limit, makespanMs: top.makespanMs },
    auto: autoRow
      ? {
          makespanMs: autoRow.makespanMs,
          makespansMs: autoRow.makespansMs,
          ratioToBest: autoRow.makespanMs / top.makespanMs,
          vsFixed,
        }
      : undefined,
    unloadedMs: one.length > 0 ? median(one.map((r) => r.sim.serverP50Ms!)) : modelled,
    slots: Number.isFinite(config.pools.openai.slots) ? config.pools.openai.slots : undefined,
  };
}

/** `salvo-auto`'s targets, and the ones every Salvo row must meet (success rate, no 429). */
export function autoVerdicts(
  targets: Targets,
  rows: ResultRow[],
  sweep: SweepSummary | undefined,
  bound: ModelBound,
): Verdict[] {
  const out: Verdict[] = [];
  const auto = rows.find((r) => r.contender === "salvo-auto" && !r.skipped && r.repetitions > 0);
  const range = (ms: number[]) =>
    ms.length > 1
      ? ` (runs ${(Math.min(...ms) / 1000).toFixed(2)}-${(Math.max(...ms) / 1000).toFixed(2)} s)`
      : "";
  if (auto && sweep?.auto && targets.autoWithinBest !== undefined) {
    out.push({
      target: `auto within ${Math.round((targets.autoWithinBest - 1) * 100)}% of the best fixed limit`,
      met: sweep.auto.ratioToBest <= targets.autoWithinBest,
      detail: `${sweep.auto.ratioToBest.toFixed(3)}x fixed ${sweep.best.limit}: ${(auto.makespanMs / 1000).toFixed(2)} s vs ${(sweep.best.makespanMs / 1000).toFixed(2)} s${range(auto.makespansMs)}`,
    });
  }
  if (auto && sweep?.auto) {
    for (const { limit, ratio } of targets.autoVsFixed ?? []) {
      const r = sweep.auto.vsFixed[limit];
      out.push({
        target:
          ratio === 1
            ? `auto no slower than fixed ${limit}`
            : `auto within ${Math.round((ratio - 1) * 100)}% of fixed ${limit}`,
        met: r !== undefined && r <= ratio,
        detail: r === undefined ? `fixed ${limit} did not run` : `${r.toFixed(3)}x fixed ${limit}`,
      });
    }
  }
  if (auto && targets.autoRatioToBound !== undefined && auto.ratioToBound !== undefined) {
    out.push({
      target: `auto within ${Math.round((targets.autoRatioToBound - 1) * 100)}% of M*`,
      met: auto.ratioToBound <= targets.autoRatioToBound,
      detail: `${auto.ratioToBound.toFixed(3)}x M* (${(bound.boundMs / 1000).toFixed(2)} s)`,
    });
  }
  if (auto && sweep?.slots !== undefined && targets.maxInServerOverSlots !== undefined) {
    const most = Math.floor(sweep.slots * targets.maxInServerOverSlots);
    out.push({
      target: `auto keeps at most ${most} requests in the server (${sweep.slots} slots + ${Math.round((targets.maxInServerOverSlots - 1) * 100)}%) in steady state`,
      met: auto.steadyMaxInServer !== undefined && auto.steadyMaxInServer <= most,
      detail: `at most ${auto.steadyMaxInServer ?? "?"} after the run's first quarter`,
    });
  }
  if (auto && sweep && targets.maxLatencyOverUnloaded !== undefined) {
    const ratio = (auto.serverP50Ms ?? Number.NaN) / sweep.unloadedMs;
    out.push({
      target: `auto's median call within ${targets.maxLatencyOverUnloaded}x the unloaded latency`,
      met: ratio <= targets.maxLatencyOverUnloaded,
      detail: `p50 ${Math.round(auto.serverP50Ms ?? Number.NaN)} ms in the server vs ${Math.round(sweep.unloadedMs)} ms unloaded: ${ratio.toFixed(2)}x`,
    });
  }
  for (const row of rows) {
    if (row.skipped || row.repetitions === 0) continue;
    if (row.contender !== "salvo" && row.contender !== "salvo-auto") continue;
    if (targets.minSuccessRate !== undefined) {
      const rate = row.succeededMin / row.items;
      out.push({
        target: `${row.contender}: at least ${(targets.minSuccessRate * 100).toFixed(1)}% of items succeed in every run`,
        met: rate >= targets.minSuccessRate,
        detail: `${row.succeededMin} of ${row.items} in the worst of ${row.repetitions} runs`,
      });
    }
    if (targets.zero429) {
      out.push({
        target: `${row.contender}: no 429 over the whole run`,
        met: row.http429Max === 0,
        detail: `${row.http429Max} 429s in the worst of ${row.repetitions} runs`,
      });
    }
  }
  return out;
}

function line(
  name: string,
  rep: number,
  reps: number,
  record: RunRecord,
  bound: ModelBound | undefined,
): string {
  const r = record.report;
  const head = `${name.padEnd(12)} ${reps > 1 ? `rep ${rep}/${reps} ` : ""}`;
  if (!r.ok) return `${head}FAILED: ${r.error.split("\n")[0]}`;
  const ratio =
    bound && bound.boundMs > 0 ? ` (${(r.makespanMs / bound.boundMs).toFixed(2)}x M*)` : "";
  const bad = r.lost + r.wrong + r.duplicates;
  return (
    `${head}${(r.makespanMs / 1000).toFixed(2)} s${ratio}, ${Math.round((r.succeeded * 1000) / r.makespanMs)}/s; ` +
    `ok ${r.succeeded}/${r.items}, failed ${r.failed}${bad ? `, LOST/WRONG ${bad}` : ""}; ` +
    `429s ${record.sim.byStatus["429"] ?? 0}, server arrivals ${record.sim.arrivals}; ` +
    `CPU ${(r.cpuMs / 1000).toFixed(2)} s, peak RSS ${Math.round(r.peakRssMb)} MB` +
    (r.timedOut ? " (gave up at the deadline)" : "")
  );
}

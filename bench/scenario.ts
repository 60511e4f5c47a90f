// Benchmark scenarios: a simulator scenario (the format of `salvo sim --scenario`) plus an optional
// top-level `bench:` section that describes the work (how many calls, prompt and answer sizes,
// stages, the concurrency every contender gets). The `bench:` section is cut out before the rest
// is validated as a simulator config, with its lines blanked so errors keep their line numbers.

import { basename } from "node:path";
import { z } from "zod";
import { ConfigError } from "../src/errors.ts";
import { parseScenario, readScenarioFile, type SimConfigInput } from "../src/sim/index.ts";

/** The work a scenario runs, as written in its `bench:` section (every field optional). */
export type WorkloadInput = {
  /** A one-line title for tables. @default the file name */
  title?: string;
  /** Calls in one flat map. Ignored when `stages` is set. @default 200 */
  calls?: number;
  /** Sizes of stages run one after another (stage s+1 starts when all of stage s ended). */
  stages?: number[];
  /** The concurrency every contender gets (sequential: 1). @default 16 */
  concurrency?: number;
  /** `max_tokens` of every request; OpenAI-style TPM reserves it up front. @default 64 */
  maxTokens?: number;
  /** Approximate prompt length, tokens. @default 40 */
  promptTokens?: number;
  /** Per-attempt timeout given to every contender, ms. @default 60_000 */
  timeoutMs?: number;
  /**
   * Whether the contenders are told the server's rate limits (Salvo's limits, p-queue's
   * intervalCap, Bottleneck's reservoir). `false` models a limit nobody documented. @default true
   */
  knownLimits?: boolean;
  /** Contenders not run on this scenario (e.g. `sequential` at 100,000 calls). @default [] */
  skip?: string[];
  /** Salvo reads the results as a stream (bounded memory) instead of one `map`. @default false */
  stream?: boolean;
  /** Also run Salvo at 1/5 of the calls, to show memory does not grow with N. @default false */
  memoryCheck?: boolean;
  /**
   * Repetitions in a full run, where one scenario's size makes 3 too long (scale). An explicit
   * `--reps` wins. @default the run's (3 full, 1 quick)
   */
  reps?: number;
  /** Multiplies every time of the scenario (latencies, timeouts) and divides every rate. @default 1 */
  timeScale?: number;
  /**
   * Fixed limits Salvo also runs at (contenders `salvo-fixed-N`), to find the best fixed limit
   * `auto` is measured against. 5, the seeds' choice, is always among them when any are given.
   * @default none
   */
  sweep?: number[];
  /** Repetitions of each sweep value in a full run. @default the run's */
  sweepReps?: number;
  /** `salvo-auto`'s highest limit (a user's --max-concurrency). @default 256 (Salvo's default) */
  autoMax?: number;
  /** Attempts per item for Salvo's contenders (--max-attempts). @default 5 */
  maxAttempts?: number;
  /**
   * Read the simulator's timeline: each call's latency in the server and the most requests in
   * it at once in steady state (after the first quarter of the run). @default false
   */
  queueStats?: boolean;
  /** What Salvo is expected to achieve here; checked and reported after the run. @default none */
  targets?: Targets;
  /** Overrides for `--quick` mode. */
  quick?: {
    calls?: number;
    stages?: number[];
    concurrency?: number;
    timeScale?: number;
    /** Contenders not run in quick mode (added to `skip`). */
    skip?: string[];
  };
};

/** Salvo's targets on a scenario. */
export type Targets = {
  /** Salvo's median makespan at most this multiple of M*, e.g. 1.1. */
  maxRatioToBound?: number;
  /** Salvo faster than every peer that finished all items (a peer with failures is behind). */
  aheadOfPeers?: boolean;
  /** No item lost, duplicated or answered with another item's answer. */
  noLoss?: boolean;
  /** Salvo's end-to-end throughput at least this many requests per second. */
  minThroughput?: number;
  /** `salvo-auto`'s median makespan at most this multiple of the best fixed limit's (the sweep). */
  autoWithinBest?: number;
  /** `salvo-auto`'s median makespan at most ratio x fixed `limit`'s (e.g. 1 x fixed 5). */
  autoVsFixed?: Array<{ limit: number; ratio: number }>;
  /** `salvo-auto`'s median makespan at most this multiple of M*. */
  autoRatioToBound?: number;
  /** `salvo-auto`: at most this multiple of the server's slots in it at once, in steady state. */
  maxInServerOverSlots?: number;
  /** `salvo-auto`: the median call's latency in the server at most this multiple of unloaded. */
  maxLatencyOverUnloaded?: number;
  /** Salvo's rows (fixed and auto): at least this share of items succeed. */
  minSuccessRate?: number;
  /** Salvo's rows (fixed and auto): no 429 from the simulator over the whole run. */
  zero429?: boolean;
};

/** A workload with every default applied and the mode (quick or full) resolved. */
export type Workload = {
  title: string;
  sweep: number[];
  sweepReps: number | undefined;
  autoMax: number | undefined;
  maxAttempts: number | undefined;
  queueStats: boolean;
  stages: number[];
  concurrency: number;
  maxTokens: number;
  promptTokens: number;
  timeoutMs: number;
  knownLimits: boolean;
  skip: string[];
  stream: boolean;
  memoryCheck: boolean;
  reps: number | undefined;
  timeScale: number;
  targets: Targets;
};

export type BenchScenario = {
  /** The file name without extension, e.g. `b-rpm-bound`. */
  id: string;
  path: string;
  /** The simulator config, time-scaled. */
  sim: SimConfigInput;
  workload: Workload;
};

const count = z.number().int().min(1);
const workloadSchema = z.strictObject({
  title: z.string().min(1).optional(),
  sweep: z.array(count).optional(),
  sweepReps: count.optional(),
  autoMax: count.optional(),
  maxAttempts: count.optional(),
  queueStats: z.boolean().optional(),
  calls: count.optional(),
  stages: z.array(count).min(1).optional(),
  concurrency: count.optional(),
  maxTokens: count.optional(),
  promptTokens: count.optional(),
  timeoutMs: z.number().positive().optional(),
  knownLimits: z.boolean().optional(),
  skip: z.array(z.string()).optional(),
  stream: z.boolean().optional(),
  memoryCheck: z.boolean().optional(),
  reps: z.number().int().min(1).optional(),
  timeScale: z.number().positive().optional(),
  targets: z
    .strictObject({
      maxRatioToBound: z.number().positive().optional(),
      aheadOfPeers: z.boolean().optional(),
      noLoss: z.boolean().optional(),
      minThroughput: z.number().positive().optional(),
      autoWithinBest: z.number().positive().optional(),
      autoVsFixed: z
        .array(z.strictObject({ limit: count, ratio: z.number().positive() }))
        .optional(),
      autoRatioToBound: z.number().positive().optional(),
      maxInServerOverSlots: z.number().positive().optional(),
      maxLatencyOverUnloaded: z.number().positive().optional(),
      minSuccessRate: z.number().min(0).max(1).optional(),
      zero429: z.boolean().optional(),
    })
    .optional(),
  quick: z
    .strictObject({
      calls: count.optional(),
      stages: z.array(count).min(1).optional(),
      concurrency: count.optional(),
      timeScale: z.number().positive().optional(),
      skip: z.array(z.string()).optional(),
    })
    .optional(),
}) satisfies z.ZodType<WorkloadInput>;

/** Reads a bench scenario file; `quick` picks the `bench.quick` overrides. */
export async function loadBenchScenario(path: string, quick: boolean): Promise<BenchScenario> {
  return parseBenchScenario(await readScenarioFile(path), path, quick);
}

/**
 * Parses bench scenario text; `where` names it in errors. The file is a simulator scenario (the
 * simulator validates it and ignores its `bench` section), and `bench` describes the work.
 */
export function parseBenchScenario(text: string, where: string, quick: boolean): BenchScenario {
  const { bench, ...sim } = parseScenario(text, where);
  const parsed = workloadSchema.safeParse(bench ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const benchLine = text.split("\n").findIndex((line) => /^bench\s*:/.test(line)) + 1;
    throw new ConfigError({
      field: ["bench", ...issue.path.map(String)].join("."),
      expected: issue.message,
      got: issue.path.reduce<unknown>(
        (v, k) => (v as Record<PropertyKey, unknown> | undefined)?.[k],
        bench,
      ),
      where: benchLine > 0 ? `${where}:${benchLine}` : where,
    });
  }
  const id = basename(where).replace(/\.(ya?ml|json)$/i, "");
  const workload = resolveWorkload(parsed.data, id, quick);
  return { id, path: where, sim: scaleSim(sim, workload.timeScale), workload };
}

function resolveWorkload(input: WorkloadInput, id: string, quick: boolean): Workload {
  const q = quick ? (input.quick ?? {}) : {};
  const stages = q.stages ??
    (q.calls !== undefined ? [q.calls] : undefined) ??
    input.stages ?? [input.calls ?? 200];
  const timeScale = q.timeScale ?? input.timeScale ?? 1;
  const sweep =
    input.sweep === undefined ? [] : [...new Set([...input.sweep, 5])].sort((a, b) => a - b);
  return {
    title: input.title ?? id,
    sweep,
    sweepReps: quick ? undefined : input.sweepReps,
    autoMax: input.autoMax,
    maxAttempts: input.maxAttempts,
    queueStats: input.queueStats ?? false,
    stages,
    concurrency: q.concurrency ?? input.concurrency ?? 16,
    maxTokens: input.maxTokens ?? 64,
    promptTokens: input.promptTokens ?? 40,
    timeoutMs: (input.timeoutMs ?? 60_000) * timeScale,
    knownLimits: input.knownLimits ?? true,
    skip: [...(input.skip ?? []), ...(q.skip ?? [])],
    stream: input.stream ?? false,
    memoryCheck: input.memoryCheck ?? false,
    reps: quick ? undefined : input.reps,
    timeScale,
    targets: input.targets ?? {},
  };
}

/**
 * The same scenario played `scale` times slower (scale < 1: faster): times x scale, rates / scale,
 * burst windows x scale (so a bucket holds the same number of requests and tokens).
 */
export function scaleSim(sim: SimConfigInput, scale: number): SimConfigInput {
  if (scale === 1) return sim;
  const out: SimConfigInput = structuredClone(sim);
  if (out.latency) {
    if (out.latency.ttftMs !== undefined) out.latency.ttftMs *= scale;
    if (out.latency.msPerToken !== undefined) out.latency.msPerToken *= scale;
  }
  if (out.faults?.slowMs !== undefined) out.faults.slowMs *= scale;
  for (const capacity of [
    out.capacity,
    out.paths?.openai?.capacity,
    out.paths?.anthropic?.capacity,
  ])
    if (capacity?.retryAfterMs !== undefined) capacity.retryAfterMs *= scale;
  const limits = [out.limits, out.paths?.openai?.limits, out.paths?.anthropic?.limits];
  for (const l of limits) {
    if (!l) continue;
    for (const key of ["rpm", "tpm", "itpm", "otpm"] as const) {
      const v = l[key];
      if (v !== undefined) l[key] = v / scale;
    }
    // The same burst in requests and tokens: a faster rate fills the bucket in less time.
    l.burstSeconds = (l.burstSeconds ?? 1) * scale;
  }
  return out;
}

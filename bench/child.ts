// One contender on one scenario, in its own process so its CPU time and memory are its own (the
// simulator runs in the parent). Protocol over the IPC channel: the parent sends a `ChildJob`;
// the child builds its client and answers `ready`; the parent resets the simulator and answers
// `go`; the child runs every stage and answers with a `ChildReport`, then exits.

import { performance } from "node:perf_hooks";
import {
  type LatencySummary,
  latencyHistogram,
  summariseLatency,
} from "../src/metrics/latency-histogram.ts";
import { type ContenderContext, contenderByName } from "./contenders.ts";
import { type BenchItem, itemIndexOf, stageContext, stageItems } from "./workload.ts";

export type ChildJob = {
  contender: string;
  scenarioId: string;
  baseURL: string;
  stages: number[];
  promptTokens: number;
  maxTokens: number;
  context: Omit<ContenderContext, "fetch" | "onRetry">;
  /** Give up after this long and report unsettled items as lost, ms. */
  deadlineMs: number;
  /** Stay up after the report, for the next job. @default false */
  keepAlive?: boolean;
};

export type LatencyStats = LatencySummary;

export type ChildReport = {
  ok: true;
  description: string;
  makespanMs: number;
  items: number;
  succeeded: number;
  /** Settled with an error. */
  failed: number;
  /** Settled "successfully" with an answer that is not this item's (wrong marker) or empty. */
  wrong: number;
  /** Never settled before the deadline. */
  lost: number;
  /** Settled more than once. */
  duplicates: number;
  /** Failed items by error name/code. */
  errors: Record<string, number>;
  /** HTTP attempts the client made, and how many ended without a response. */
  attempts: number;
  networkErrors: number;
  /** Client-side retries Salvo reported (events); undefined for peers. */
  clientRetries: number | undefined;
  /** Per item: first attempt's start to last attempt's end, ms. */
  itemLatencyMs: LatencyStats;
  /** Per HTTP attempt, ms. */
  attemptLatencyMs: LatencyStats;
  /** User + system CPU of the run (startup excluded), ms. */
  cpuMs: number;
  /** Peak resident set size of the process (startup included), MB. */
  peakRssMb: number;
  /** Peak RSS sampled during the run minus the RSS just before it, MB. */
  runRssGrowthMb: number;
  timedOut: boolean;
};

export type ChildFailure = { ok: false; error: string };

function errorName(error: unknown): string {
  const e = error as { code?: unknown; status?: unknown; name?: unknown } | undefined;
  if (typeof e?.code === "string") return e.code;
  if (typeof e?.status === "number") return `HTTP ${e.status}`;
  if (typeof e?.name === "string") return e.name;
  return "unknown";
}

/**
 * Warms the process (JIT, the SDK, keep-alive connections) with a few calls the parent's reset
 * then forgets, so no contender pays a cold start inside its makespan.
 */
async function warmUp(baseURL: string): Promise<void> {
  const { default: OpenAI } = await import("openai");
  const client = new OpenAI({ baseURL, apiKey: "sk-bench-warm-up", maxRetries: 1, timeout: 5_000 });
  const calls = Array.from({ length: 16 }, (_, i) =>
    client.chat.completions
      .create({
        model: "sim-gpt",
        messages: [{ role: "user", content: `warm-up ${i}` }],
        max_tokens: 4,
      })
      .catch(() => undefined),
  );
  await Promise.all(calls);
}

async function run(job: ChildJob, waitForGo: () => Promise<void>): Promise<ChildReport> {
  const contender = contenderByName(job.contender);
  if (!contender) throw new Error(`unknown contender ${job.contender}`);
  const total = job.stages.reduce((a, b) => a + b, 0);
  const firstStart = new Float64Array(total).fill(-1);
  const lastEnd = new Float64Array(total);
  const attemptLatency = latencyHistogram();
  let attempts = 0;
  let networkErrors = 0;
  let clientRetries = 0;
  const baseFetch = globalThis.fetch;
  const instrumented: typeof fetch = async (input, init) => {
    const body = typeof init?.body === "string" ? init.body : "";
    const index = itemIndexOf(body);
    const start = performance.now();
    attempts++;
    if (index >= 0 && index < total && firstStart[index]! < 0) firstStart[index] = start;
    const done = () => {
      const end = performance.now();
      attemptLatency.record(Math.max(1, Math.round((end - start) * 1000)));
      if (index >= 0 && index < total) lastEnd[index] = end;
    };
    try {
      const response = await baseFetch(input, init);
      done();
      return response;
    } catch (error) {
      networkErrors++;
      done();
      throw error;
    }
  };
  const context: ContenderContext = {
    ...job.context,
    fetch: instrumented,
    onRetry: () => {
      clientRetries++;
    },
  };
  const description = contender.describe(context);
  const runner = await contender.create(context);

  const settledCount = new Uint8Array(total);
  const answers: Array<string | undefined> = [];
  const markers: string[] = new Array(total);
  const errors: Record<string, number> = {};
  let succeeded = 0;
  let failed = 0;
  let wrong = 0;
  let duplicates = 0;
  const settle = (index: number, content: string | undefined, error?: unknown) => {
    if (settledCount[index]! > 0) {
      duplicates++;
      return;
    }
    settledCount[index] = 1;
    if (error !== undefined) {
      failed++;
      const name = errorName(error);
      errors[name] = (errors[name] ?? 0) + 1;
      return;
    }
    if (content === undefined || !content.startsWith(markers[index]!)) {
      wrong++;
      return;
    }
    succeeded++;
    if (job.stages.length > 1) answers[index] = content;
  };

  await warmUp(job.baseURL);
  await waitForGo();
  const rss0 = process.memoryUsage.rss();
  let rssPeak = rss0;
  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > rssPeak) rssPeak = rss;
  }, 20);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let timedOut = false;
  const work = (async () => {
    let offset = 0;
    let context: string | undefined;
    for (const size of job.stages) {
      const begin = offset;
      const items = (function* (): Generator<BenchItem> {
        for (const item of stageItems(
          job.scenarioId,
          size,
          begin,
          job.promptTokens,
          job.maxTokens,
          context,
        )) {
          markers[item.index] = item.marker;
          yield item;
        }
      })();
      await runner.runStage(items, settle);
      context = stageContext(answers.slice(begin, begin + size));
      offset += size;
    }
  })();
  let deadline: NodeJS.Timeout | undefined;
  await Promise.race([
    work,
    new Promise<void>((resolve) => {
      deadline = setTimeout(() => {
        timedOut = true;
        resolve();
      }, job.deadlineMs);
    }),
  ]);
  clearTimeout(deadline);
  const makespanMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  const rssEnd = process.memoryUsage.rss();
  if (rssEnd > rssPeak) rssPeak = rssEnd;
  if (!timedOut) await runner.close?.();

  const itemLatency = latencyHistogram();
  let lost = 0;
  for (let i = 0; i < total; i++) {
    if (settledCount[i] === 0) lost++;
    if (firstStart[i]! >= 0) {
      itemLatency.record(Math.max(1, Math.round((lastEnd[i]! - firstStart[i]!) * 1000)));
    }
  }
  return {
    ok: true,
    description,
    makespanMs,
    items: total,
    succeeded,
    failed,
    wrong,
    lost,
    duplicates,
    errors,
    attempts,
    networkErrors,
    clientRetries: job.contender.startsWith("salvo") ? clientRetries : undefined,
    itemLatencyMs: summariseLatency(itemLatency),
    attemptLatencyMs: summariseLatency(attemptLatency),
    cpuMs: (cpu.user + cpu.system) / 1000,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    runRssGrowthMb: (rssPeak - rss0) / (1024 * 1024),
    timedOut,
  };
}

if (process.send) {
  const send = (message: unknown) =>
    new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));
  // One job at a time. A job with `keepAlive` leaves the process up for the next one (the bench
  // reuses it for Salvo's fixed limits and auto, whose CPU and memory it does not report): a Node
  // process with the SDK and Salvo loaded takes seconds to start on a busy machine.
  let go: (() => void) | undefined;
  process.on("message", (message: { type: string; job?: ChildJob }) => {
    if (message.type === "go") go?.();
    if (message.type === "job" && message.job) {
      const job = message.job;
      const goPromise = new Promise<void>((resolve) => {
        go = resolve;
      });
      const done = job.keepAlive ? () => {} : () => process.exit(0);
      run(job, async () => {
        await send({ type: "ready" });
        await goPromise;
      }).then(
        async (report) => {
          await send({ type: "report", report });
          done();
        },
        async (error: unknown) => {
          const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
          const failure: ChildFailure = { ok: false, error: text };
          await send({ type: "report", report: failure });
          done();
        },
      );
    }
  });
}

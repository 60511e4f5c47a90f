// `salvo run input.jsonl -o out.jsonl --redis URL --workers N` as a library call: the coordinator
// of a batch spread over worker processes, on this machine (N of them) and on others (`salvo
// worker --redis URL`). The workers share one BullMQ queue of the batch's lines and one admission
// (shared-admission.ts): together they hold the upstream's limits. The coordinator reads the
// input, resumes, writes the output once, in input order, one line per input line (the same batch
// driver as `salvo run`: run-batch.ts, its journal, lock and ordered writer), and reports progress
// and a summary over every worker (event-relay.ts).
//
// Nothing is lost and no answer is paid for twice: a worker journals a line's answer in Redis
// before it acknowledges the job; a worker killed mid-call has its job given to another once its
// lock expires (only the calls in flight in it are paid again); the coordinator journals each
// answer in its own file journal as it collects it, so a coordinator killed and run again resumes
// from its output, then its journal, then the answers waiting in Redis, and calls only the rest.
import { writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { checkBatchPaths, checkFreshTargets } from "../batch/preflight.ts";
import { type BatchSummary, runBatch } from "../batch/run-batch.ts";
import type {
  BatchFileEvent,
  BatchFileResult,
  RunBatchFileOptions,
} from "../batch/run-batch-file.ts";
import { batchFileShape, batchRunKey } from "../batch/run-batch-file.ts";
import { summaryText } from "../batch/summary-text.ts";
import { type Clock, realClock } from "../core/clock.ts";
import { formatUsd } from "../cost/pricing.ts";
import { ConfigError } from "../errors.ts";
import { writeHtmlReport } from "../metrics/report-html.ts";
import { RunMetrics } from "../metrics/run-metrics.ts";
import { RunTimeline } from "../metrics/run-timeline.ts";
import { formatDuration } from "../progress/format.ts";
import { baseUrlFor, type ProviderName } from "../providers/provider-from-env.ts";
import { BatchDispatcher } from "./batch-dispatcher.ts";
import {
  BATCH_REGISTRY,
  type BatchSettings,
  batchIdOf,
  batchKeys,
  type LineJob,
  QUEUE_PREFIX,
} from "./batch-keys.ts";
import { RelayedEvents } from "./event-relay.ts";
import { LocalWorkers } from "./local-workers.ts";
import { RedisConnection, redactRedisUrl } from "./redis-connection.ts";

/**
 * A distributed run's options: what it shares with `runBatchFile` (the grace period, the report,
 * progress, signal, events, environment and reorder window) means the same here; the workers'
 * environment is `env`.
 */
export type DistributedBatchOptions = Pick<
  RunBatchFileOptions,
  "graceMs" | "report" | "progress" | "signal" | "onEvent" | "env" | "window"
> & {
  /** The input JSONL file (OpenAI Batch, cookbook bodies, or Anthropic batch lines). */
  input: string;
  /** The output JSONL file, written by this coordinator only; its journal is `<output>.journal`. */
  output: string;
  /** The Redis URL the workers share (`redis://host:6379`). */
  redis: string;
  /** Worker processes to start on this machine; 0 leaves the lines to `salvo worker`s elsewhere. @default 1 */
  workers?: number | undefined;
  /** The API the lines are for; refused if it disagrees with their shape. @default their shape */
  providerName?: ProviderName | undefined;
  /** The model for lines that name none. @default none */
  model?: string | undefined;
  /** The API base URL the workers call. @default their OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the provider's */
  baseUrl?: string | undefined;
  /** The variable holding the API key in each worker's environment. @default OPENAI_API_KEY / ANTHROPIC_API_KEY */
  apiKeyEnv?: string | undefined;
  /** A simulator the workers call instead (its URLs, which they must reach, and its placeholder key). @default none */
  simulator?: { baseUrl: string; origin: string; apiKey: string } | undefined;
  /** Names the server in the journal (a resume against another is refused). @default the base URL */
  endpoint?: string | undefined;
  /** Names the shared budget. @default derived by each worker from the provider, base URL and key */
  upstream?: string | undefined;
  /** Calls in flight over all workers, or auto (one shared AIMD limit). @default "auto" */
  concurrency?: number | "auto" | undefined;
  /** The most calls auto may have in flight. @default 256 */
  maxConcurrency?: number | undefined;
  /** The most calls one worker process has in flight. @default the shared limit */
  workerConcurrency?: number | undefined;
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  inputTokensPerMinute?: number | undefined;
  outputTokensPerMinute?: number | undefined;
  /** Seconds of each per-minute limit that may go at once. @default 1 */
  burstSeconds?: number | undefined;
  /** Per-attempt timeout, ms. @default 600_000 */
  timeoutMs?: number | undefined;
  /** Per-line deadline across attempts, ms. @default none */
  deadlineMs?: number | undefined;
  /** Attempts per line, the first included. @default 5 */
  maxAttempts?: number | undefined;
  /** Start over: remove the output, its journal and the batch's state in Redis. @default false */
  fresh?: boolean | undefined;
  /** A rerun also runs the lines that failed for good. @default false */
  retryFailed?: boolean | undefined;
  /** Refuse the whole input if a line is invalid. @default false */
  strict?: boolean | undefined;
  /** How long a shared lease outlives its holder, ms. @default 10_000 */
  leaseTtlMs?: number | undefined;
  /** How long a job's lock outlives its worker, ms: a killed worker's lines go to others after it. @default 10_000 */
  lockDurationMs?: number | undefined;
  /** Times a line's job may be lost with its worker before the line fails. @default 10 */
  maxStalledCount?: number | undefined;
  /** How to run `salvo` for the local workers. @default [process.execPath, bin/salvo.js] */
  workerCommand?: string[] | undefined;
  clock?: Clock | undefined;
};

/** What the workers did, over all of them. */
export type DistributedReport = {
  batchId: string;
  /** The Redis URL, password hidden. */
  redis: string;
  /** Local worker processes kept running, how many died (each restarted), and workers heard from in all. */
  localWorkers: number;
  workerDeaths: number;
  workersSeen: number;
  /** Jobs BullMQ gave to another worker after theirs was lost (lock expired). */
  jobsRecovered: number;
  /** Jobs Redis had lost that the coordinator put back. */
  jobsRequeued: number;
  /** Lines answered from Redis when submitted: journaled by workers before this run started. */
  answersFromRedis: number;
  /** Redis unreachable, the longest any process saw, ms: admission paused meanwhile. */
  redisUnavailableMs: number;
  /** The shared admission over all workers. */
  admission: {
    admissions: number;
    admitted: number;
    queued: number;
    /** Redis round trips per admitted attempt: to be admitted, and to reconcile. */
    roundTripsPerAdmission: number | undefined;
    roundTripsPerReconcile: number | undefined;
    waitMs: number;
    /** Passes given back because their process woke too late to send them in step (re-asked). */
    late: number;
  };
};

export type DistributedBatchResult = BatchFileResult & { distributed: DistributedReport };

function integer(field: string, value: number | undefined, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min)
    throw new ConfigError({ field, expected: `a whole number >= ${min}`, got: value });
  return value;
}

/**
 * Runs a batch file over workers that share Redis. Rejects before anything runs with ConfigError,
 * RedisUnavailableError (Redis cannot be reached), InputRejectedError or ResumeRefusedError;
 * otherwise resolves with the result, whatever happened to the lines.
 */
export async function runDistributedBatch(
  options: DistributedBatchOptions,
): Promise<DistributedBatchResult> {
  const {
    input,
    output,
    redis,
    progress,
    signal,
    report,
    model,
    providerName,
    env = process.env,
    clock: clockOption,
  } = options;
  const clock: Clock = clockOption ?? realClock;
  const workers = integer("--workers", options.workers, 0, 1);
  const window = integer("window", options.window, 1, 4096);
  const graceMs = options.graceMs ?? 30_000;
  const lockDurationMs = integer("lockDurationMs", options.lockDurationMs, 500, 10_000);
  const emit = (event: BatchFileEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A listener must not stop a run.
    }
  };

  // 1. Everything that can be checked before Redis is touched.
  await checkBatchPaths({ input, output, report, audit: undefined, cache: undefined });
  if (options.fresh) await checkFreshTargets(output);
  const shape = await batchFileShape(input, { model, providerName });
  const endpoint =
    options.endpoint ??
    (options.simulator !== undefined
      ? `simulator:${options.simulator.baseUrl}`
      : baseUrlFor(shape, { baseUrl: options.baseUrl, env }));
  const connection = await RedisConnection.open(redis, { name: "salvo-coordinator" });

  const batchId = batchIdOf(output);
  const keys = batchKeys(batchId);
  const settings: BatchSettings = {
    version: 1,
    batchId,
    provider: shape,
    baseUrl: options.baseUrl,
    apiKeyEnv: options.apiKeyEnv,
    simulator: options.simulator,
    upstream: options.upstream,
    concurrency: options.concurrency ?? "auto",
    maxConcurrency: options.maxConcurrency,
    workerConcurrency:
      options.workerConcurrency === undefined
        ? undefined
        : integer("--worker-concurrency", options.workerConcurrency, 1, 1),
    requestsPerMinute: options.requestsPerMinute,
    tokensPerMinute: options.tokensPerMinute,
    inputTokensPerMinute: options.inputTokensPerMinute,
    outputTokensPerMinute: options.outputTokensPerMinute,
    burstSeconds: options.burstSeconds,
    timeoutMs: options.timeoutMs ?? 600_000,
    deadlineMs: options.deadlineMs ?? null,
    maxAttempts: options.maxAttempts,
    leaseTtlMs: integer("leaseTtlMs", options.leaseTtlMs, 300, 10_000),
    lockDurationMs,
    maxStalledCount: integer("--max-stalled", options.maxStalledCount, 1, 10),
  };
  if (settings.timeoutMs !== null && !Number.isFinite(settings.timeoutMs))
    settings.timeoutMs = null;

  const { Queue, QueueEvents } = await import("bullmq");
  const client = connection.client;
  const queue = new Queue<LineJob>(keys.queue, { connection: client, prefix: QUEUE_PREFIX });
  queue.on("error", () => {});
  let queueEvents: InstanceType<typeof QueueEvents> | undefined;
  let reader: import("ioredis").Redis | undefined;
  let locals: LocalWorkers | undefined;
  let sweepTimer: ReturnType<typeof setInterval> | undefined;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  let readLoop: Promise<void> = Promise.resolve();
  let stopped = false;
  let offAvailability: (() => void) | undefined;
  let interrupted = false;
  let batch: BatchSummary | undefined;
  let jobsRecovered = 0;
  const batchStop = new AbortController();
  const relay = new RelayedEvents(clock);
  const startedAt = clock.now();
  const fixedConcurrency =
    typeof settings.concurrency === "number" ? settings.concurrency : undefined;
  const metrics = new RunMetrics({
    startedAt,
    usageOf: (value) => (value as { usage?: { inputTokens: number; outputTokens: number } }).usage,
    costOf: (value) => (value as { cost?: { usd: number } }).cost?.usd,
    statusOf: (value) => {
      const status = (value as { status?: unknown } | undefined)?.status;
      return typeof status === "number" ? status : undefined;
    },
    limits: {
      concurrency: fixedConcurrency,
      requestsPerMinute: settings.requestsPerMinute,
      tokensPerMinute: settings.tokensPerMinute,
      inputTokensPerMinute: settings.inputTokensPerMinute,
      outputTokensPerMinute: settings.outputTokensPerMinute,
      burstSeconds: settings.burstSeconds ?? 1,
    },
  });
  metrics.attach(relay.events);
  const timeline = new RunTimeline(startedAt);
  timeline.attach(relay.events);
  const dispatcher = new BatchDispatcher({
    client,
    queue,
    keys,
    clock,
    lookupAfterMs: lockDurationMs * 3,
  });
  const onInterrupt = () => {
    interrupted = true;
    emit({ type: "interrupted", inFlight: dispatcher.outstanding, graceMs });
    progress?.note(`interrupted: finishing calls in flight (up to ${formatDuration(graceMs)})`);
    batchStop.abort(signal?.reason);
    // Lines not started yet leave the queue; those in flight finish and are collected.
    void queue.drain().catch(() => {});
    graceTimer = setTimeout(() => {
      emit({ type: "grace-expired", aborted: dispatcher.outstanding });
      dispatcher.abandon(
        "interrupted: the grace period ended (the answer, if it comes, waits in Redis for the rerun)",
      );
    }, graceMs);
    graceTimer.unref();
  };

  try {
    if (options.fresh)
      await Promise.all([
        queue.obliterate({ force: true }),
        client.del(keys.results, keys.events, keys.settings),
      ]);
    // Answers journaled before this point are in the results hash (found when submitted); later
    // ones come as notices after this stream id.
    const last = await client.xrevrange(keys.events, "+", "-", "COUNT", 1);
    let lastId = last[0]?.[0] ?? "0";
    queueEvents = new QueueEvents(keys.queue, { connection: client, prefix: QUEUE_PREFIX });
    queueEvents.on("error", () => {});
    queueEvents.on("stalled", () => {
      jobsRecovered++;
    });
    queueEvents.on("failed", ({ jobId, failedReason }) => {
      void dispatcher.failed(jobId, failedReason).catch(() => {});
    });
    await queueEvents.waitUntilReady();
    reader = await connection.duplicate("salvo-coordinator-events");
    const stream = reader;
    readLoop = (async () => {
      while (!stopped) {
        let entries: Array<[string, Array<[string, string[]]>]> | null;
        try {
          entries = (await stream.xread(
            "COUNT",
            1_000,
            "BLOCK",
            1_000,
            "STREAMS",
            keys.events,
            lastId,
          )) as Array<[string, Array<[string, string[]]>]> | null;
        } catch {
          if (stopped) return;
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        const done: number[] = [];
        for (const [, items] of entries ?? [])
          for (const [id, fields] of items) {
            lastId = id;
            if (fields[0] === "k" && fields[1] === "d") done.push(Number(fields[3]));
            else relay.entry(fields);
          }
        if (done.length > 0) await dispatcher.done(done).catch(() => {});
      }
    })();
    sweepTimer = setInterval(() => void dispatcher.sweep().catch(() => {}), 3_000);
    sweepTimer.unref();
    const register = async () => {
      await client.set(keys.settings, JSON.stringify(settings));
      await client.zadd(BATCH_REGISTRY, Date.now(), batchId);
      await client.publish(BATCH_REGISTRY, `+${batchId}`);
    };
    await register();
    // A Redis that comes back without its data has forgotten the batch: register it again (its
    // lost jobs are put back by the dispatcher's sweep).
    offAvailability = connection.onAvailability((up) => {
      if (up && !stopped) void register().catch(() => {});
    });
    if (workers > 0) {
      locals = new LocalWorkers({
        count: workers,
        args: ["worker", "--redis", redis, "--batch", batchId, "--grace", `${graceMs}ms`],
        env,
        command: options.workerCommand,
        onMessage: (message) => emit({ type: "warning", message }),
      });
      locals.start();
    } else {
      progress?.note(
        `waiting for workers: run \`salvo worker --redis ${redactRedisUrl(redis)}\` on the machines that should call`,
      );
    }
    progress?.start(metrics, relay.events, () => clock.now());
    if (signal?.aborted) onInterrupt();
    else signal?.addEventListener("abort", onInterrupt, { once: true });

    batch = await runBatch({
      input,
      output,
      execute: (item) => dispatcher.execute(item),
      fresh: options.fresh,
      retryFailed: options.retryFailed,
      strict: options.strict,
      defaultModel: model,
      runKey: batchRunKey(providerName, endpoint),
      window,
      signal: batchStop.signal,
      onEvent: (event) => {
        if (event.type === "scanned") metrics.setTotal(event.scan.total);
        else if (event.type === "resumed") metrics.addSkipped(event.doneInOutput);
        else if (event.type === "item" && event.source !== "executed") metrics.addSkipped(1);
        emit(event);
      },
    });
  } finally {
    if (graceTimer !== undefined) clearTimeout(graceTimer);
    signal?.removeEventListener("abort", onInterrupt);
    if (sweepTimer !== undefined) clearInterval(sweepTimer);
    dispatcher.abandon("the run ended");
    progress?.stop();
    const complete = batch !== undefined && !batch.interrupted && !interrupted;
    offAvailability?.();
    locals?.finishing();
    // The workers leave once the batch is out of the registry (finishing what they hold).
    await client.zrem(BATCH_REGISTRY, batchId).catch(() => {});
    await client.publish(BATCH_REGISTRY, `-${batchId}`).catch(() => {});
    await locals?.stop();
    stopped = true;
    reader?.disconnect();
    await readLoop;
    await queueEvents?.close().catch(() => {});
    if (complete) {
      // Every answer is in the output: the batch's state in Redis has done its work.
      await queue.obliterate({ force: true }).catch(() => {});
      await client.del(keys.results, keys.events, keys.settings).catch(() => {});
    }
    await queue.close().catch(() => {});
  }
  const figures = relay.figures();
  await connection.close();

  const sum = (pick: (f: (typeof figures)[number]) => number) =>
    figures.reduce((total, f) => total + pick(f), 0);
  const admitted = sum((f) => f.admitted);
  const distributed: DistributedReport = {
    batchId,
    redis: redactRedisUrl(redis),
    localWorkers: workers,
    workerDeaths: locals?.deaths ?? 0,
    workersSeen: relay.workers.length,
    jobsRecovered,
    jobsRequeued: dispatcher.requeued,
    answersFromRedis: dispatcher.fromRedis,
    redisUnavailableMs: Math.max(connection.unavailableMs, ...figures.map((f) => f.unavailableMs)),
    admission: {
      admissions: sum((f) => f.admissions),
      admitted,
      queued: sum((f) => f.queued),
      roundTripsPerAdmission:
        admitted > 0 ? sum((f) => f.roundTrips.admit + f.roundTrips.check) / admitted : undefined,
      roundTripsPerReconcile:
        admitted > 0 ? sum((f) => f.roundTrips.reconcile) / admitted : undefined,
      waitMs: sum((f) => f.waitMs),
      late: sum((f) => f.late ?? 0),
    },
  };
  const endedAt = clock.now();
  const run = metrics.summary(endedAt);
  const series = timeline.series(endedAt);
  const status = batch.interrupted || interrupted ? "interrupted" : "completed";
  const lines = [`  cost ${formatUsd(run.cost.usd)}`, ...distributedLines(distributed)];
  const result: DistributedBatchResult = {
    status,
    input,
    output,
    batch,
    run,
    series,
    limitsSet:
      fixedConcurrency !== undefined ||
      [
        settings.requestsPerMinute,
        settings.tokensPerMinute,
        settings.inputTokensPerMinute,
        settings.outputTokensPerMinute,
      ].some((limit) => limit !== undefined),
    cache: undefined,
    budget: undefined,
    concurrency: undefined,
    backend: undefined,
    text: summaryText(batch, run, output, true, lines),
    distributed,
  };
  if (report !== undefined && /\.html?$/i.test(report)) {
    await writeHtmlReport(report, {
      title: `salvo run ${basename(input)}: ${batch.total} lines, ${distributed.workersSeen} workers`,
      run,
      series,
    });
  } else if (report !== undefined) {
    const { text: _text, ...json } = result;
    await writeFile(report, `${JSON.stringify({ ...json, settings }, null, 2)}\n`, { mode: 0o600 });
  }
  return result;
}

/** The summary's lines on the workers, the shared admission and Redis. */
export function distributedLines(d: DistributedReport): string[] {
  const lines: string[] = [];
  const deaths =
    d.workerDeaths > 0
      ? ` (${d.workerDeaths} died and ${d.workerDeaths === 1 ? "was" : "were"} started again)`
      : "";
  const recovered =
    d.jobsRecovered + d.jobsRequeued > 0
      ? `; ${d.jobsRecovered + d.jobsRequeued} line(s) ran again on another worker after theirs was lost`
      : "";
  lines.push(
    `  workers: ${d.localWorkers} on this machine${deaths}, ${d.workersSeen} in all through ${d.redis}${recovered}`,
  );
  const a = d.admission;
  if (a.roundTripsPerAdmission !== undefined)
    lines.push(
      `  shared admission: ${a.admitted} attempts admitted (${a.queued} waited for a shared slot), ${a.roundTripsPerAdmission.toFixed(2)} Redis round trips per admission and ${(a.roundTripsPerReconcile ?? 0).toFixed(2)} per reconcile${a.late > 0 ? ` (${a.late} passes given back and asked again: their process woke too late to send them in step)` : ""}`,
    );
  if (d.answersFromRedis > 0)
    lines.push(
      `  ${d.answersFromRedis} answer(s) were collected from Redis, journaled there before this run started (no call)`,
    );
  if (d.redisUnavailableMs > 0)
    lines.push(
      `  Redis was unreachable for ${formatDuration(d.redisUnavailableMs)}: admission paused, then resumed when it returned`,
    );
  return lines;
}

// `salvo run` as a library call: a JSONL batch file in, one answer per line out, in input order.
// Composes the provider, the Salvo client (single-flight, response cache, budget, scheduler), the
// call log, the batch driver (journal, resume, ordered output), run metrics and progress; stops
// gracefully on its signal; and returns the summary `salvo run` prints. The CLI only parses its
// arguments, prints and exits (STYLE.md §9).
import { writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { openCallLog } from "../audit/call-log.ts";
import type { CallOutcome, SalvoResult } from "../cache/call-layer.ts";
import { fingerprint, isShareable } from "../cache/fingerprint.ts";
import { ResponseCache } from "../cache/response-cache.ts";
import { type Clock, realClock } from "../core/clock.ts";
import { AdaptiveConcurrency, type StartSource } from "../core/concurrency/adaptive-concurrency.ts";
import type { SchedulerOptions } from "../core/scheduler-options.ts";
import { Budget } from "../cost/budget.ts";
import { modelOf, type PriceTable, Pricing } from "../cost/pricing.ts";
import { ConfigError } from "../errors.ts";
import { writeHtmlReport } from "../metrics/report-html.ts";
import { RunMetrics, type RunSummary, rateLimitsInForce } from "../metrics/run-metrics.ts";
import { type RunSeries, RunTimeline } from "../metrics/run-timeline.ts";
import { limitMemoryPath, readRememberedLimit, rememberLimit } from "../probe/limit-memory.ts";
import { formatDuration } from "../progress/format.ts";
import type { ProgressRenderer } from "../progress/progress-renderer.ts";
import type { Provider, ProviderResult } from "../providers/provider.ts";
import { baseUrlFor, type ProviderName, providerFromEnv } from "../providers/provider-from-env.ts";
import { Salvo } from "../salvo.ts";
import { backendLines } from "./backend-summary.ts";
import {
  type Backend,
  type BackendEvent,
  type BackendReport,
  BatchBackend,
} from "./batch-backend.ts";
import { batchClientFromEnv } from "./batch-client-from-env.ts";
import { liveBatchesOf, statePath } from "./batch-state.ts";
import { type BatchItem, isInvalid } from "./input-line.ts";
import { readInput } from "./input-reader.ts";
import { answeredOutcome, type ItemOutcome, itemOutcomeFrom } from "./output-line.ts";
import { checkBatchPaths, checkFreshTargets } from "./preflight.ts";
import type { ProviderBatchClient } from "./provider-batch-client.ts";
import { type BatchEvent, type BatchSummary, runBatch } from "./run-batch.ts";
import { RunLock } from "./run-lock.ts";
import { budgetReport, spendLines, summaryText } from "./summary-text.ts";

export type { Backend, BackendReport, ProviderName };

/** What a batch-file run tells its listener, besides the batch driver's events. */
export type BatchFileEvent =
  | BatchEvent
  /** The signal fired: nothing more is admitted; the calls in flight have `graceMs` to finish. */
  | { type: "interrupted"; inFlight: number; graceMs: number }
  /** The grace period ended: the calls still in flight were aborted (they rerun on resume). */
  | { type: "grace-expired"; aborted: number }
  /** Something went wrong that does not stop the run (e.g. a response cache write failed). */
  | { type: "warning"; message: string }
  /** The batch backend (`backend: "batch" | "auto"`): its plan and its provider batches. */
  | BackendEvent;

export type RunBatchFileOptions = Omit<SchedulerOptions, "window" | "concurrency"> & {
  /** The input JSONL file: OpenAI Batch lines, cookbook request bodies, or Anthropic batch lines. */
  input: string;
  /** The output JSONL file; its journal is `<output>.journal`. A rerun resumes it. */
  output: string;
  /**
   * Where the calls go: a provider, or a function of the API the input's lines are shaped for.
   * @default `providerFromEnv(shape, {env})`: the key from OPENAI_API_KEY / ANTHROPIC_API_KEY
   */
  provider?: Provider | ((shape: ProviderName) => Provider) | undefined;
  /**
   * The API the requests are for; a value that disagrees with the input's shape is refused.
   * @default the input's shape (Anthropic batch lines: anthropic; otherwise openai)
   */
  providerName?: ProviderName | undefined;
  /** The model for lines that name none; without it such lines are invalid. @default none */
  model?: string | undefined;
  /**
   * What names the server in request fingerprints (the cache) and in the journal (a resume
   * against another server is refused). @default the provider's base URL (`baseUrlFor`)
   */
  endpoint?: string | undefined;
  /** Calls in flight at once, or `auto` (adaptive). @default "auto" */
  concurrency?: SchedulerOptions["concurrency"];
  /** Start over: delete the output and its journal first, instead of resuming. @default false */
  fresh?: boolean | undefined;
  /**
   * A rerun also runs again the lines that failed for good (400, 401, 403, 404, quota, context
   * too long); lines that failed transiently are run again whatever this says. @default false
   */
  retryFailed?: boolean | undefined;
  /** Refuse the whole input before any call if one line is invalid. @default false */
  strict?: boolean | undefined;
  /** After the signal fires, how long calls in flight may finish before they are aborted, ms. @default 30_000 */
  graceMs?: number | undefined;
  /** The call log's path: one hash-chained record per attempt (`salvo verify`). @default none */
  audit?: string | undefined;
  /** What the call log keeps of requests and answers. @default "hash" */
  auditContent?: "full" | "hash" | "none" | undefined;
  /** A response cache: its directory, or an open `ResponseCache`. @default none */
  cache?: string | ResponseCache | undefined;
  /** How long a cached answer stays fresh, ms (with a directory). @default Infinity */
  cacheTtlMs?: number | undefined;
  /** Cache and share sampled requests too (temperature > 0 or unset). @default false */
  cacheForce?: boolean | undefined;
  /** Most USD the run may spend; every model then needs a price. @default none */
  maxCostUsd?: number | undefined;
  /** Most tokens (input + output) the run may use. @default none */
  maxTokensTotal?: number | undefined;
  /** Prices overriding the built-in table, USD per million tokens. @default the built-in table */
  pricing?: PriceTable | Pricing | undefined;
  /**
   * Also write the summary to this file (0600): JSON, or when the path ends in `.html` a
   * self-contained HTML page with the run's charts (the same data). @default none
   */
  report?: string | undefined;
  /** A progress display, started once the client exists and stopped when the run ends. */
  progress?: ProgressRenderer | undefined;
  /** Stops the run gracefully (see `graceMs`); a rerun resumes it. */
  signal?: AbortSignal | undefined;
  /** The batch driver's events, the interrupt and warnings. A listener that throws is ignored. */
  onEvent?: ((event: BatchFileEvent) => void) | undefined;
  /** Where variables are read (the default provider's key, the call log's redaction). @default process.env */
  env?: Record<string, string | undefined> | undefined;
  /** Items admitted ahead of the oldest unwritten one (the reorder window). @default 4096 */
  window?: number | undefined;
  /**
   * Where the calls go (`--backend`): `realtime`, every line through the scheduler; `batch`, the
   * provider's batch API at half the price (split at its size limits, polled with backoff; a
   * line it errors or expires runs in real time while `runDeadline` allows); `auto`, chosen from
   * `runDeadline`, M* under the limits set, the prices and the budget: all real time, all batch,
   * or the bulk to the batch API and the first lines in real time. A rerun re-attaches to the
   * batches already submitted (`<output>.batches.json`). @default "realtime"
   */
  backend?: Backend | undefined;
  /**
   * When the whole run should be done (`--run-deadline`): a Date, or ms from the run's first start
   * (a rerun keeps the first start). It places items (`auto`), cancels a batch not back in time
   * for real time to finish its lines, and says whether a line the batch did not answer may still
   * run in real time. It does not stop calls; `deadlineMs` bounds one item. @default none
   */
  runDeadline?: Date | number | undefined;
  /**
   * The provider's batch API, or a function of the input's shape.
   * @default `batchClientFromEnv(shape, {env})`: the key and base URL as the default provider's
   */
  batchClient?: ProviderBatchClient | ((shape: ProviderName) => ProviderBatchClient) | undefined;
  /**
   * How long the provider's batch API is expected to take for a batch of n requests, ms, and
   * where that figure comes from (for `auto` and the summary).
   * @default 24 h, the providers' completion window ("the provider allows up to 24h")
   */
  batchTurnaround?: { ms: number | ((requests: number) => number); source: string } | undefined;
  /** Most requests per provider batch. @default the provider's limit (50,000 OpenAI, 100,000 Anthropic) */
  batchSize?: number | undefined;
  /** Poll intervals of a provider batch, ms: the first and the longest. @default {minMs: 1000, maxMs: 60_000} */
  batchPollMs?: { minMs?: number | undefined; maxMs?: number | undefined } | undefined;
  /**
   * One real-time call's latency for `auto`'s estimates, ms, and where it comes from.
   * @default 1000 ms, "an assumed 1s per call"
   */
  realtimeLatency?: { ms: number; source: string } | undefined;
  /** Epoch ms, for the run deadline and the state file's times. @default Date.now */
  wallNow?: (() => number) | undefined;
  /**
   * Called with the run's client once it exists, before any call: e.g. `instrument` (spans and
   * metrics through OpenTelemetry). What it returns is called when the run ends. @default none
   */
  observe?: ((client: Salvo) => (() => void) | undefined) | undefined;
  /**
   * Where `auto` concurrency's learned limit is kept between runs, keyed by endpoint and model:
   * the next run against them (a rerun, the next job) starts there instead of searching, which a
   * short job pays for most. `false` keeps nothing. @default `limits.json` in the cache
   * directory when there is one, else `<output>.limits.json`
   */
  limitMemory?: string | false | undefined;
};

/** How a batch-file run ended, with everything `salvo run` prints and reports. */
export type BatchFileResult = {
  /**
   * `completed`: every line has its answer or error in the output. `interrupted`: the signal
   * stopped it (rerun to resume). `budget-exhausted`: the budget refused the rest (rerun with a
   * larger one to run exactly those).
   */
  status: "completed" | "interrupted" | "budget-exhausted";
  input: string;
  output: string;
  /** Lines and where their answers came from. */
  batch: BatchSummary;
  /** Attempts, latency, tokens, cost, the concurrency limit over time, M*. */
  run: RunSummary;
  /** The run over time: throughput, in flight against the limit, 429s, retries, latency bins. */
  series: RunSeries;
  /** Whether a concurrency or rate limit was set, so that M* is the physical bound. */
  limitsSet: boolean;
  cache: { dir: string; hits: number; misses: number; stored: number; errors: number } | undefined;
  budget: ReturnType<typeof budgetReport> | undefined;
  /**
   * `auto` concurrency: where it started and why, the limit it settled on (kept in `memory` for
   * the next run; undefined while it was still searching). Undefined for a fixed limit.
   */
  concurrency:
    | {
        start: number;
        source: StartSource;
        learned: number | undefined;
        memory: string | undefined;
      }
    | undefined;
  /** What the batch backend placed where and why, and its provider batches (`backend` batch|auto). */
  backend: BackendReport | undefined;
  /** The summary as `salvo run` prints it. */
  text: string;
};

/** The API the input's first valid line is shaped for; undefined if none is valid. */
async function inputShape(
  input: string,
  defaultModel: string | undefined,
): Promise<ProviderName | undefined> {
  for await (const entry of readInput(input, { defaultModel }))
    if (!isInvalid(entry)) return entry.provider;
  return undefined;
}

/**
 * The API a batch file's requests are for: its lines' shape (Anthropic batch lines: anthropic),
 * else `providerName`, else openai. A `providerName` that disagrees with the lines is refused.
 */
export async function batchFileShape(
  input: string,
  options: { model?: string | undefined; providerName?: ProviderName | undefined } = {},
): Promise<ProviderName> {
  const { model, providerName } = options;
  const shape = (await inputShape(input, model)) ?? providerName ?? "openai";
  if (providerName !== undefined && providerName !== shape)
    throw new ConfigError({
      field: "--provider",
      expected: `${shape}, the provider the input's lines are shaped for`,
      got: providerName,
      where: input,
    });
  return shape;
}

/** What a batch run's journal records of its server: a resume against another is refused. */
export function batchRunKey(providerName: ProviderName | undefined, endpoint: string): unknown {
  return { provider: providerName, endpoint };
}

/** With a cost budget every call needs a price: the first input line whose model has none. */
async function unpricedLine(
  input: string,
  defaultModel: string | undefined,
  pricing: Pricing,
): Promise<{ line: number; model: string | undefined } | undefined> {
  const known = new Set<string>();
  for await (const entry of readInput(input, { defaultModel })) {
    if (isInvalid(entry)) continue;
    const model = modelOf(entry.request.body);
    if (model !== undefined && known.has(model)) continue;
    if (pricing.priceOf(model) === undefined) return { line: entry.line, model };
    if (model !== undefined) known.add(model);
  }
  return undefined;
}

function statusOf(value: unknown): number | undefined {
  const status = (value as { status?: unknown } | undefined)?.status;
  return typeof status === "number" ? status : undefined;
}

/**
 * Runs every request of a JSONL batch file within the limits, writing one answer per line in
 * input order, journaled as each arrives; a rerun with the same options resumes, calling only
 * what was not answered. Rejects (before any call) with ConfigError, InputRejectedError or
 * ResumeRefusedError on bad options or input; otherwise resolves with the result, whatever
 * happened to the items.
 */
export async function runBatchFile(options: RunBatchFileOptions): Promise<BatchFileResult> {
  const {
    input,
    output,
    provider: providerOption,
    providerName,
    model,
    fresh,
    retryFailed,
    strict,
    audit,
    auditContent,
    cache: cacheOption,
    cacheTtlMs,
    cacheForce,
    maxCostUsd,
    maxTokensTotal,
    pricing: pricingOption,
    report,
    progress,
    signal,
    onEvent,
    env = process.env,
    window = 4096,
    graceMs = 30_000,
    endpoint: endpointOption,
    limitMemory,
    backend: backendOption = "realtime",
    runDeadline,
    batchClient: batchClientOption,
    batchTurnaround,
    batchSize,
    batchPollMs,
    realtimeLatency,
    wallNow = Date.now,
    observe,
    ...schedulerOptions
  } = options;
  const clock: Clock = schedulerOptions.clock ?? realClock;
  const emit = (event: BatchFileEvent) => {
    try {
      onEvent?.(event);
    } catch {
      // A listener must not stop a run.
    }
  };

  // 1. Check everything that can be checked before a file is touched or a call made.
  await checkBatchPaths({
    input,
    output,
    report,
    audit,
    cache: typeof cacheOption === "string" ? cacheOption : undefined,
  });
  if (fresh) await checkFreshTargets(output);
  const shape = await batchFileShape(input, { model, providerName });
  const pricing = pricingOption instanceof Pricing ? pricingOption : new Pricing(pricingOption);
  if (maxCostUsd !== undefined) {
    const unpriced = await unpricedLine(input, model, pricing);
    if (unpriced !== undefined)
      throw new ConfigError({
        field: "--max-cost",
        expected: `a price for every model the input names; add ${JSON.stringify(unpriced.model ?? "MODEL")} under pricing: {MODEL: {input, output}} (USD per million tokens) in the config file`,
        got: unpriced.model,
        where: `${input}:${unpriced.line}`,
      });
  }
  const provider =
    typeof providerOption === "function"
      ? providerOption(shape)
      : (providerOption ?? providerFromEnv(shape, { env }));
  const endpoint = endpointOption ?? baseUrlFor(shape, { env });
  if (!["realtime", "batch", "auto"].includes(backendOption))
    throw new ConfigError({
      field: "--backend",
      expected: "realtime, batch or auto",
      got: backendOption,
      where: "runBatchFile options",
    });

  // 2. Open what the run writes besides its output.
  const cache =
    typeof cacheOption === "string"
      ? await ResponseCache.open(cacheOption, {
          ttlMs: cacheTtlMs,
          onError: (error, operation) =>
            emit({
              type: "warning",
              message: `response cache ${operation} failed in ${cacheOption}: ${(error as Error).message}`,
            }),
        })
      : cacheOption;
  const budget =
    maxCostUsd === undefined && maxTokensTotal === undefined
      ? undefined
      : new Budget({ maxCostUsd, maxTokens: maxTokensTotal });
  const runKey = batchRunKey(providerName, endpoint);
  let backend: BatchBackend | undefined;
  let backendFatal: unknown;
  let backendReport: BackendReport | undefined;
  const batchStop = new AbortController();
  // The batch backend works on this output before the batch driver runs (it submits provider
  // batches): it takes the output's lock first, for the whole run.
  let lock: RunLock | undefined;
  if (backendOption !== "realtime")
    lock = await RunLock.acquire(output, `${output}.lock`, {
      purpose: "salvo run",
      field: "output",
    });
  let callLog: Awaited<ReturnType<typeof openCallLog>> | undefined;
  try {
    callLog =
      audit === undefined ? undefined : await openCallLog(audit, { content: auditContent, env });
    if (backendOption !== "realtime") {
      const client =
        typeof batchClientOption === "function"
          ? batchClientOption(shape)
          : (batchClientOption ?? batchClientFromEnv(shape, { env }));
      const turnaround = batchTurnaround ?? {
        ms: 24 * 60 * 60 * 1000,
        source: "the providers' 24h completion window",
      };
      const fixedTurnaround = turnaround.ms;
      const turnaroundMs =
        typeof fixedTurnaround === "function" ? fixedTurnaround : () => fixedTurnaround;
      const concurrency = schedulerOptions.concurrency;
      backend = await BatchBackend.open({
        backend: backendOption,
        input,
        output,
        defaultModel: model,
        runKey,
        fresh: fresh ?? false,
        strict: strict ?? false,
        retryFailed: retryFailed ?? false,
        client,
        estimate: (request) => provider.estimate(request),
        pricing,
        budget,
        realtime: {
          latencyMs: realtimeLatency?.ms ?? 1000,
          latencySource: realtimeLatency?.source ?? "an assumed 1s per call",
          concurrency:
            typeof concurrency === "number"
              ? concurrency
              : typeof concurrency === "object" && concurrency !== null && "max" in concurrency
                ? Number((concurrency as { max: unknown }).max) || 256
                : 256,
          requestsPerMinute: schedulerOptions.requestsPerMinute,
          tokensPerMinute: schedulerOptions.tokensPerMinute,
          inputTokensPerMinute: schedulerOptions.inputTokensPerMinute,
          outputTokensPerMinute: schedulerOptions.outputTokensPerMinute,
          burstSeconds: schedulerOptions.burstSeconds,
        },
        turnaround: { ms: turnaroundMs, source: turnaround.source },
        runDeadline:
          runDeadline === undefined
            ? undefined
            : runDeadline instanceof Date
              ? { at: runDeadline.getTime() }
              : { afterMs: runDeadline },
        batchSize,
        poll: { minMs: batchPollMs?.minMs ?? 1000, maxMs: batchPollMs?.maxMs ?? 60_000 },
        clock,
        wallNow,
        signal,
        emit: (event) => emit(event),
        onFatal: (error) => {
          backendFatal ??= error;
          batchStop.abort(error);
        },
        cached:
          cache === undefined
            ? undefined
            : async (request) =>
                isShareable(request, cacheForce ?? false) &&
                (await cache.get(fingerprint(request, { provider: provider.name, endpoint }))) !==
                  undefined,
      });
    } else {
      const left = await liveBatchesOf(output);
      if (left > 0)
        emit({
          type: "warning",
          message: `an earlier --backend batch run of this output left ${left} batch(es) at the provider (${statePath(output)}); --backend realtime does not wait for them, so their lines are called again and may be paid twice: run with --backend batch to re-attach to them`,
        });
    }
  } catch (error) {
    await callLog?.close();
    await lock?.release();
    throw error;
  }

  // Auto concurrency starts where the last run against this endpoint and model settled.
  const requested = schedulerOptions.concurrency;
  const controller =
    requested === undefined || requested === "auto"
      ? new AdaptiveConcurrency()
      : requested instanceof AdaptiveConcurrency
        ? requested
        : undefined;
  const memory =
    controller === undefined || limitMemory === false
      ? undefined
      : (limitMemory ?? limitMemoryPath({ cacheDir: cache?.dir, output }));
  const memoryKey = { endpoint, model: model ?? (await firstModel(input)) ?? "" };
  if (controller !== undefined && memory !== undefined) {
    const remembered = await readRememberedLimit(memory, memoryKey);
    if (remembered !== undefined) controller.startFrom(remembered.limit, remembered.source);
  }

  const startedAt = clock.now();
  const fixedConcurrency =
    typeof schedulerOptions.concurrency === "number" ? schedulerOptions.concurrency : undefined;
  let salvo: Salvo | undefined;
  let metrics: RunMetrics | undefined;
  const timeline = new RunTimeline(startedAt);
  let batch: BatchSummary;
  // Items by input index, each with its own controller: a fatal batch error or the end of the
  // grace period aborts them; an interrupt does not (the client drains instead).
  const pending = new Map<number, AbortController>();
  const settledByScheduler = new Set<number>();
  let interrupted = false;
  let graceTimer: unknown;
  // Requests run with the cache on that it cannot keep: samples (the summary says why).
  let samples = 0;
  const onInterrupt = () => {
    interrupted = true;
    const inFlight = salvo?.scheduler.inFlight ?? 0;
    emit({ type: "interrupted", inFlight, graceMs });
    progress?.note(`interrupted: finishing calls in flight (up to ${formatDuration(graceMs)})`);
    // Stop admitting: queued calls and calls waiting to retry end now (they run on resume);
    // calls in flight finish, and their answers are kept.
    void salvo?.drain(signal?.reason);
    batchStop.abort(signal?.reason);
    graceTimer = clock.setTimeout(() => {
      emit({ type: "grace-expired", aborted: salvo?.scheduler.inFlight ?? 0 });
      progress?.note("interrupted: the grace period ended, calls in flight stopped");
      for (const controller of pending.values()) controller.abort(signal?.reason);
    }, graceMs);
  };

  let stopObserving: (() => void) | undefined;
  try {
    salvo = new Salvo({
      ...schedulerOptions,
      concurrency: controller ?? requested,
      provider,
      audit: callLog,
      cache,
      shareSamples: cacheForce,
      budget,
      pricing,
      endpoint,
    });
    stopObserving = observe?.(salvo);
    const scheduler = salvo.scheduler;
    metrics = new RunMetrics({
      startedAt,
      usageOf: (value) => (value as ProviderResult).usage,
      costOf: (value) => (value as SalvoResult).cost?.usd,
      statusOf,
      limits: {
        concurrency: fixedConcurrency,
        requestsPerMinute: schedulerOptions.requestsPerMinute,
        tokensPerMinute: schedulerOptions.tokensPerMinute,
        inputTokensPerMinute: schedulerOptions.inputTokensPerMinute,
        outputTokensPerMinute: schedulerOptions.outputTokensPerMinute,
        burstSeconds: schedulerOptions.burstSeconds,
      },
      // M* compares with the limits in force at the end: those set, or learned from headers.
      limitsInForce: () => rateLimitsInForce(scheduler),
    });
    metrics.attach(scheduler);
    timeline.attach(scheduler);
    for (const terminal of ["succeeded", "failed"] as const)
      scheduler.on(terminal, (e) => settledByScheduler.add(e.id as number));
    progress?.start(metrics, scheduler, () => clock.now());
    if (signal?.aborted) onInterrupt();
    else signal?.addEventListener("abort", onInterrupt, { once: true });

    // Items answered or refused before the scheduler (cache, single-flight, budget) are counted
    // here; the scheduler's events counted the others.
    const countOutside = (index: number, outcome: CallOutcome) => {
      if (settledByScheduler.delete(index)) return;
      metrics?.settledOutside(
        outcome.ok
          ? {
              ok: true,
              source: outcome.value.cached ? "cache" : "shared",
              status: outcome.value.status,
            }
          : { ok: false, error: outcome.error },
      );
    };
    const client = salvo;
    const realtime = async (
      item: BatchItem,
      stop: AbortSignal,
      keep: (outcome: ItemOutcome) => Promise<void>,
      deadlineMs?: number | undefined,
    ): Promise<ItemOutcome> => {
      const { request } = item;
      if (cache && request.body.stream !== true && !isShareable(request, cacheForce ?? false))
        samples++;
      const controller = new AbortController();
      pending.set(item.index, controller);
      // A fatal batch error stops everything at once; an interrupt only drains (see above).
      const onStop = () => {
        if (!interrupted) controller.abort(stop.reason);
      };
      stop.addEventListener("abort", onStop, { once: true });
      const submittedAt = clock.now();
      try {
        const outcome = await client.settle(item.request, {
          id: item.index,
          signal: controller.signal,
          // Journaled while the call holds its slot: at a kill, at most the limit's worth of
          // answers is paid for and not yet journaled.
          keep: (answer, attempt) =>
            keep(answeredOutcome(answer, attempt, clock.now() - submittedAt)),
          deadlineMs:
            deadlineMs === undefined
              ? undefined
              : Math.min(deadlineMs, schedulerOptions.deadlineMs ?? Number.POSITIVE_INFINITY),
        });
        countOutside(item.index, outcome);
        return itemOutcomeFrom(outcome);
      } finally {
        stop.removeEventListener("abort", onStop);
        pending.delete(item.index);
      }
    };
    const viaBackend = backend;
    const execute =
      viaBackend === undefined
        ? realtime
        : async (
            item: BatchItem,
            stop: AbortSignal,
            keep: (outcome: ItemOutcome) => Promise<void>,
          ): Promise<ItemOutcome> => {
            const decision = await viaBackend.decide(item, stop);
            if (decision.kind === "realtime")
              return realtime(item, stop, keep, decision.deadlineMs);
            if (decision.kind === "batch" && decision.outcome.ok && callLog !== undefined) {
              // The call log has a record of every answer, the batch API's too.
              const { value } = decision.outcome;
              const record = callLog.attempt(
                { ...callLog.capture(), salvo_batch_id: value.batchId },
                item.request,
                { id: item.index, index: item.index, attempt: 1, provider: provider.name },
              );
              const answer: SalvoResult = {
                status: value.status,
                body: value.body,
                usage: value.usage,
                rateLimits: undefined,
                requestId: value.requestId,
                cost: {
                  usd: value.costUsd,
                  model: modelOf(value.body) ?? modelOf(item.request.body),
                },
                cached: false,
                shared: false,
              };
              await record.succeeded(answer);
            }
            if (!stop.aborted || decision.outcome.ok)
              metrics?.settledOutside(
                decision.kind === "batch"
                  ? {
                      ok: true,
                      source: "batch",
                      status: decision.outcome.ok ? decision.outcome.value.status : undefined,
                      usage: decision.usage,
                      costUsd: decision.costUsd,
                    }
                  : { ok: false, error: decision.outcome.ok ? undefined : decision.outcome.error },
              );
            return decision.outcome;
          };
    if (backend !== undefined) {
      await backend.submit();
      backend.start();
    }
    batch = await runBatch({
      input,
      output,
      execute,
      lockHeld: lock !== undefined,
      fresh,
      retryFailed,
      strict,
      defaultModel: model,
      runKey,
      window,
      signal: batchStop.signal,
      onEvent: (event) => {
        if (event.type === "scanned") metrics?.setTotal(event.scan.total);
        else if (event.type === "resumed") metrics?.addSkipped(event.doneInOutput);
        else if (event.type === "item" && event.source !== "executed") metrics?.addSkipped(1);
        emit(event);
      },
    });
    backendReport = await backend?.close(!batch.interrupted && backendFatal === undefined);
    backend = undefined;
  } finally {
    if (graceTimer !== undefined) clock.clearTimeout(graceTimer);
    signal?.removeEventListener("abort", onInterrupt);
    progress?.stop();
    await backend?.close(false);
    await salvo?.close();
    stopObserving?.();
    await callLog?.close();
    await lock?.release();
  }
  if (backendFatal !== undefined) throw backendFatal;

  const endedAt = clock.now();
  let run = metrics.summary(endedAt);
  // Lines answered by the provider's batch API make the makespan the batch's turnaround, not the
  // real-time calls' work: M* bounds those calls, and a ratio to it would mislead.
  if ((backendReport?.answered ?? 0) > 0) run = { ...run, ratioToBound: undefined };
  const series = timeline.series(endedAt);
  const learned = controller?.learnedLimit;
  if (controller !== undefined && memory !== undefined && learned !== undefined) {
    try {
      await rememberLimit(memory, memoryKey, { limit: learned, source: "previous-run" });
    } catch (error) {
      emit({
        type: "warning",
        message: `the learned concurrency limit could not be kept in ${memory}: ${(error as Error).message}`,
      });
    }
  }
  const concurrency =
    controller === undefined
      ? undefined
      : {
          start: controller.state.start.limit,
          source: controller.state.start.source,
          learned,
          memory: learned === undefined ? undefined : memory,
        };
  const limitsSet =
    fixedConcurrency !== undefined ||
    [
      schedulerOptions.requestsPerMinute,
      schedulerOptions.tokensPerMinute,
      schedulerOptions.inputTokensPerMinute,
      schedulerOptions.outputTokensPerMinute,
    ].some((limit) => limit !== undefined);
  const status =
    batch.interrupted || interrupted
      ? "interrupted"
      : budget?.exhausted
        ? "budget-exhausted"
        : "completed";
  const result: BatchFileResult = {
    status,
    input,
    output,
    batch,
    run,
    series,
    limitsSet,
    cache: cache === undefined ? undefined : { dir: cache.dir, ...cache.counters },
    budget: budget === undefined ? undefined : budgetReport(budget),
    concurrency,
    backend: backendReport,
    text: withStartLine(
      summaryText(batch, run, output, limitsSet, [
        ...(backendReport === undefined ? [] : backendLines(backendReport)),
        ...spendLines(run, cache, budget, { samples }),
      ]),
      concurrency,
    ),
  };
  if (report !== undefined && /\.html?$/i.test(report)) {
    await writeHtmlReport(report, {
      title: `salvo run ${basename(input)}: ${batch.total} lines`,
      run,
      series,
    });
  } else if (report !== undefined) {
    const { text: _text, ...json } = result;
    await writeFile(
      report,
      `${JSON.stringify({ ...json, settings: reportSettings(options) }, null, 2)}\n`,
      { mode: 0o600 },
    );
  }
  return result;
}

/** The model of the input's first valid line (the limit memory's key), if any. */
async function firstModel(input: string): Promise<string | undefined> {
  for await (const entry of readInput(input, {}))
    if (!isInvalid(entry)) return modelOf(entry.request.body);
  return undefined;
}

const START_REASON: Record<StartSource, string> = {
  search: "from one call alone (nothing known of this endpoint yet)",
  "previous-run": "where the last run against this endpoint and model settled",
  probe: "at salvo probe's recommendation",
  "rate-limits": "under the rate limits in force",
  option: "as set",
};

/** The summary with a line on where auto concurrency started and what it learned. */
function withStartLine(text: string, concurrency: BatchFileResult["concurrency"]): string {
  if (concurrency === undefined) return text;
  const { start, source, learned, memory } = concurrency;
  const from =
    source === "search"
      ? `started ${START_REASON[source]}`
      : `started at ${start}, ${START_REASON[source]}`;
  const kept =
    learned === undefined ? "" : `; settled at ${learned}, kept in ${memory} for the next run`;
  const line = `  concurrency auto ${from}${kept}`;
  const at = text.lastIndexOf("\n  output: ");
  return at < 0 ? `${text}${line}\n` : `${text.slice(0, at)}\n${line}${text.slice(at)}`;
}

/** The options as a report shows them: plain values only (no provider object, no secrets). */
function reportSettings(options: RunBatchFileOptions): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || key === "env" || key === "signal" || key === "onEvent") continue;
    if (value instanceof Date) {
      settings[key] = value.toISOString();
      continue;
    }
    if (typeof value === "function" || (typeof value === "object" && value !== null)) {
      if (key === "retry" || key === "pricing")
        settings[key] = value instanceof Pricing ? "custom" : value;
      else if (key === "concurrency") settings[key] = "adaptive";
      continue;
    }
    settings[key] = typeof value === "number" && !Number.isFinite(value) ? null : value;
  }
  return settings;
}

// `salvo run` as a library call: a JSONL batch file in, one answer per line out, in input order.
// Composes the provider, the Salvo client (single-flight, response cache, budget, scheduler), the
// call log, the batch driver (journal, resume, ordered output), run metrics and progress; stops
// gracefully on its signal; and returns the summary `salvo run` prints. The CLI only parses its
// arguments, prints and exits (STYLE.md §9).
import { writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { openCallLog } from "../audit/call-log.ts";
import type { CallOutcome, SalvoResult } from "../cache/call-layer.ts";
import { isShareable } from "../cache/fingerprint.ts";
import { ResponseCache } from "../cache/response-cache.ts";
import { type Clock, realClock } from "../core/clock.ts";
import type { SchedulerOptions } from "../core/scheduler-options.ts";
import { Budget } from "../cost/budget.ts";
import { modelOf, type PriceTable, Pricing } from "../cost/pricing.ts";
import { ConfigError } from "../errors.ts";
import { writeHtmlReport } from "../metrics/report-html.ts";
import { RunMetrics, type RunSummary, rateLimitsInForce } from "../metrics/run-metrics.ts";
import { type RunSeries, RunTimeline } from "../metrics/run-timeline.ts";
import { formatDuration } from "../progress/format.ts";
import type { ProgressRenderer } from "../progress/progress-renderer.ts";
import type { Provider, ProviderResult } from "../providers/provider.ts";
import { baseUrlFor, type ProviderName, providerFromEnv } from "../providers/provider-from-env.ts";
import { Salvo } from "../salvo.ts";
import { type BatchItem, isInvalid } from "./input-line.ts";
import { readInput } from "./input-reader.ts";
import { itemOutcomeFrom } from "./output-line.ts";
import { checkBatchPaths, checkFreshTargets } from "./preflight.ts";
import { type BatchEvent, type BatchSummary, runBatch } from "./run-batch.ts";
import { budgetReport, spendLines, summaryText } from "./summary-text.ts";

export type { ProviderName };

/** What a batch-file run tells its listener, besides the batch driver's events. */
export type BatchFileEvent =
  | BatchEvent
  /** The signal fired: nothing more is admitted; the calls in flight have `graceMs` to finish. */
  | { type: "interrupted"; inFlight: number; graceMs: number }
  /** The grace period ended: the calls still in flight were aborted (they rerun on resume). */
  | { type: "grace-expired"; aborted: number }
  /** Something went wrong that does not stop the run (e.g. a response cache write failed). */
  | { type: "warning"; message: string };

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
   * Called with the run's client once it exists, before any call: e.g. `instrument` (spans and
   * metrics through OpenTelemetry). What it returns is called when the run ends. @default none
   */
  observe?: ((client: Salvo) => (() => void) | undefined) | undefined;
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
  const callLog =
    audit === undefined ? undefined : await openCallLog(audit, { content: auditContent, env });

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
  const batchStop = new AbortController();
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
    const execute = async (item: BatchItem, stop: AbortSignal) => {
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
      try {
        const outcome = await client.settle(item.request, {
          id: item.index,
          signal: controller.signal,
        });
        countOutside(item.index, outcome);
        return itemOutcomeFrom(outcome);
      } finally {
        stop.removeEventListener("abort", onStop);
        pending.delete(item.index);
      }
    };
    batch = await runBatch({
      input,
      output,
      execute,
      fresh,
      retryFailed,
      strict,
      defaultModel: model,
      runKey: batchRunKey(providerName, endpoint),
      window,
      signal: batchStop.signal,
      onEvent: (event) => {
        if (event.type === "scanned") metrics?.setTotal(event.scan.total);
        else if (event.type === "resumed") metrics?.addSkipped(event.doneInOutput);
        else if (event.type === "item" && event.source !== "executed") metrics?.addSkipped(1);
        emit(event);
      },
    });
  } finally {
    if (graceTimer !== undefined) clock.clearTimeout(graceTimer);
    signal?.removeEventListener("abort", onInterrupt);
    progress?.stop();
    await salvo?.close();
    stopObserving?.();
    await callLog?.close();
  }

  const endedAt = clock.now();
  const run = metrics.summary(endedAt);
  const series = timeline.series(endedAt);
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
    text: summaryText(batch, run, output, limitsSet, spendLines(run, cache, budget, { samples })),
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

/** The options as a report shows them: plain values only (no provider object, no secrets). */
function reportSettings(options: RunBatchFileOptions): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || key === "env" || key === "signal" || key === "onEvent") continue;
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

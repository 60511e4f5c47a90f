// `salvo run --dry-run`: reads and checks the input as the run would (duplicates refused, bad
// lines counted or, with --strict, refused), works out what is already done (a resume) and what
// the cache would answer, and prints the calls, tokens, cost and the lower bound M* the run
// would have. Nothing is called and no file is written (but --report's).
import { createReadStream, existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { ANTHROPIC_BATCH_LIMITS } from "../batch/anthropic-batch-client.ts";
import {
  type Plan,
  planAuto,
  plannedBatchMs,
  plannedRealtimeMs,
  type RealtimeModel,
} from "../batch/backend-plan.ts";
import { isInvalid } from "../batch/input-line.ts";
import { readInput, scanInput } from "../batch/input-reader.ts";
import { splitLines } from "../batch/line-splitter.ts";
import { OPENAI_BATCH_LIMITS } from "../batch/openai-batch-client.ts";
import type { ResumeState } from "../batch/resume.ts";
import { journalHeader, prepareBatchResume } from "../batch/run-batch.ts";
import { batchFileShape, batchRunKey } from "../batch/run-batch-file.ts";
import { fingerprint, isShareable } from "../cache/fingerprint.ts";
import { ResponseCache } from "../cache/response-cache.ts";
import { type RunSettings, scenarioPath } from "../config/run-settings.ts";
import {
  BatchEstimate,
  type BatchEstimateSummary,
  type ExpectedOutput,
  expectedFromHistory,
  uniformCappedMean,
} from "../cost/batch-estimate.ts";
import { BATCH_PRICE_FACTOR, formatUsd, Pricing } from "../cost/pricing.ts";
import { InputRejectedError } from "../errors.ts";
import { type Bound, physicalBound } from "../metrics/physical-bound.ts";
import { formatCount, formatDuration } from "../progress/format.ts";
import { AnthropicProvider } from "../providers/anthropic-provider.ts";
import { OpenAIProvider } from "../providers/openai-provider.ts";
import type { Provider } from "../providers/provider.ts";
import { baseUrlFor } from "../providers/provider-from-env.ts";
import { batchTurnaroundMs, loadScenario, resolveSimConfig, type SimConfig } from "../sim/index.ts";
import type { CliIo } from "./io.ts";

export type DryRunJob = {
  input: string;
  output: string;
  settings: RunSettings;
  io: CliIo;
  /** The provider the input is for (only its `estimate` is used: no key is needed). */
  provider: Provider;
  pricing: Pricing;
  /** The run's journal key, as `runBatch` would get it. */
  runKey: unknown;
  /** The fingerprint's endpoint, as the run's client would have it. */
  endpoint: string;
  /** The simulator's settings when the run targets it: its answer lengths and latency are known. */
  simulator: SimConfig | undefined;
};

/** What the dry run found, as printed and as written to `--report`. */
export type DryRunReport = {
  dry_run: true;
  input: string;
  output: string;
  items: {
    total: number;
    invalid: number;
    /** Already answered in the output or its journal: not called again. */
    done: number;
    /** Would be answered from the response cache. */
    cached: number;
    /** Would be called. */
    calls: number;
  };
  estimate: BatchEstimateSummary;
  /** The latency per call the bound assumes, ms, and where it comes from; undefined: unknown. */
  latency: { ms: number; source: string } | undefined;
  bound: Bound | undefined;
  /** The two backends side by side: real time and the provider's batch API; auto's choice. */
  backends:
    | {
        realtime: { plannedMs: number; cost: { bound: number; expected: number | undefined } };
        batch: {
          plannedMs: number;
          turnaroundSource: string;
          batches: number;
          cost: { bound: number; expected: number | undefined };
        };
        /** What `--backend auto` would do with the run deadline set (or none). */
        auto: Plan;
      }
    | undefined;
};

/** Answered items of an earlier run: output tokens and latency, by item index. */
async function answeredItems(
  output: string,
  resume: ResumeState,
): Promise<Map<number, { outputTokens: number; latencyMs: number }>> {
  const answers = new Map<number, { outputTokens: number; latencyMs: number }>();
  const take = (index: number, value: unknown) => {
    const line = value as {
      error?: unknown;
      usage?: { output_tokens?: unknown };
      latency_ms?: unknown;
    };
    const tokens = line.usage?.output_tokens;
    if (line.error === null && typeof tokens === "number")
      answers.set(index, {
        outputTokens: tokens,
        latencyMs: typeof line.latency_ms === "number" ? line.latency_ms : Number.NaN,
      });
  };
  if (resume.doneInOutput > 0) {
    let index = 0;
    for await (const { text } of splitLines(createReadStream(output))) {
      if (index >= resume.doneInOutput) break;
      try {
        take(index, JSON.parse(text));
      } catch {
        // The resume already accepted these lines; an unreadable one just teaches nothing.
      }
      index += 1;
    }
  }
  for (const [index, text] of resume.journaled) take(index, JSON.parse(text));
  return answers;
}

/** Runs the dry run; resolves to the exit code (0). */
export async function dryRun(job: DryRunJob): Promise<number> {
  const { input, output, settings, io, provider, pricing } = job;
  const defaultModel = settings.model;
  const scan = await scanInput(input, { defaultModel });
  if (scan.duplicates.length > 0 || (settings.strict && scan.invalid > 0))
    throw new InputRejectedError({
      file: input,
      errors: settings.strict ? scan.errors : [],
      errorCount: settings.strict ? scan.invalid : 0,
      duplicates: scan.duplicates,
    });
  const header = journalHeader({ input, output, defaultModel, runKey: job.runKey }, scan);
  // What the run would find: the same lines to run again (budget, changed, failed) as a real run.
  const resume = await prepareBatchResume({
    input,
    output,
    defaultModel,
    scan,
    header,
    fresh: settings.fresh,
    retryFailed: settings.retryFailed,
    readOnly: true,
  });
  const isDone = (index: number) => index < resume.doneInOutput || resume.journaled.has(index);
  const estimateOf = (request: Parameters<Provider["estimate"]>[0]) => provider.estimate(request);

  // Where the expected answer length comes from: the simulator's model, else this run's answers.
  const sim = job.simulator;
  let expected: ExpectedOutput | undefined;
  let latency: DryRunReport["latency"];
  if (sim !== undefined) {
    const { min, max } = sim.output.range;
    expected = {
      source: `the simulator's answer lengths (uniform ${min}-${max} tokens, cut at max_tokens)`,
      tokens: (_request, bound) => uniformCappedMean(min, max, bound),
    };
  } else if (!settings.fresh) {
    const answers = await answeredItems(output, resume);
    const history: Array<{ outputTokens: number; bound: number }> = [];
    let latencySum = 0;
    let latencyCount = 0;
    for await (const entry of readInput(input, { defaultModel })) {
      const answer = answers.get(entry.index);
      if (answer === undefined || isInvalid(entry)) continue;
      history.push({
        outputTokens: answer.outputTokens,
        bound: estimateOf(entry.request).outputTokens,
      });
      if (Number.isFinite(answer.latencyMs)) {
        latencySum += answer.latencyMs;
        latencyCount += 1;
      }
    }
    expected = expectedFromHistory(history);
    if (latencyCount > 0)
      latency = {
        ms: latencySum / latencyCount,
        source: `the mean latency of the ${latencyCount} answers already in the output`,
      };
  }

  // A cache that does not exist yet answers nothing (and a dry run creates no directory).
  const cache =
    settings.cache === undefined || !existsSync(settings.cache)
      ? undefined
      : await ResponseCache.open(settings.cache);
  const estimate = new BatchEstimate({ estimate: estimateOf, pricing, expected });
  const items = { total: scan.total, invalid: scan.invalid, done: 0, cached: 0, calls: 0 };
  for await (const entry of readInput(input, { defaultModel })) {
    if (isInvalid(entry)) continue;
    if (isDone(entry.index)) {
      items.done += 1;
      continue;
    }
    const request = entry.request;
    if (cache && isShareable(request, settings.cacheForce ?? false)) {
      const key = fingerprint(request, { provider: provider.name, endpoint: job.endpoint });
      if ((await cache.get(key)) !== undefined) {
        items.cached += 1;
        continue;
      }
    }
    items.calls += 1;
    estimate.add(request);
  }
  const summary = estimate.summary();

  if (sim !== undefined && summary.calls > 0) {
    const tokens = (summary.tokens.outputExpected ?? 0) / summary.calls;
    const ms = sim.latency.ttftMs + Math.max(0, tokens - 1) * sim.latency.msPerToken;
    latency = { ms, source: "the simulator's latency model (time to first token + per token)" };
  }
  const concurrency = typeof settings.concurrency === "number" ? settings.concurrency : undefined;
  const computed =
    summary.calls > 0
      ? physicalBound({
          calls: summary.calls,
          latencySumMs: (latency?.ms ?? 0) * summary.calls,
          latencyMinMs: latency?.ms ?? 0,
          latencyMaxMs: latency?.ms ?? 0,
          concurrency,
          requestsPerMinute: settings.rpm,
          tokensPerMinute: settings.tpm,
          tokensCharged: summary.tokens.input + summary.tokens.outputBound,
          inputTokensPerMinute: settings.itpm,
          inputTokensCharged: summary.tokens.input,
          outputTokensPerMinute: settings.otpm,
          outputTokensCharged: summary.tokens.outputExpected ?? summary.tokens.outputBound,
          burstSeconds: settings.burstSeconds,
        })
      : undefined;
  // With no latency to go by and no rate limit, every term is 0: M* is unknown, not 0 ms.
  const bound = computed !== undefined && computed.boundMs > 0 ? computed : undefined;
  const report: DryRunReport = {
    dry_run: true,
    input,
    output,
    items,
    estimate: summary,
    latency,
    bound,
    backends: summary.calls > 0 ? backendsSideBySide(summary, settings, job, latency) : undefined,
  };
  io.stdout.write(dryRunText(report, settings, pricing));
  if (settings.report)
    await writeFile(settings.report, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
  return 0;
}

/** Real time and the batch API side by side, and what `--backend auto` would choose. */
function backendsSideBySide(
  e: BatchEstimateSummary,
  settings: RunSettings,
  job: DryRunJob,
  latency: DryRunReport["latency"],
): NonNullable<DryRunReport["backends"]> {
  const n = e.calls;
  const model: RealtimeModel = {
    latencyMs: latency?.ms ?? 1000,
    latencySource: latency?.source ?? "an assumed 1s per call",
    concurrency:
      typeof settings.concurrency === "number"
        ? settings.concurrency
        : (settings.maxConcurrency ?? 256),
    requestsPerMinute: settings.rpm,
    tokensPerMinute: settings.tpm,
    inputTokensPerMinute: settings.itpm,
    outputTokensPerMinute: settings.otpm,
    burstSeconds: settings.burstSeconds,
    inputTokensPerItem: e.tokens.input / n,
    outputTokensPerItem: e.tokens.outputBound / n,
  };
  const sim = job.simulator;
  const turnaround: { ms: (requests: number) => number; source: string } =
    settings.batchTurnaroundMs !== undefined
      ? { ms: () => settings.batchTurnaroundMs!, source: "--batch-turnaround" }
      : sim !== undefined
        ? {
            ms: (requests) => batchTurnaroundMs(sim.batch, requests),
            source: "the simulator's batch settings",
          }
        : { ms: () => 24 * 60 * 60 * 1000, source: "the providers' 24h completion window" };
  const limits = job.provider.name === "anthropic" ? ANTHROPIC_BATCH_LIMITS : OPENAI_BATCH_LIMITS;
  const perBatch = Math.min(limits.maxRequests, settings.batchSize ?? Infinity);
  const pollMinMs = 1000;
  const half = (usd: number | undefined) =>
    usd === undefined ? undefined : usd * BATCH_PRICE_FACTOR;
  const deadline = settings.runDeadline;
  const remainingMs =
    deadline === undefined
      ? undefined
      : deadline instanceof Date
        ? deadline.getTime() - Date.now()
        : deadline;
  const auto = planAuto({
    items: n,
    remainingMs,
    realtimeMs: (k) => plannedRealtimeMs(model, k),
    batchMs: (k) => plannedBatchMs(turnaround.ms, k, perBatch, pollMinMs),
    realtimeCostUsd: e.unpriced > 0 ? undefined : e.cost.bound,
    batchPriceFactor: BATCH_PRICE_FACTOR,
    budgetUsd: settings.maxCost,
    sources: {
      realtime: `1.5x M*, ${formatDuration(model.latencyMs)} per call from ${model.latencySource}`,
      batch: turnaround.source,
    },
  });
  return {
    realtime: {
      plannedMs: plannedRealtimeMs(model, n),
      cost: { bound: e.cost.bound, expected: e.cost.expected },
    },
    batch: {
      plannedMs: turnaround.ms(Math.min(n, perBatch)),
      turnaroundSource: turnaround.source,
      batches: Math.ceil(n / perBatch),
      cost: { bound: e.cost.bound * BATCH_PRICE_FACTOR, expected: half(e.cost.expected) },
    },
    auto,
  };
}

function dryRunText(report: DryRunReport, settings: RunSettings, pricing: Pricing): string {
  const { items, estimate: e, latency, bound } = report;
  const lines = [
    "salvo run --dry-run: nothing was called.",
    `  ${items.total} items: ${items.calls} to call, ${items.done} already done, ${items.cached} from the cache, ${items.invalid} invalid input lines`,
  ];
  const expectedOut =
    e.tokens.outputExpected === undefined
      ? "expected unknown (no answers yet to learn their length from)"
      : `expected ${formatCount(e.tokens.outputExpected)} (from ${e.expectedSource})`;
  lines.push(
    `  tokens: ${formatCount(e.tokens.input)} in (by tokenizer); out at most ${formatCount(e.tokens.outputBound)} (max_tokens), ${expectedOut}`,
  );
  const priced = e.calls - e.unpriced;
  const expectedCost =
    e.cost.expected === undefined ? "" : `, expected ${formatUsd(e.cost.expected)}`;
  lines.push(
    priced > 0 || e.calls === 0
      ? `  cost: at most ${formatUsd(e.cost.bound)}${expectedCost}${e.unpriced > 0 ? `; ${e.unpriced} calls at an unknown price (${e.unpricedModels.join(", ")}) not included` : ""}`
      : `  cost: unknown: no price is known for ${e.unpricedModels.join(", ") || "these models"} (add it under pricing: in the config file)`,
  );
  for (const model of models(e, pricing)) lines.push(`    ${model}`);
  const limits = [
    typeof settings.concurrency === "number" ? `concurrency ${settings.concurrency}` : undefined,
    settings.rpm === undefined ? undefined : `${formatCount(settings.rpm)} requests/min`,
    settings.tpm === undefined ? undefined : `${formatCount(settings.tpm)} tokens/min`,
    settings.itpm === undefined ? undefined : `${formatCount(settings.itpm)} input tokens/min`,
    settings.otpm === undefined ? undefined : `${formatCount(settings.otpm)} output tokens/min`,
  ].filter(Boolean);
  if (bound !== undefined) {
    // Without a latency only the rate terms are known, and M* is at least what they give.
    lines.push(
      latency
        ? `  lower bound M* ${formatDuration(bound.boundMs)} (bound by ${bound.binding}) with ${limits.join(", ") || "no limit set"}; latency ${formatDuration(latency.ms)} per call from ${latency.source}`
        : `  lower bound M* at least ${formatDuration(bound.boundMs)} (bound by ${bound.binding}) with ${limits.join(", ")}; the latency per call is unknown (no answers yet), so the concurrency and latency terms are left out`,
    );
  } else if (items.calls > 0) {
    lines.push(
      "  lower bound M* unknown: the latency per call is unknown (no answers yet to learn it from) and no rate limit (--rpm, --tpm) is set; set them, or run some items and dry-run again",
    );
  }
  const backends = report.backends;
  if (backends !== undefined) {
    const cost = (c: { bound: number; expected: number | undefined }) =>
      `cost at most ${formatUsd(c.bound)}${c.expected === undefined ? "" : `, expected ${formatUsd(c.expected)}`}`;
    lines.push(
      `  real time:  about ${formatDuration(backends.realtime.plannedMs)} (1.5x M*); ${cost(backends.realtime.cost)}`,
      `  batch API:  about ${formatDuration(backends.batch.plannedMs)} (${backends.batch.turnaroundSource}; ${backends.batch.batches} batch${backends.batch.batches === 1 ? "" : "es"}); ${cost(backends.batch.cost)} (${Math.round(BATCH_PRICE_FACTOR * 100)}% of the real-time price)`,
      `  --backend auto${settings.runDeadline === undefined ? "" : " with this --run-deadline"} would choose ${backends.auto.mode}: ${backends.auto.reason}`,
    );
  }
  const budget = budgetNote(e, settings);
  if (budget) lines.push(`  ${budget}`);
  return `${lines.join("\n")}\n`;
}

/** The price used for each model the calls name. */
function models(e: BatchEstimateSummary, pricing: Pricing): string[] {
  return e.models.map((model) => {
    const found = pricing.priceOf(model);
    if (found === undefined) return `${model}: price unknown`;
    const { input, output, cachedInput } = found.price;
    const cached = cachedInput === undefined ? "" : `, $${cachedInput} cached in`;
    return `${model}: $${input} in, $${output} out${cached} per million tokens${found.model === model ? "" : ` (as ${found.model})`}`;
  });
}

/** What the budget would do to this run, by the bound and the expected figure. */
function budgetNote(e: BatchEstimateSummary, settings: RunSettings): string | undefined {
  const notes: string[] = [];
  if (settings.maxCost !== undefined) {
    const expected = e.cost.expected;
    const fits =
      e.cost.bound <= settings.maxCost
        ? "fits even if every answer uses its max_tokens"
        : expected !== undefined && expected <= settings.maxCost
          ? "is expected to fit, but not if every answer uses its max_tokens"
          : `is expected to stop the run after about ${Math.floor((settings.maxCost / (expected ?? e.cost.bound)) * e.calls)} of ${e.calls} calls`;
    notes.push(`--max-cost ${formatUsd(settings.maxCost)} ${fits}`);
  }
  if (settings.maxTokensTotal !== undefined) {
    const bound = e.tokens.input + e.tokens.outputBound;
    const expected =
      e.tokens.outputExpected === undefined ? undefined : e.tokens.input + e.tokens.outputExpected;
    const fits =
      bound <= settings.maxTokensTotal
        ? "fits even if every answer uses its max_tokens"
        : expected !== undefined && expected <= settings.maxTokensTotal
          ? "is expected to fit, but not if every answer uses its max_tokens"
          : `is expected to stop the run after about ${Math.floor((settings.maxTokensTotal / (expected ?? bound)) * e.calls)} of ${e.calls} calls`;
    notes.push(`--max-tokens-total ${formatCount(settings.maxTokensTotal)} ${fits}`);
  }
  return notes.length > 0 ? `budget: ${notes.join("; ")}` : undefined;
}

/** `salvo run --dry-run` for these settings: what the run would call, with its estimate. */
export async function dryRunJob(job: {
  input: string;
  output: string;
  settings: RunSettings;
  io: CliIo;
}): Promise<number> {
  const { input, output, settings, io } = job;
  const shape = await batchFileShape(input, {
    model: settings.model,
    providerName: settings.provider,
  });
  const endpoint =
    settings.sim !== undefined
      ? `simulator:${settings.sim}`
      : baseUrlFor(shape, { baseUrl: settings.baseUrl, env: io.env });
  return dryRun({
    input,
    output,
    settings,
    io,
    // Only its estimate is used: no key is read and nothing is called.
    provider:
      shape === "anthropic"
        ? new AnthropicProvider({ apiKey: "unused" })
        : new OpenAIProvider({ apiKey: "unused" }),
    pricing: new Pricing(settings.pricing),
    runKey: batchRunKey(settings.provider, endpoint),
    endpoint,
    simulator:
      settings.sim === undefined
        ? undefined
        : resolveSimConfig(await loadScenario(scenarioPath(settings.sim))),
  });
}

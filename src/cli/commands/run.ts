// `salvo run <input.jsonl> --output <results.jsonl>`: the main job. Parses options, builds the
// provider and the Salvo client, and hands the file to the batch driver; progress and the summary
// come from the scheduler's events. Resumes after a crash or Ctrl-C by running the same command.
import { writeFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { Option } from "commander";
import { openCallLog } from "../../audit/call-log.ts";
import { type BatchItem, isInvalid } from "../../batch/input-line.ts";
import { readInput } from "../../batch/input-reader.ts";
import { itemOutcomeFrom } from "../../batch/output-line.ts";
import type { BatchEvent, BatchSummary } from "../../batch/run-batch.ts";
import { runBatch } from "../../batch/run-batch.ts";
import { budgetReport, spendLines, summaryText } from "../../batch/summary-text.ts";
import type { CallOutcome, SalvoResult } from "../../cache/call-layer.ts";
import { ResponseCache } from "../../cache/response-cache.ts";
import { realClock } from "../../core/clock.ts";
import { Budget } from "../../cost/budget.ts";
import { modelOf, Pricing } from "../../cost/pricing.ts";
import { ConfigError } from "../../errors.ts";
import { RunMetrics, type RunSummary } from "../../metrics/run-metrics.ts";
import { formatDuration } from "../../progress/format.ts";
import { createProgress } from "../../progress/progress-renderer.ts";
import { AnthropicProvider } from "../../providers/anthropic-provider.ts";
import { OpenAIProvider } from "../../providers/openai-provider.ts";
import type { ProviderResult } from "../../providers/provider.ts";
import { Salvo } from "../../salvo.ts";
import { loadScenario, resolveSimConfig, type SimHandle } from "../../sim/index.ts";
import { cliCommand } from "../cli-command.ts";
import { dryRun } from "../dry-run.ts";
import { type CliIo, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED } from "../io.ts";
import {
  addCallOptions,
  BASE_URL_ENV,
  type ProviderName,
  providerFromSettings,
  type RunSettings,
  readConfigFile,
  resolveRunSettings,
  scenarioPath,
  schedulerOptionsFromSettings,
  startSimulatorFor,
} from "../run-settings.ts";

/** The SDKs' default base URLs: what a fingerprint names when no other is set. */
const DEFAULT_BASE_URL: Record<ProviderName, string> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
};

/** A budget (--max-cost, --max-tokens-total) stopped admitting: rerun with a larger one to finish. */
export const EXIT_BUDGET_EXCEEDED = 3;

export type RunJob = {
  input: string;
  output: string;
  settings: RunSettings;
  io: CliIo;
  /** Called with the batch summary and run summary when the run ends (for the demo). */
  onDone?: ((batch: BatchSummary, run: RunSummary) => void) | undefined;
  /** A simulator already running (the demo's), instead of `settings.sim`. */
  simulator?: SimHandle | undefined;
};

/**
 * What names the server in request fingerprints: the base URL the run talks to, or the
 * simulator's scenario (its port changes every run; its answers depend on the scenario).
 */
function endpointOf(name: ProviderName, settings: RunSettings, env: CliIo["env"]): string {
  if (settings.sim !== undefined) return `simulator:${settings.sim}`;
  return settings.baseUrl ?? env[BASE_URL_ENV[name]] ?? DEFAULT_BASE_URL[name];
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

/** The provider the input's first valid line is shaped for; undefined if none is valid or readable. */
async function inputProvider(
  input: string,
  defaultModel: string | undefined,
): Promise<ProviderName | undefined> {
  try {
    for await (const entry of readInput(input, { defaultModel })) {
      if (!isInvalid(entry)) return entry.provider;
    }
  } catch {
    // An unreadable input is reported by the batch driver, with its path.
  }
  return undefined;
}

/** The provider the input is shaped for; a --provider that disagrees is a ConfigError. */
async function shapeOf(input: string, settings: RunSettings): Promise<ProviderName> {
  const shape = (await inputProvider(input, settings.model)) ?? settings.provider ?? "openai";
  if (settings.provider !== undefined && settings.provider !== shape) {
    throw new ConfigError({
      field: "--provider",
      expected: `${shape}, the provider the input's lines are shaped for`,
      got: settings.provider,
      where: input,
    });
  }
  return shape;
}

function statusOf(value: unknown): number | undefined {
  const status = (value as { status?: unknown } | undefined)?.status;
  return typeof status === "number" ? status : undefined;
}

/** Runs one batch job; resolves to the exit code. */
export async function runJob(job: RunJob): Promise<number> {
  const { input, output, settings, io } = job;
  const shape = await shapeOf(input, settings);
  const pricing = new Pricing(settings.pricing);
  const runKey = {
    provider: settings.provider,
    baseUrl: settings.sim ? "simulator" : settings.baseUrl,
  };
  if (settings.dryRun) {
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
      pricing,
      runKey,
      endpoint: endpointOf(shape, settings, io.env),
      simulator:
        settings.sim === undefined
          ? undefined
          : resolveSimConfig(await loadScenario(scenarioPath(settings.sim))),
    });
  }
  if (settings.maxCost !== undefined) {
    const unpriced = await unpricedLine(input, settings.model, pricing);
    if (unpriced !== undefined)
      throw new ConfigError({
        field: "--max-cost",
        expected: `a price for every model the input names; add ${JSON.stringify(unpriced.model ?? "MODEL")} under pricing: {MODEL: {input, output}} (USD per million tokens) in the config file`,
        got: unpriced.model,
        where: `${input}:${unpriced.line}`,
      });
  }
  const cache =
    settings.cache === undefined
      ? undefined
      : await ResponseCache.open(settings.cache, {
          ttlMs: settings.cacheTtlMs,
          onError: (error, operation) =>
            io.stderr.write(
              `salvo: warning: response cache ${operation} failed in ${settings.cache}: ${(error as Error).message}\n`,
            ),
        });
  const budget =
    settings.maxCost === undefined && settings.maxTokensTotal === undefined
      ? undefined
      : new Budget({ maxCostUsd: settings.maxCost, maxTokens: settings.maxTokensTotal });
  const stderr = { write: (t: string) => io.stderr.write(t), isTTY: io.isTTY, columns: io.columns };
  const ownSim = job.simulator === undefined && settings.sim !== undefined;
  const sim =
    job.simulator ??
    (settings.sim !== undefined ? await startSimulatorFor(settings.sim) : undefined);

  let salvo: Salvo | undefined;
  let metrics: RunMetrics | undefined;
  const progress = createProgress(settings.progress, stderr);
  const inFlight = new Set<number>();
  const pending = new Map<number, AbortController>();
  let interrupted = false;
  let graceTimer: NodeJS.Timeout | undefined;
  const startedAt = realClock.now();

  // Ctrl-C: stop admitting at once (queued items are abandoned, to be run on resume), give calls
  // in flight `graceMs` to finish, then abort them too.
  const onInterrupt = () => {
    interrupted = true;
    io.stderr.write(
      `\nsalvo: interrupted: finishing ${inFlight.size} call(s) in flight (up to ${formatDuration(settings.graceMs)}); Ctrl-C again to stop now\n`,
    );
    for (const [index, controller] of pending)
      if (!inFlight.has(index)) controller.abort(io.signal.reason);
    graceTimer = setTimeout(() => {
      for (const controller of pending.values()) controller.abort(io.signal.reason);
    }, settings.graceMs);
  };
  io.signal.addEventListener("abort", onInterrupt, { once: true });

  const callLog = settings.audit
    ? await openCallLog(settings.audit, { content: settings.auditContent, env: io.env })
    : undefined;

  const start = (provider: ProviderName) => {
    salvo = new Salvo({
      provider: providerFromSettings(provider, settings, io.env, sim),
      ...schedulerOptionsFromSettings(settings),
      audit: callLog,
      cache,
      shareSamples: settings.cacheForce,
      budget,
      pricing,
      endpoint: endpointOf(provider, settings, io.env),
    });
    metrics = new RunMetrics({
      startedAt,
      usageOf: (value) => (value as ProviderResult).usage,
      costOf: (value) => (value as SalvoResult).cost?.usd,
      statusOf,
      limits: {
        concurrency: typeof settings.concurrency === "number" ? settings.concurrency : undefined,
        requestsPerMinute: settings.rpm,
        tokensPerMinute: settings.tpm,
        burstSeconds: settings.burstSeconds,
      },
    });
    const scheduler = salvo.scheduler;
    metrics.attach(scheduler);
    scheduler.on("started", (e) => inFlight.add(e.id as number));
    // Items are submitted with `id` = their input index.
    const ended = (e: { id: number | string }) => {
      inFlight.delete(e.id as number);
      // After Ctrl-C an attempt that failed is not retried: it is left to the resumed run.
      if (interrupted) pending.get(e.id as number)?.abort(io.signal.reason);
    };
    scheduler.on("attempt-failed", ended);
    scheduler.on("succeeded", ended);
    scheduler.on("failed", ended);
    for (const terminal of ["succeeded", "failed"] as const)
      scheduler.on(terminal, (e) => settledByScheduler.add(e.id as number));
    progress?.start(metrics, scheduler, () => realClock.now());
  };

  const onEvent = (event: BatchEvent) => {
    if (event.type === "scanned") metrics?.setTotal(event.scan.total);
    else if (event.type === "resumed") metrics?.addSkipped(event.doneInOutput);
    else if (event.type === "item" && event.source !== "executed") metrics?.addSkipped(1);
  };

  // Items the scheduler settled (its events counted them); the others were answered or refused
  // before it (cache, single-flight, budget) and are counted here.
  const settledByScheduler = new Set<number>();
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

  const execute = async (item: BatchItem, stop: AbortSignal) => {
    if (!salvo) throw new Error("salvo run: the client was not started");
    const controller = new AbortController();
    pending.set(item.index, controller);
    // A fatal batch error stops everything at once; an interrupt is handled by onInterrupt.
    const onStop = () => {
      if (!interrupted) controller.abort(stop.reason);
    };
    stop.addEventListener("abort", onStop, { once: true });
    try {
      const outcome = await salvo.settle(item.request, {
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

  let batch: BatchSummary;
  try {
    start(shape);
    batch = await runBatch({
      input,
      output,
      execute,
      fresh: settings.fresh,
      strict: settings.strict,
      defaultModel: settings.model,
      runKey,
      window: 4096,
      signal: io.signal,
      onEvent,
    });
  } finally {
    clearTimeout(graceTimer);
    io.signal.removeEventListener("abort", onInterrupt);
    progress?.stop();
    await salvo?.close();
    await callLog?.close();
    if (ownSim) await sim?.close();
  }
  const endedAt = realClock.now();
  const run = metrics?.summary(endedAt);
  if (run) {
    const limitsSet =
      typeof settings.concurrency === "number" ||
      [settings.rpm, settings.tpm, settings.itpm, settings.otpm].some((l) => l !== undefined);
    io.stdout.write(summaryText(batch, run, output, limitsSet, spendLines(run, cache, budget)));
    job.onDone?.(batch, run);
    if (settings.report) {
      const report = {
        input,
        output,
        settings: reportSettings(settings),
        batch,
        run,
        cache: cache === undefined ? undefined : { dir: cache.dir, ...cache.counters },
        budget: budget === undefined ? undefined : budgetReport(budget),
      };
      await writeFile(settings.report, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
    }
  }
  if (batch.interrupted || interrupted) {
    io.stderr.write(
      `salvo: stopped. Everything finished is saved; run the same command again to resume (add --fresh to start over).\n`,
    );
    return EXIT_INTERRUPTED;
  }
  if (budget?.exhausted) {
    io.stderr.write(
      `salvo: budget exhausted: ${budget.exhausted.message.replace(/ \(rerun .*\)$/, "")}. ${budget.refused} item(s) were not run (error code SALVO_BUDGET_EXCEEDED in the output); run the same command with a larger budget to run exactly those.\n`,
    );
    return EXIT_BUDGET_EXCEEDED;
  }
  return batch.failed + batch.invalid > 0 ? EXIT_SOME_FAILED : EXIT_OK;
}

/** Settings as written to a report: no secrets (the key's variable name only, never its value). */
function reportSettings(settings: RunSettings): Record<string, unknown> {
  return {
    ...settings,
    deadlineMs: Number.isFinite(settings.deadlineMs) ? settings.deadlineMs : null,
    cacheTtlMs:
      settings.cacheTtlMs !== undefined && Number.isFinite(settings.cacheTtlMs)
        ? settings.cacheTtlMs
        : null,
  };
}

export function runCommand(io: CliIo) {
  const command = cliCommand("run", io)
    .description(
      "run every request of a JSONL batch file (OpenAI Batch, cookbook request bodies, or Anthropic batch lines) within the rate limits, writing one answer per line in input order; rerun the same command to resume",
    )
    .argument("<input>", "the input JSONL file")
    .requiredOption("-o, --output <file>", "the output JSONL file (its journal is <file>.journal)")
    .addOption(
      new Option("--provider <name>", "openai or anthropic (default: from the input's shape)"),
    )
    .option(
      "--model <model>",
      "model for lines that name none (default: none; such lines are errors)",
    );
  return addCallOptions(command)
    .option("--report <file>", "also write the summary as JSON to this file (default: none)")
    .option("--fresh", "start over: remove the output and its journal (default: resume)")
    .option(
      "--strict",
      "check every input line first and stop before any call if one is bad (default: bad lines get an error line)",
    )
    .option(
      "--cache <dir>",
      "response cache: answers of identical requests are stored here and reused without a call; only temperature-0 requests (and embeddings) unless --cache-force (default: none)",
    )
    .option(
      "--cache-ttl <duration>",
      "how long a cached answer stays fresh, e.g. 168h (default: forever)",
    )
    .option(
      "--cache-force",
      "also cache and share requests whose answer is a sample (temperature > 0 or unset) (default: off)",
    )
    .option(
      "--max-cost <usd>",
      "stop admitting calls before the run's cost would pass this many US dollars; the rest are marked SALVO_BUDGET_EXCEEDED and run by a rerun (default: none)",
    )
    .option(
      "--max-tokens-total <n>",
      "the same for tokens (input + output) over the whole run (default: none)",
    )
    .option(
      "--dry-run",
      "check the input and print the calls, tokens, cost and M* the run would have; call nothing (default: off)",
    )
    .addHelpText(
      "after",
      "\nEnvironment: SALVO_CONCURRENCY, SALVO_RPM, SALVO_TPM, SALVO_ITPM, SALVO_OTPM, SALVO_TIMEOUT, SALVO_DEADLINE,\n" +
        "SALVO_MAX_ATTEMPTS, SALVO_PROGRESS, SALVO_MODEL, SALVO_BASE_URL, SALVO_PROVIDER, ... set the same settings.\n" +
        "Exit codes: 0 every item succeeded; 1 some failed (the output is still complete); 2 usage or input error;\n" +
        "3 a budget (--max-cost, --max-tokens-total) stopped the run (rerun with a larger one to finish);\n" +
        "130 interrupted (rerun to resume).\n",
    )
    .action(async (input: string, options: Record<string, unknown>) => {
      const { output, config, ...flags } = options;
      if (flags.sim === true) flags.sim = "demo";
      const file =
        typeof config === "string"
          ? { path: config, values: await readConfigFile(config) }
          : undefined;
      const settings = resolveRunSettings({ flags, env: io.env, file });
      io.exitCode = await runJob({
        input: resolvePath(input),
        output: resolvePath(String(output)),
        settings,
        io,
      });
    });
}

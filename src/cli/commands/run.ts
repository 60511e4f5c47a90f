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
import { realClock } from "../../core/clock.ts";
import { ConfigError } from "../../errors.ts";
import { RunMetrics, type RunSummary } from "../../metrics/run-metrics.ts";
import { formatCount, formatDuration } from "../../progress/format.ts";
import { createProgress } from "../../progress/progress-renderer.ts";
import { AnthropicProvider } from "../../providers/anthropic-provider.ts";
import { OpenAIProvider } from "../../providers/openai-provider.ts";
import type { Provider, ProviderResult } from "../../providers/provider.ts";
import { Salvo } from "../../salvo.ts";
import { loadScenario, type SimHandle, startSimulator } from "../../sim/index.ts";
import { cliCommand } from "../cli-command.ts";
import { type CliIo, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED } from "../io.ts";
import {
  type ProviderName,
  RUN_DEFAULTS,
  type RunSettings,
  readConfigFile,
  resolveRunSettings,
} from "../run-settings.ts";
import { SCENARIO_DIR } from "./sim.ts";

/** The key used against the in-process simulator: never a real one. */
const SIM_KEY = "sk-salvo-simulator-local";

const DEFAULT_KEY_ENV: Record<ProviderName, string> = {
  openai: "OPENAI_API_KEY",
  anthropic: "ANTHROPIC_API_KEY",
};
const BASE_URL_ENV: Record<ProviderName, string> = {
  openai: "OPENAI_BASE_URL",
  anthropic: "ANTHROPIC_BASE_URL",
};

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

async function simulatorFor(scenario: string): Promise<SimHandle> {
  const isPath = scenario.includes("/") || scenario.endsWith(".yaml") || scenario.endsWith(".json");
  const path = isPath ? scenario : `${SCENARIO_DIR}${scenario}.yaml`;
  return startSimulator(await loadScenario(path));
}

function providerFor(
  name: ProviderName,
  settings: RunSettings,
  env: CliIo["env"],
  sim: SimHandle | undefined,
): Provider {
  if (sim) {
    return name === "anthropic"
      ? new AnthropicProvider({ baseURL: sim.origin, apiKey: SIM_KEY })
      : new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: SIM_KEY });
  }
  const keyEnv = settings.apiKeyEnv ?? DEFAULT_KEY_ENV[name];
  const baseURL = settings.baseUrl ?? env[BASE_URL_ENV[name]];
  let apiKey = env[keyEnv];
  if (apiKey === undefined || apiKey === "") {
    // Local servers (vLLM, Ollama, llama.cpp) take any key; real providers need one.
    if (baseURL === undefined) {
      throw new ConfigError({
        field: keyEnv,
        expected: `the ${name} API key in the environment variable ${keyEnv} (or --api-key-env NAME, or --base-url for a local server, or --sim)`,
        got: undefined,
        where: "environment",
      });
    }
    apiKey = "not-needed";
  }
  return name === "anthropic"
    ? new AnthropicProvider({ baseURL, apiKey })
    : new OpenAIProvider({ baseURL, apiKey });
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

function statusOf(value: unknown): number | undefined {
  const status = (value as { status?: unknown } | undefined)?.status;
  return typeof status === "number" ? status : undefined;
}

/** Runs one batch job; resolves to the exit code. */
export async function runJob(job: RunJob): Promise<number> {
  const { input, output, settings, io } = job;
  const stderr = { write: (t: string) => io.stderr.write(t), isTTY: io.isTTY, columns: io.columns };
  const ownSim = job.simulator === undefined && settings.sim !== undefined;
  const sim =
    job.simulator ?? (settings.sim !== undefined ? await simulatorFor(settings.sim) : undefined);

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
    const limits = {
      concurrency: settings.concurrency,
      requestsPerMinute: settings.rpm,
      tokensPerMinute: settings.tpm,
      inputTokensPerMinute: settings.itpm,
      outputTokensPerMinute: settings.otpm,
      burstSeconds: settings.burstSeconds,
    };
    salvo = new Salvo({
      provider: providerFor(provider, settings, io.env, sim),
      ...limits,
      timeoutMs: settings.timeoutMs,
      deadlineMs: settings.deadlineMs,
      retry: { maxAttempts: settings.maxAttempts },
      audit: callLog,
    });
    metrics = new RunMetrics({
      startedAt,
      usageOf: (value) => (value as ProviderResult).usage,
      statusOf,
      limits: {
        concurrency: typeof limits.concurrency === "number" ? limits.concurrency : undefined,
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
    progress?.start(metrics, scheduler, () => realClock.now());
  };

  const onEvent = (event: BatchEvent) => {
    if (event.type === "scanned") metrics?.setTotal(event.scan.total);
    else if (event.type === "resumed") metrics?.addSkipped(event.doneInOutput);
    else if (event.type === "item" && event.source !== "executed") metrics?.addSkipped(1);
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
      return itemOutcomeFrom(outcome);
    } finally {
      stop.removeEventListener("abort", onStop);
      pending.delete(item.index);
    }
  };

  let batch: BatchSummary;
  try {
    const shapeProvider =
      (await inputProvider(input, settings.model)) ?? settings.provider ?? "openai";
    if (settings.provider !== undefined && settings.provider !== shapeProvider) {
      throw new ConfigError({
        field: "--provider",
        expected: `${shapeProvider}, the provider the input's lines are shaped for`,
        got: settings.provider,
        where: input,
      });
    }
    start(shapeProvider);
    batch = await runBatch({
      input,
      output,
      execute,
      fresh: settings.fresh,
      strict: settings.strict,
      defaultModel: settings.model,
      runKey: { provider: settings.provider, baseUrl: sim ? "simulator" : settings.baseUrl },
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
    io.stdout.write(summaryText(batch, run, output, limitsSet));
    job.onDone?.(batch, run);
    if (settings.report) {
      const report = { input, output, settings: reportSettings(settings), batch, run };
      await writeFile(settings.report, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
    }
  }
  if (batch.interrupted || interrupted) {
    io.stderr.write(
      `salvo: stopped. Everything finished is saved; run the same command again to resume (add --fresh to start over).\n`,
    );
    return EXIT_INTERRUPTED;
  }
  return batch.failed + batch.invalid > 0 ? EXIT_SOME_FAILED : EXIT_OK;
}

/** Settings as written to a report: no secrets (the key's variable name only, never its value). */
function reportSettings(settings: RunSettings): Record<string, unknown> {
  return {
    ...settings,
    deadlineMs: Number.isFinite(settings.deadlineMs) ? settings.deadlineMs : null,
  };
}

function summaryText(
  batch: BatchSummary,
  run: RunSummary,
  output: string,
  limitsSet: boolean,
): string {
  const lines: string[] = [];
  const failedCodes = Object.entries(run.failedByCode)
    .map(([code, n]) => `${code} ${n}`)
    .join(", ");
  lines.push(
    `salvo run: ${batch.total} items in ${formatDuration(run.makespanMs)}: ${batch.succeeded} succeeded, ${batch.failed} failed${failedCodes ? ` (${failedCodes})` : ""}, ${batch.invalid} invalid input lines`,
  );
  if (batch.resumedFromOutput + batch.resumedFromJournal > 0) {
    lines.push(
      `  resumed: ${batch.resumedFromOutput} already in the output, ${batch.resumedFromJournal} from the journal; ${batch.executed} calls made now`,
    );
  }
  const statuses = Object.entries(run.byStatus)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, n]) => `${status === "none" ? "no answer" : status} ${n}`)
    .join(", ");
  lines.push(
    `  attempts ${run.attempts}, retries ${run.retries}, 429s ${run.rateLimited}, paused ${formatDuration(run.pausedMs)}; final status: ${statuses || "none"}`,
  );
  if (run.latencyMs.count > 0) {
    lines.push(
      `  latency per call p50 ${formatDuration(run.latencyMs.p50)}, p95 ${formatDuration(run.latencyMs.p95)}, p99 ${formatDuration(run.latencyMs.p99)}; tokens ${formatCount(run.tokens.input)} in, ${formatCount(run.tokens.output)} out`,
    );
    const sequentialMs = run.latencyMs.mean * run.latencyMs.count;
    lines.push(
      `  throughput ${run.throughputPerSecond.toFixed(1)} calls/s; one at a time these calls would have taken about ${formatDuration(sequentialMs)}`,
    );
  }
  const { limit } = run;
  lines.push(
    limit.min === limit.max
      ? `  concurrency ${limit.final}`
      : `  concurrency adapted between ${limit.min} and ${limit.max}, ending at ${limit.final} (the report has its timeline)`,
  );
  if (run.bound && run.ratioToBound !== undefined) {
    if (!limitsSet) {
      lines.push(
        "  no concurrency or rate limit was set, so M* is only the longest call; set --rpm/--tpm (or a number for --concurrency) to compare with the physical bound",
      );
    } else {
      lines.push(
        `  lower bound M* ${formatDuration(run.bound.boundMs)} (bound by ${run.bound.binding}); this run took ${run.ratioToBound.toFixed(2)}x M*`,
      );
    }
  }

  lines.push(`  output: ${output}`);
  return `${lines.join("\n")}\n`;
}

export function runCommand(io: CliIo) {
  return cliCommand("run", io)
    .description(
      "run every request of a JSONL batch file (OpenAI Batch, cookbook request bodies, or Anthropic batch lines) within the rate limits, writing one answer per line in input order; rerun the same command to resume",
    )
    .argument("<input>", "the input JSONL file")
    .requiredOption("-o, --output <file>", "the output JSONL file (its journal is <file>.journal)")
    .addOption(
      new Option("--provider <name>", "openai or anthropic (default: from the input's shape)"),
    )
    .option(
      "--base-url <url>",
      "API base URL (default: $OPENAI_BASE_URL / $ANTHROPIC_BASE_URL, else the provider's)",
    )
    .option(
      "--api-key-env <name>",
      "environment variable holding the API key (default: OPENAI_API_KEY / ANTHROPIC_API_KEY)",
    )
    .option(
      "--model <model>",
      "model for lines that name none (default: none; such lines are errors)",
    )
    .option(
      "--concurrency <n|auto>",
      `calls in flight at once (default: ${RUN_DEFAULTS.concurrency}), or auto: adaptive, from 429s, overloads and per-token latency (experimental: it can settle too low when answer lengths vary)`,
    )
    .option("--rpm <n>", "requests per minute (default: none; learned from rate-limit headers)")
    .option(
      "--tpm <n>",
      "tokens per minute, prompt + max_tokens (default: none; learned from headers)",
    )
    .option("--itpm <n>", "Anthropic input tokens per minute (default: none)")
    .option("--otpm <n>", "Anthropic output tokens per minute (default: none)")
    .option(
      "--burst-seconds <s>",
      `seconds of each per-minute limit that may go at once (default: ${RUN_DEFAULTS.burstSeconds})`,
    )
    .option(
      "--max-attempts <n>",
      `attempts per item, the first included (default: ${RUN_DEFAULTS.maxAttempts})`,
    )
    .option("--timeout <duration>", "per-attempt timeout, e.g. 30s, 2m (default: 2m)")
    .option("--deadline <duration>", "per-item deadline across all attempts (default: none)")
    .option(
      "--grace <duration>",
      "after Ctrl-C, how long calls in flight may finish (default: 30s)",
    )
    .option(
      "--progress <mode>",
      "auto, bar, plain, json or none (default: auto: a bar on a terminal, plain lines otherwise)",
    )
    .option("--report <file>", "also write the summary as JSON to this file (default: none)")
    .option("--fresh", "start over: remove the output and its journal (default: resume)")
    .option(
      "--strict",
      "check every input line first and stop before any call if one is bad (default: bad lines get an error line)",
    )
    .option(
      "--sim [scenario]",
      "run against the built-in simulator: a scenario name in scenarios/ or a file (default scenario: demo)",
    )
    .option(
      "--audit <file>",
      "call log: one hash-chained record per attempt, checked by `salvo verify` (default: none)",
    )
    .option(
      "--audit-content <mode>",
      "what the call log keeps of requests and answers: full, hash or none (default: hash)",
    )
    .option(
      "--config <file>",
      "read settings from a JSON or YAML file (flags and SALVO_* variables override it)",
    )
    .addHelpText(
      "after",
      "\nEnvironment: SALVO_CONCURRENCY, SALVO_RPM, SALVO_TPM, SALVO_ITPM, SALVO_OTPM, SALVO_TIMEOUT, SALVO_DEADLINE,\n" +
        "SALVO_MAX_ATTEMPTS, SALVO_PROGRESS, SALVO_MODEL, SALVO_BASE_URL, SALVO_PROVIDER, ... set the same settings.\n" +
        "Exit codes: 0 every item succeeded; 1 some failed (the output is still complete); 2 usage or input error;\n" +
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

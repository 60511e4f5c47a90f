// `salvo run <input.jsonl> --output <results.jsonl>`: parses the options, hands the file to the
// library's `runBatchFile`, prints what it reports and exits with a code that says how it ended.
// Resumes after a crash or Ctrl-C by running the same command. Heavy modules (the SDKs, the
// tokenizer, the simulator) load only when the command runs, so `--help` stays fast.
import { resolve as resolvePath } from "node:path";
import { Option } from "commander";
import type { BatchFileEvent, BatchFileResult } from "../../batch/run-batch-file.ts";
import type { RunSettings } from "../../config/run-settings.ts";
import type { SimHandle } from "../../sim/index.ts";
import { addCallOptions } from "../call-options.ts";
import { cliCommand } from "../cli-command.ts";
import { type CliIo, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED } from "../io.ts";

/** A budget (--max-cost, --max-tokens-total) stopped admitting: rerun with a larger one to finish. */
export const EXIT_BUDGET_EXCEEDED = 3;

export type RunJob = {
  input: string;
  output: string;
  settings: RunSettings;
  io: CliIo;
  /** A simulator already running (the demo's), instead of `settings.sim`. */
  simulator?: SimHandle | undefined;
};

/** The exit code for how a run ended, and what to tell the user about it. */
function exitOf(result: BatchFileResult, io: CliIo): number {
  if (result.status === "interrupted") {
    io.stderr.write(
      "salvo: stopped. Everything finished is saved; run the same command again to resume (add --fresh to start over).\n",
    );
    return EXIT_INTERRUPTED;
  }
  if (result.status === "budget-exhausted") {
    const refused = result.budget?.refused ?? 0;
    io.stderr.write(
      `salvo: budget exhausted: ${refused} item(s) were not run (error code SALVO_BUDGET_EXCEEDED in the output); run the same command with a larger budget to run exactly those.\n`,
    );
    return EXIT_BUDGET_EXCEEDED;
  }
  const { batch } = result;
  if (batch.total === 0)
    io.stderr.write(`salvo: ${result.input} has no requests (no non-blank line): nothing to do.\n`);
  return batch.failed + batch.invalid > 0 ? EXIT_SOME_FAILED : EXIT_OK;
}

/** Runs one batch job; resolves to the exit code. */
export async function runJob(job: RunJob): Promise<number> {
  const { input, output, settings, io } = job;
  const { formatDuration } = await import("../../progress/format.ts");
  const { createProgress } = await import("../../progress/progress-renderer.ts");
  const { runBatchFile } = await import("../../batch/run-batch-file.ts");
  const { backendOptionsFromSettings, distributedOptionsFromSettings } = await import(
    "../../config/run-options.ts"
  );
  const {
    batchClientFromSettings,
    providerFromSettings,
    schedulerOptionsFromSettings,
    startSimulatorFor,
  } = await import("../../config/run-settings.ts");
  if (settings.dryRun) {
    const { dryRunJob } = await import("../dry-run.ts");
    return dryRunJob({ input, output, settings, io });
  }
  const stderr = { write: (t: string) => io.stderr.write(t), isTTY: io.isTTY, columns: io.columns };
  const progress = createProgress(settings.progress, stderr);
  // Messages go through the display while it is live, so that it never draws over them.
  const say = (text: string) => (progress ? progress.print(text) : io.stderr.write(text));
  const onEvent = (event: BatchFileEvent) => {
    if (event.type === "interrupted")
      say(
        `\nsalvo: interrupted: finishing ${event.inFlight} call(s) in flight (up to ${formatDuration(event.graceMs)}); Ctrl-C again to stop now\n`,
      );
    else if (event.type === "grace-expired")
      say(
        `salvo: the grace period ended: ${event.aborted} call(s) still in flight were stopped (they run on resume)\n`,
      );
    else if (event.type === "warning") say(`salvo: warning: ${event.message}\n`);
    else if (event.type === "backend-plan")
      say(`salvo: --backend ${event.backend}: ${event.plan.reason}\n`);
    else if (event.type === "batch-submitted")
      say(`salvo: batch ${event.batchId} submitted: ${event.requests} requests\n`);
    else if (event.type === "batch-reattached")
      say(
        `salvo: re-attached to batch ${event.batchId} (${event.requests} requests), submitted by an earlier run\n`,
      );
    else if (event.type === "batch-status")
      say(`salvo: batch ${event.batchId}: ${event.status}, ${event.done}/${event.total} done\n`);
    else if (event.type === "batch-ended")
      say(
        `salvo: batch ${event.batchId} ${event.outcome}: ${event.answered} answered, ${event.errored} errored, ${event.notRun} not run\n`,
      );
    else if (event.type === "batch-cancelled")
      say(`salvo: cancelling batch ${event.batchId}: ${event.reason}\n`);
    else if (event.type === "batch-abandoned")
      say(
        `salvo: batch ${event.batchId} did not end in time: its ${event.requests} remaining lines run in real time\n`,
      );
  };
  let sim = job.simulator;
  const ownSim = sim === undefined && settings.sim !== undefined;
  try {
    if (ownSim) sim = await startSimulatorFor(settings.sim!);
    const redis = settings.redis;
    if (redis !== undefined) {
      // Scale-out: this process coordinates; worker processes (here and elsewhere) call.
      const { runDistributedBatch } = await import("../../distributed/run-distributed-batch.ts");
      const result = await runDistributedBatch({
        ...distributedOptionsFromSettings(settings, redis, sim),
        input,
        output,
        progress,
        signal: io.signal,
        onEvent,
        env: io.env,
      });
      io.stdout.write(result.text);
      return exitOf(result, io);
    }
    const result = await runBatchFile({
      ...backendOptionsFromSettings(settings, sim),
      batchClient: (shape) => batchClientFromSettings(shape, settings, io.env, sim),
      ...schedulerOptionsFromSettings(settings),
      input,
      output,
      provider: (shape) => providerFromSettings(shape, settings, io.env, sim),
      providerName: settings.provider,
      model: settings.model,
      endpoint: settings.sim === undefined ? settings.baseUrl : `simulator:${settings.sim}`,
      fresh: settings.fresh,
      retryFailed: settings.retryFailed,
      strict: settings.strict,
      graceMs: settings.graceMs,
      audit: settings.audit,
      auditContent: settings.auditContent,
      cache: settings.cache,
      cacheTtlMs: settings.cacheTtlMs,
      cacheForce: settings.cacheForce,
      maxCostUsd: settings.maxCost,
      maxTokensTotal: settings.maxTokensTotal,
      pricing: settings.pricing,
      report: settings.report,
      progress,
      signal: io.signal,
      onEvent,
      env: io.env,
    });
    io.stdout.write(result.text);
    return exitOf(result, io);
  } finally {
    if (ownSim) await sim?.close();
  }
}

export function runCommand(io: CliIo) {
  const command = cliCommand("run", io)
    .description(
      "run every request of a JSONL batch file (OpenAI Batch, cookbook request bodies, or Anthropic batch lines) within the rate limits, writing one answer per line in input order; rerun the same command to resume, to run again the lines that failed transiently, and the lines whose input changed",
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
    .option(
      "--report <file>",
      "also write the summary to this file: JSON, or a page with charts when it ends in .html (default: none)",
    )
    .option(
      "--fresh",
      "start over: remove the output and its journal, which must be Salvo's own (default: resume)",
    )
    .option(
      "--retry-failed",
      "a rerun also runs again the lines that failed for good (400, 401, 403, 404, insufficient_quota, context too long); lines that failed transiently (timeouts, network errors, 5xx, 429/529 after their attempts) are always run again, answers never (default: off)",
    )
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
      "--redis <url>",
      "scale out: share the limits and this batch's lines through this Redis, e.g. redis://10.0.0.5:6379; this process coordinates and writes the output, worker processes call (default: none, one process)",
    )
    .option(
      "--workers <n>",
      "with --redis: worker processes to start on this machine; `salvo worker --redis URL` on other machines joins them (default: 1; 0 leaves the lines to other machines)",
    )
    .option(
      "--worker-concurrency <n>",
      "with --redis: the most calls one worker process has in flight (default: the shared --concurrency)",
    )
    .option(
      "--worker-timeout <duration>",
      "with --redis: how long a dead worker's lines and shared slots stay held before other workers take them over (default: 10s)",
    )
    .option(
      "--dry-run",
      "check the input and print the calls, tokens, cost and M* the run would have, in real time and in the provider's batch API; call nothing (default: off)",
    )
    .option(
      "--backend <name>",
      "realtime: every call now, within the limits; batch: the provider's batch API at half the price (lines it errors or expires run in real time while --run-deadline allows); auto: chosen from --run-deadline, M*, the prices and --max-cost, possibly split (default: realtime)",
    )
    .option(
      "--run-deadline <when>",
      "when the whole run should be done: a duration from its first start (6h; a rerun keeps the start) or a time (2025-06-01T09:00:00Z); --backend auto places the lines by it, and a batch not back in time is cancelled for real time to finish (not --deadline, which bounds each call) (default: none)",
    )
    .option(
      "--batch-turnaround <duration>",
      "how long the provider's batch API is expected to take, for --backend auto (default: 24h, its completion window; with --sim, the scenario's)",
    )
    .option(
      "--batch-size <n>",
      "most requests per provider batch (default: the provider's limit, 50,000 OpenAI, 100,000 Anthropic)",
    )
    .addHelpText(
      "after",
      "\nEnvironment: SALVO_CONCURRENCY, SALVO_RPM, SALVO_TPM, SALVO_ITPM, SALVO_OTPM, SALVO_TIMEOUT, SALVO_DEADLINE,\n" +
        "SALVO_MAX_ATTEMPTS, SALVO_PROGRESS, SALVO_MODEL, SALVO_BASE_URL, SALVO_PROVIDER, ... set the same settings.\n" +
        "Exit codes: 0 every item succeeded; 1 some failed (the output is still complete); 2 usage or input error\n" +
        "(nothing was run); 3 a budget (--max-cost, --max-tokens-total) stopped the run (rerun with a larger one to\n" +
        "finish); 70 internal error (a bug: please report it); 130 interrupted (rerun to resume); 141 the reader of\n" +
        "the output went away (a closed pipe).\n",
    )
    .action(async (input: string, options: Record<string, unknown>) => {
      const { readConfigFile, resolveRunSettings } = await import("../../config/run-settings.ts");
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

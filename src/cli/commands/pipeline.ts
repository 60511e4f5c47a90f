// `salvo pipeline <file> --input <data> --run-dir <dir>`: runs a pipeline declared in YAML or
// JSON (stages of prompt templates over the input and upstream outputs) on the same engine as
// the library's `runPipeline`. Each task starts as soon as its inputs are ready; the run
// directory keeps every finished task, so the same command after a crash, kill -9 or Ctrl-C
// resumes and pays for nothing twice.
import { readFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { Option } from "commander";
import { ConfigError, RunDirRefusedError } from "../../errors.ts";
import type { ProviderResult } from "../../providers/provider.ts";
import type { Salvo } from "../../salvo.ts";
import type { SimHandle } from "../../sim/index.ts";
import { addCallOptions } from "../call-options.ts";
import { cliCommand } from "../cli-command.ts";
import { type CliIo, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE } from "../io.ts";
import type { RunSettings } from "../run-settings.ts";

/** The pipeline's input: a JSON or YAML file (`.json` is read as JSON, anything else as YAML). */
async function readInput(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      {
        field: "--input",
        expected: "a readable JSON or YAML file",
        got: path,
        where: "command line",
      },
      { cause: error },
    );
  }
  try {
    const { parse: parseYaml } = await import("yaml");
    return path.endsWith(".json") ? JSON.parse(text) : (parseYaml(text) ?? {});
  } catch (error) {
    throw new ConfigError(
      {
        field: "--input",
        expected: "valid JSON or YAML",
        got: (error as Error).message.split("\n")[0],
        where: path,
      },
      { cause: error },
    );
  }
}

export type PipelineJob = {
  file: string;
  input: string | undefined;
  runDir: string;
  flags: Record<string, unknown>;
  config: string | undefined;
  io: CliIo;
};

/** Runs one pipeline file; resolves to the exit code. */
export async function runPipelineJob(job: PipelineJob): Promise<number> {
  const { io } = job;
  // Loaded here, not at the top: `salvo --help` must not load the SDKs and the tokenizer.
  const { openCallLog } = await import("../../audit/call-log.ts");
  const { realClock } = await import("../../core/clock.ts");
  const { RunMetrics, rateLimitsInForce } = await import("../../metrics/run-metrics.ts");
  const { loadPipelineFile } = await import("../../pipeline/pipeline-file.ts");
  const { reportSummary } = await import("../../pipeline/pipeline-report.ts");
  const { runPipeline } = await import("../../pipeline/run-pipeline.ts");
  const { formatDuration } = await import("../../progress/format.ts");
  const { createProgress } = await import("../../progress/progress-renderer.ts");
  const { ProgressGroups } = await import("../../progress/progress-groups.ts");
  const { Salvo } = await import("../../salvo.ts");
  const {
    providerFromSettings,
    readConfigFile,
    resolveRunSettings,
    schedulerOptionsFromSettings,
    startSimulatorFor,
  } = await import("../run-settings.ts");
  const file =
    job.config === undefined
      ? undefined
      : { path: job.config, values: await readConfigFile(job.config) };
  const settings = resolveRunSettings({ flags: job.flags, env: io.env, file });
  refuseRunOnlySettings(settings, job.config);
  const input = job.input === undefined ? {} : await readInput(job.input);
  const pipeline = await loadPipelineFile(job.file, {
    provider: settings.provider,
    model: settings.model,
  });
  const stderr = { write: (t: string) => io.stderr.write(t), isTTY: io.isTTY, columns: io.columns };
  let sim: SimHandle | undefined;
  let salvo: Salvo | undefined;
  const callLog = settings.audit
    ? await openCallLog(settings.audit, { content: settings.auditContent, env: io.env })
    : undefined;
  // One line per stage under the overall bar. A task's id is `stage/key`: the scheduler's events
  // give each stage's calls in flight, retries, 429s and ends, as they give the overall line's
  // (so the lines stay in sync); tasks that end without the scheduler are told from onTask.
  const stages = new Set<string>();
  const groups = new ProgressGroups({
    groupOf: ({ id }) => {
      const stage = String(id).split("/", 1)[0]!;
      return stages.has(stage) ? stage : undefined;
    },
    noun: "stages",
  });
  const progress = createProgress(settings.progress, stderr, { groups });
  // Messages go through the display while it is live, so that it never draws over them.
  const say = (text: string) => (progress ? progress.print(text) : io.stderr.write(text));
  const onInterrupt = () => {
    say(
      `\nsalvo: interrupted: no new task starts; tasks in flight may finish (up to ${formatDuration(settings.graceMs)})\n`,
    );
    progress?.note(
      `interrupted: finishing tasks in flight (up to ${formatDuration(settings.graceMs)})`,
    );
  };
  io.signal.addEventListener("abort", onInterrupt, { once: true });
  try {
    if (settings.sim !== undefined) sim = await startSimulatorFor(settings.sim);
    salvo = new Salvo({
      provider: providerFromSettings(pipeline.provider, settings, io.env, sim),
      ...schedulerOptionsFromSettings(settings),
      audit: callLog,
    });
    const scheduler = salvo.scheduler;
    const metrics = new RunMetrics({
      startedAt: realClock.now(),
      usageOf: (value) => (value as ProviderResult | undefined)?.usage,
      limits: {
        concurrency: typeof settings.concurrency === "number" ? settings.concurrency : undefined,
        requestsPerMinute: settings.rpm,
        tokensPerMinute: settings.tpm,
        burstSeconds: settings.burstSeconds,
      },
      limitsInForce: () => rateLimitsInForce(scheduler),
    });
    metrics.attach(scheduler);
    // Tasks the scheduler settled (its events counted them); the others ended without it.
    const settledByScheduler = new Set<string>();
    for (const terminal of ["succeeded", "failed"] as const)
      scheduler.on(terminal, (e) => settledByScheduler.add(String(e.id)));
    const result = await runPipeline(pipeline, {
      salvo,
      input,
      runDir: job.runDir,
      fresh: settings.fresh,
      signal: io.signal,
      graceMs: settings.graceMs,
      onStart: (info) => {
        metrics.setTotal(info.tasks);
        for (const stage of info.stages) {
          stages.add(stage.name);
          groups.declare(stage.name, stage.tasks);
        }
        progress?.start(metrics, scheduler, () => realClock.now());
      },
      onTask: (record) => {
        // A task that ended without the scheduler (reused, skipped, shared, refused before a
        // call) is counted here; the scheduler's events counted the others.
        if (settledByScheduler.delete(record.task)) return;
        if (record.reused) groups.ended(record.stage, "resumed");
        else groups.ended(record.stage, record.status === "cancelled" ? "stopped" : record.status);
        if (record.status === "succeeded" || record.status === "skipped") metrics.addSkipped(1);
        else
          metrics.settledOutside({
            ok: false,
            error: record.error,
            stopped: record.status === "cancelled",
          });
      },
    });
    progress?.stop();
    io.stderr.write(reportSummary(result.report, result.runDir));
    if (result.status === "interrupted") {
      io.stderr.write(
        "salvo: stopped. Every finished task is kept; run the same command again to resume (add --fresh to start over).\n",
      );
      return EXIT_INTERRUPTED;
    }
    return result.status === "succeeded" ? EXIT_OK : EXIT_SOME_FAILED;
  } catch (error) {
    // A run directory made for another pipeline or input: nothing was run, like bad usage.
    if (!(error instanceof RunDirRefusedError)) throw error;
    io.stderr.write(`salvo: ${error.message} [${error.code}]\n`);
    return EXIT_USAGE;
  } finally {
    progress?.stop();
    io.signal.removeEventListener("abort", onInterrupt);
    await salvo?.close();
    await callLog?.close();
    await sim?.close();
  }
}

export function pipelineCommand(io: CliIo) {
  const command = cliCommand("pipeline", io)
    .description(
      "run a pipeline declared in YAML or JSON: stages of LLM tasks over an input, each task as soon as its inputs are ready, with token-budgeted context; rerun the same command to resume from its run directory",
    )
    .argument("<file>", "the pipeline file (YAML or JSON)")
    .option("-i, --input <file>", "the pipeline's input data, JSON or YAML (default: {})")
    .requiredOption(
      "-d, --run-dir <dir>",
      "the run directory: metadata.json, journal.jsonl, outputs/, report.json (a rerun resumes it)",
    )
    .option("--fresh", "start over: delete the run directory's files first (default: resume)")
    .addOption(
      new Option(
        "--provider <name>",
        "openai or anthropic: the shape of the requests (default: the file's provider, else openai)",
      ),
    )
    .option("--model <model>", "model for tasks whose pipeline file names none (default: none)");
  return addCallOptions(command)
    .addHelpText(
      "after",
      "\nEnvironment: SALVO_CONCURRENCY, SALVO_RPM, SALVO_TPM, SALVO_TIMEOUT, SALVO_MODEL, SALVO_BASE_URL, ... set the same settings.\n" +
        "Exit codes: 0 every task succeeded; 1 some failed or were skipped, or a stage failed the run;\n" +
        "2 usage or input error (nothing was run); 130 interrupted (rerun to resume).\n",
    )
    .action(async (file: string, options: Record<string, unknown>) => {
      const { input, runDir, config, ...flags } = options;
      if (flags.sim === true) flags.sim = "demo";
      io.exitCode = await runPipelineJob({
        file: resolvePath(file),
        input: typeof input === "string" ? resolvePath(input) : undefined,
        runDir: resolvePath(String(runDir)),
        flags,
        config: typeof config === "string" ? config : undefined,
        io,
      });
    });
}

/**
 * Settings `salvo run` honours and pipelines do not yet: a budget, the response cache and the
 * dry run. One of them set (in a config file shared with `salvo run`, or SALVO_MAX_COST) must
 * not be silently ignored: a budget that does not apply spends money.
 */
function refuseRunOnlySettings(settings: RunSettings, config: string | undefined): void {
  const unsupported: Array<[keyof RunSettings, string]> = [
    ["maxCost", "--max-cost / SALVO_MAX_COST / maxCost"],
    ["maxTokensTotal", "--max-tokens-total / SALVO_MAX_TOKENS_TOTAL / maxTokensTotal"],
    ["cache", "--cache / SALVO_CACHE / cache"],
    ["dryRun", "--dry-run / SALVO_DRY_RUN / dryRun"],
  ];
  for (const [key, names] of unsupported) {
    const value = settings[key];
    if (value === undefined || value === false) continue;
    throw new ConfigError({
      field: names,
      expected:
        "not set: salvo pipeline does not support budgets, the response cache or dry runs yet (salvo run does)",
      got: value,
      where: config ?? "settings",
    });
  }
}

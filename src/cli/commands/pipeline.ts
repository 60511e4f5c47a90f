// `salvo pipeline <file> --input <data> --run-dir <dir>`: runs a pipeline declared in YAML or
// JSON (stages of prompt templates over the input and upstream outputs) on the same engine as
// the library's `runPipeline`. Each task starts as soon as its inputs are ready; the run
// directory keeps every finished task, so the same command after a crash, kill -9 or Ctrl-C
// resumes and pays for nothing twice.
import { resolve as resolvePath } from "node:path";
import { Option } from "commander";
import type { RunSettings } from "../../config/run-settings.ts";
import { ConfigError, RunDirRefusedError } from "../../errors.ts";
import type { ProgressRenderer } from "../../progress/progress-renderer.ts";
import type { SimHandle } from "../../sim/index.ts";
import { addCallOptions } from "../call-options.ts";
import { cliCommand } from "../cli-command.ts";
import { type CliIo, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE } from "../io.ts";

export type PipelineJob = {
  file: string;
  input: string | undefined;
  runDir: string;
  flags: Record<string, unknown>;
  config: string | undefined;
  io: CliIo;
};

/** Runs one pipeline file through the library's `runPipelineFile`; resolves to the exit code. */
export async function runPipelineJob(job: PipelineJob): Promise<number> {
  const { io } = job;
  // Loaded here, not at the top: `salvo --help` must not load the SDKs and the tokenizer.
  const { runPipelineFile } = await import("../../pipeline/run-pipeline-file.ts");
  const { formatDuration } = await import("../../progress/format.ts");
  const { createProgress } = await import("../../progress/progress-renderer.ts");
  const {
    clientSettings,
    providerFromSettings,
    readConfigFile,
    resolveRunSettings,
    schedulerOptionsFromSettings,
    startSimulatorFor,
  } = await import("../../config/run-settings.ts");
  const file =
    job.config === undefined
      ? undefined
      : { path: job.config, values: await readConfigFile(job.config) };
  const settings = resolveRunSettings({ flags: job.flags, env: io.env, file });
  refuseRunOnlySettings(settings, job.config);
  const stderr = { write: (t: string) => io.stderr.write(t), isTTY: io.isTTY, columns: io.columns };
  let progress: ProgressRenderer | undefined;
  // Messages go through the display while it is live, so that it never draws over them.
  const say = (text: string) => (progress ? progress.print(text) : io.stderr.write(text));
  let sim: SimHandle | undefined;
  try {
    if (settings.sim !== undefined) sim = await startSimulatorFor(settings.sim);
    const result = await runPipelineFile({
      ...schedulerOptionsFromSettings(settings),
      file: job.file,
      input: job.input === undefined ? {} : { path: job.input },
      runDir: job.runDir,
      provider: (shape) => providerFromSettings(shape, settings, io.env, sim),
      providerName: settings.provider,
      model: settings.model,
      // A named client has its own entry under clients:; with --sim, one without a baseUrl
      // uses the simulator.
      client: (client) => {
        const own = clientSettings(client);
        return {
          provider: providerFromSettings(
            client.provider,
            own,
            io.env,
            own.baseUrl === undefined ? sim : undefined,
          ),
          ...schedulerOptionsFromSettings(own),
        };
      },
      fresh: settings.fresh,
      graceMs: settings.graceMs,
      audit: settings.audit,
      auditContent: settings.auditContent,
      progress: (groups) => {
        progress = createProgress(settings.progress, stderr, { groups });
        return progress;
      },
      signal: io.signal,
      onEvent: (event) =>
        say(
          `\nsalvo: interrupted: no new task starts; tasks in flight may finish (up to ${formatDuration(event.graceMs)})\n`,
        ),
      env: io.env,
    });
    io.stderr.write(result.text);
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
      "the run directory: metadata.json, journal.jsonl, outputs/, report.json and report.html (a rerun resumes it)",
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

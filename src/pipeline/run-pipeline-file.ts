// `salvo pipeline` as a library call: a pipeline file (YAML or JSON) over an input, with one
// Salvo client for the tasks that name none and one per named upstream under `clients:`, the
// call log, run metrics, progress with a line per stage, and a graceful stop; returns the result
// and the summary `salvo pipeline` prints. The CLI only parses its arguments, prints and exits.
import { readFile, stat } from "node:fs/promises";
import { openCallLog } from "../audit/call-log.ts";
import { type Clock, realClock } from "../core/clock.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { SchedulerOptions } from "../core/scheduler-options.ts";
import { ConfigError } from "../errors.ts";
import { RunMetrics, rateLimitsInForce } from "../metrics/run-metrics.ts";
import { formatDuration } from "../progress/format.ts";
import { ProgressGroups } from "../progress/progress-groups.ts";
import type { ProgressRenderer } from "../progress/progress-renderer.ts";
import type { Provider, ProviderResult } from "../providers/provider.ts";
import { type ProviderName, providerFromEnv } from "../providers/provider-from-env.ts";
import { Salvo } from "../salvo.ts";
import { type FileClient, loadPipelineFile } from "./pipeline-file.ts";
import { reportSummary } from "./pipeline-report.ts";
import { type PipelineResult, runPipeline } from "./run-pipeline.ts";

export type PipelineFileEvent =
  /** The signal fired: no new task starts; tasks in flight have `graceMs` to finish. */
  { type: "interrupted"; graceMs: number };

export type RunPipelineFileOptions = Omit<SchedulerOptions, "window"> & {
  /** The pipeline file, YAML or JSON (`salvo pipeline`'s format). */
  file: string;
  /** The pipeline's input: a value, or `{path}` of a JSON or YAML file. @default {} */
  input?: unknown;
  /** The run directory: a rerun on it reuses every finished task. */
  runDir: string;
  /**
   * The default client's provider (tasks that name no client): a provider, or a function of the
   * API the file's requests are shaped for. @default `providerFromEnv(shape, {env})`
   */
  provider?: Provider | ((shape: ProviderName) => Provider) | undefined;
  /** The API the default client's requests are shaped for. @default the file's, else openai */
  providerName?: ProviderName | undefined;
  /** The model for tasks whose file names none. @default none */
  model?: string | undefined;
  /**
   * A named client's options, from its entry under `clients:` (`salvo run`'s config-file names).
   * @default `clientFromSettings`-style: its provider from the environment, its own limits
   */
  client?: ((client: FileClient) => { provider: Provider } & SchedulerOptions) | undefined;
  /** Start the run directory over. @default false */
  fresh?: boolean | undefined;
  /** After the signal fires, how long tasks in flight may finish, ms. @default 30_000 */
  graceMs?: number | undefined;
  /** The call log's path, shared by every client. @default none */
  audit?: string | undefined;
  /** What the call log keeps of requests and answers. @default "hash" */
  auditContent?: "full" | "hash" | "none" | undefined;
  /** Makes the progress display, given the per-stage groups to show. @default none */
  progress?: ((groups: ProgressGroups) => ProgressRenderer | undefined) | undefined;
  /** Stops the run gracefully; a rerun resumes it. */
  signal?: AbortSignal | undefined;
  onEvent?: ((event: PipelineFileEvent) => void) | undefined;
  /** Where variables are read (keys, the call log's redaction). @default process.env */
  env?: Record<string, string | undefined> | undefined;
};

export type PipelineFileResult = PipelineResult & {
  /** The summary as `salvo pipeline` prints it. */
  text: string;
};

/** A pipeline's input file: `.json` is read as JSON, anything else as YAML. */
async function readInputFile(path: string): Promise<unknown> {
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

/**
 * Runs a pipeline file on its input; resolves once every task has ended or the run was stopped.
 * Rejects before any call on a bad file, input or option (ConfigError), a refused run directory
 * (RunDirRefusedError) or a run directory in use (RunLockedError).
 */
export async function runPipelineFile(
  options: RunPipelineFileOptions,
): Promise<PipelineFileResult> {
  const {
    file,
    input: inputOption,
    runDir,
    provider: providerOption,
    providerName,
    model,
    client: clientOptions,
    fresh,
    graceMs = 30_000,
    audit,
    auditContent,
    progress: makeProgress,
    signal,
    onEvent,
    env = process.env,
    ...schedulerOptions
  } = options;
  const clock: Clock = schedulerOptions.clock ?? realClock;
  const existing = await stat(runDir).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory())
    throw new ConfigError({
      field: "--run-dir",
      expected: "a directory (or a path where one can be made), not a file",
      got: runDir,
      where: "command line",
    });
  const input =
    inputOption !== null && typeof inputOption === "object" && "path" in inputOption
      ? await readInputFile(String((inputOption as { path: unknown }).path))
      : (inputOption ?? {});
  const pipeline = await loadPipelineFile(file, { provider: providerName, model });
  const callLog =
    audit === undefined ? undefined : await openCallLog(audit, { content: auditContent, env });
  let salvo: Salvo | undefined;
  const clients: Record<string, Salvo> = {};
  // One line per stage under the overall bar. A task's id is `stage/key`: the schedulers' events
  // give each stage's calls in flight, retries, 429s and ends, as they give the overall line's,
  // so the lines stay in sync; tasks that end without a scheduler are told from onTask.
  const stages = new Set<string>();
  const groups = new ProgressGroups({
    groupOf: ({ id }) => {
      const stage = String(id).split("/", 1)[0]!;
      return stages.has(stage) ? stage : undefined;
    },
    noun: "stages",
  });
  const progress = makeProgress?.(groups);
  const onInterrupt = () => {
    onEvent?.({ type: "interrupted", graceMs });
    progress?.note(`interrupted: finishing tasks in flight (up to ${formatDuration(graceMs)})`);
  };
  signal?.addEventListener("abort", onInterrupt, { once: true });
  try {
    if (pipeline.usesDefaultClient || pipeline.clients.length === 0) {
      const provider =
        typeof providerOption === "function"
          ? providerOption(pipeline.provider)
          : (providerOption ?? providerFromEnv(pipeline.provider, { env }));
      salvo = new Salvo({ ...schedulerOptions, provider, audit: callLog });
    }
    for (const client of pipeline.clients) {
      const own = clientOptions ? clientOptions(client) : await defaultClientOptions(client, env);
      clients[client.name] = new Salvo({ clock: schedulerOptions.clock, ...own, audit: callLog });
    }
    const schedulers = [salvo, ...Object.values(clients)].flatMap((s) => (s ? [s.scheduler] : []));
    // Progress and metrics hear every client's scheduler.
    const events = {
      on: ((event, listener) => {
        const offs = schedulers.map((s) => s.on(event, listener));
        return () => {
          for (const off of offs) off();
        };
      }) as Scheduler["on"],
    };
    const metrics = new RunMetrics({
      startedAt: clock.now(),
      usageOf: (value) => (value as ProviderResult | undefined)?.usage,
      limits: {
        concurrency:
          typeof schedulerOptions.concurrency === "number"
            ? schedulerOptions.concurrency
            : undefined,
        requestsPerMinute: schedulerOptions.requestsPerMinute,
        tokensPerMinute: schedulerOptions.tokensPerMinute,
        burstSeconds: schedulerOptions.burstSeconds,
      },
      limitsInForce: () => rateLimitsInForce(schedulers[0]!),
    });
    for (const scheduler of schedulers) metrics.attach(scheduler);
    const settledByScheduler = new Set<string>();
    for (const terminal of ["succeeded", "failed"] as const)
      events.on(terminal, (e) => settledByScheduler.add(String(e.id)));
    const result = await runPipeline(pipeline, {
      salvo,
      clients,
      input,
      runDir,
      fresh,
      signal,
      graceMs,
      clock: schedulerOptions.clock,
      onStart: (info) => {
        metrics.setTotal(info.tasks);
        for (const stage of info.stages) {
          stages.add(stage.name);
          groups.declare(stage.name, stage.tasks);
        }
        progress?.start(metrics, events, () => clock.now());
      },
      onTask: (record) => {
        // A task that ended without a scheduler (reused, skipped, shared, refused before a
        // call) is counted here; the schedulers' events counted the others.
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
    return { ...result, text: reportSummary(result.report, result.runDir) };
  } finally {
    progress?.stop();
    signal?.removeEventListener("abort", onInterrupt);
    await salvo?.close();
    for (const client of Object.values(clients)) await client.close();
    await callLog?.close();
  }
}

/** A named client as `salvo pipeline` builds it: its settings checked, its key from `env`. */
async function defaultClientOptions(
  client: FileClient,
  env: Record<string, string | undefined>,
): Promise<{ provider: Provider } & SchedulerOptions> {
  const { clientSettings, schedulerOptionsFromSettings } = await import(
    "../config/run-settings.ts"
  );
  const settings = clientSettings(client);
  return {
    provider: providerFromEnv(client.provider, {
      apiKeyEnv: settings.apiKeyEnv,
      baseUrl: settings.baseUrl,
      env,
    }),
    ...schedulerOptionsFromSettings(settings),
  };
}

// Runs a pipeline: every task goes to its upstream's scheduler the moment its inputs are ready
// (its dependencies ended; there is no barrier but the declared ones), with its critical-path
// rank as its priority. LLM tasks go through a `Salvo` client (retries, rate limits, audit all
// apply): the run's default one, or the named client the task says (one per upstream, each with
// its own limits, so upstreams overlap item by item); function tasks run on the same schedulers. A task's dependants start only once its record is in
// the run directory's journal, so a rerun after a crash reuses every task that had finished and
// never pairs a dependant with an answer that was not kept.
import { type Clock, realClock } from "../core/clock.ts";
import type { Outcome } from "../core/outcome.ts";
import type { Scheduler } from "../core/scheduler.ts";
import {
  ConfigError,
  DependencyFailedError,
  PipelineStoppedError,
  RunDirRefusedError,
  SalvoError,
  TaskFailedError,
} from "../errors.ts";
import { ganttTasks, renderHtmlReport } from "../metrics/report-html.ts";
import type { ProviderRequest, ProviderResult } from "../providers/provider.ts";
import { type ChatLike, estimatePromptTokens } from "../providers/token-estimate.ts";
import type { Salvo } from "../salvo.ts";
import { answerText } from "./answer-text.ts";
import { assembleContext, type ContextReport, type ContextSection } from "./context-budget.ts";
import {
  type ContextInput,
  describeDefinition,
  type PipelineDefinition,
  type TaskInput,
  type UpstreamResult,
} from "./pipeline-definition.ts";
import { buildReport, countTasks, type PipelineReport } from "./pipeline-report.ts";
import { jsonSha256, RunDir } from "./run-dir.ts";
import { buildTaskGraph, type TaskGraph, type TaskNode } from "./task-graph.ts";
import { errorInfo, type RunStatus, type TaskRecord } from "./task-record.ts";

export type RunPipelineOptions<I> = {
  /**
   * The default client: LLM tasks that name no `client` go through it, and function tasks that
   * name none run on its scheduler. @default none (then every task must name a client)
   */
  salvo?: Salvo | undefined;
  /** The scheduler for function tasks when there is no `salvo`. @default salvo.scheduler */
  scheduler?: Scheduler | undefined;
  /**
   * Named clients, each one upstream (a provider, base URL and key; a custom async function
   * counts as one) with its own scheduler, limits and adaptive controller. A task that says
   * `client: "name"` goes through that one, so the limit of a slow upstream (a document
   * extractor that queues) never throttles a fast one (the LLM), and a statement's LLM call
   * starts the moment its extraction is done. @default none
   */
  clients?: Readonly<Record<string, Salvo>> | undefined;
  /** The pipeline's input. */
  input: I;
  /**
   * The run directory: metadata.json, one output file per task, the journal and report.json. A
   * rerun on it reuses every task that succeeded. @default none (nothing written, no resume)
   */
  runDir?: string | undefined;
  /** Delete the run directory's files first and run everything. @default false */
  fresh?: boolean | undefined;
  /**
   * Stops the run: tasks not started are cancelled at once, tasks in flight get `graceMs` to
   * finish, then are aborted. Every finished task is kept; a rerun resumes.
   */
  signal?: AbortSignal | undefined;
  /** After `signal`, how long tasks in flight may finish, ms. @default 0 */
  graceMs?: number | undefined;
  /** The scheduler's clock (the run's timings are read from it). @default realClock */
  clock?: Clock | undefined;
  /**
   * `critical-path`: among ready tasks, the one with the longest chain of expected durations to
   * the end goes first. `fifo`: in the order they became ready (for comparison).
   * @default "critical-path"
   */
  order?: "critical-path" | "fifo" | undefined;
  /**
   * Called once the graph is built and the run directory opened, before any task starts: the
   * tasks in all, those the journal may reuse, and each stage with its tasks, in declaration
   * order (a task's id is `stage/key`; stage names have no `/`).
   */
  onStart?:
    | ((info: {
        tasks: number;
        reusable: number;
        stages: Array<{ name: string; tasks: number }>;
      }) => void)
    | undefined;
  /** Called as each task ends (reused ones included), after its record is written. */
  onTask?: ((record: TaskRecord) => void) | undefined;
};

export type PipelineResult = {
  status: RunStatus;
  /** Every task's record by id (`stage/key`); tasks never started are `cancelled`. */
  records: Map<string, TaskRecord>;
  report: PipelineReport;
  /** The run directory, if there is one. */
  runDir: string | undefined;
};

/**
 * Runs `definition` on `options.input` and resolves once every task has ended (or the run was
 * stopped). Never rejects for a task's failure (see each record's `status` and `error`); rejects
 * for a bad definition (ConfigError, before any call), a refused run directory
 * (RunDirRefusedError) or a failed write to it.
 */
export async function runPipeline<I>(
  definition: PipelineDefinition<I>,
  options: RunPipelineOptions<I>,
): Promise<PipelineResult> {
  const graph = buildTaskGraph(definition, options.input);
  const clients = resolveClients(graph, options);
  let runDir: RunDir | undefined;
  let journaled = new Map<string, TaskRecord>();
  if (options.runDir !== undefined) {
    const opened = await RunDir.open(
      options.runDir,
      {
        name: definition.name,
        definitionSha256: jsonSha256(describeDefinition(definition), "definition"),
        inputSha256: jsonSha256(options.input, "input"),
      },
      {
        fresh: options.fresh,
        stages: graph.stages.map((s) => ({ name: s.name, tasks: s.ids.length })),
      },
    );
    runDir = opened.runDir;
    journaled = opened.journaled;
    for (const id of journaled.keys()) {
      if (!graph.nodes.has(id)) {
        await runDir.close();
        throw new RunDirRefusedError(
          options.runDir,
          `its journal has task ${id}, which this pipeline does not`,
        );
      }
    }
  }
  try {
    options.onStart?.({
      tasks: graph.order.length,
      reusable: journaled.size,
      stages: graph.stages.map((s) => ({ name: s.name, tasks: s.ids.length })),
    });
    const run = new PipelineRun(definition.name, graph, options, clients, runDir, journaled);
    return await run.execute();
  } finally {
    await runDir?.close();
  }
}

/** Where a task runs: the client its request goes through (LLM tasks) and the scheduler. */
type Upstream = { name: string | undefined; salvo: Salvo | undefined; scheduler: Scheduler };

/**
 * Each task's upstream, checked before anything runs: a task naming a client the run does not
 * have, an LLM task with no client at all, or a function task with no scheduler is a ConfigError.
 */
function resolveClients<I>(
  graph: TaskGraph<I>,
  options: RunPipelineOptions<I>,
): Map<string, Upstream> {
  const named = options.clients ?? {};
  const defaultScheduler = options.scheduler ?? options.salvo?.scheduler;
  const byTask = new Map<string, Upstream>();
  for (const node of graph.order) {
    const name = node.settings.client;
    const where = node.stageDefinition.source;
    if (name !== undefined) {
      const salvo = Object.hasOwn(named, name) ? named[name] : undefined;
      if (salvo === undefined)
        throw new ConfigError({
          field: `${node.id}: client`,
          expected: `one of the run's clients (${Object.keys(named).join(", ") || "none given: pass clients"})`,
          got: name,
          where,
        });
      byTask.set(node.id, { name, salvo, scheduler: salvo.scheduler });
      continue;
    }
    const llm = node.settings.request !== undefined;
    if (llm && options.salvo === undefined)
      throw new ConfigError({
        field: "salvo",
        expected: `a Salvo client (or a client named on the task): task ${node.id} is an LLM request`,
        got: undefined,
        where,
      });
    if (defaultScheduler === undefined)
      throw new ConfigError({
        field: "salvo",
        expected: `a Salvo client or a scheduler (or a client named on the task) for task ${node.id}`,
        got: undefined,
        where,
      });
    byTask.set(node.id, { name: undefined, salvo: options.salvo, scheduler: defaultScheduler });
  }
  return byTask;
}

/** The default context: a note for each dependency without a result, then each one's text. */
function defaultSections(deps: readonly UpstreamResult[]): ContextSection[] {
  return deps.map((dep, index) =>
    dep.ok
      ? {
          name: dep.task,
          priority: 1 + index,
          text: `## ${dep.task}${dep.fallback ? " (a fallback value, not an answer)" : ""}\n${dep.text}`,
        }
      : { name: dep.task, priority: 0, text: `## ${dep.task}\n(no result: ${dep.errorCode})` },
  );
}

function textOf(value: unknown): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function upstreamOf(record: TaskRecord): UpstreamResult {
  const succeeded = record.status === "succeeded";
  const hasFallback = !succeeded && record.fallback !== undefined;
  return {
    task: record.task,
    stage: record.stage,
    key: record.key,
    ok: succeeded || hasFallback,
    value: succeeded ? record.value : record.fallback,
    text: succeeded ? (record.text ?? textOf(record.value)) : textOf(record.fallback),
    fallback: hasFallback,
    errorCode: record.error?.code,
  };
}

/** The request with `max_tokens` set from the task's settings, unless it sets a limit itself. */
function withMaxTokens(request: ProviderRequest, maxTokens: number | undefined): ProviderRequest {
  const body = request.body;
  if (
    maxTokens === undefined ||
    body.max_tokens !== undefined ||
    body.max_completion_tokens !== undefined ||
    body.max_output_tokens !== undefined
  )
    return request;
  return { ...request, body: { ...body, max_tokens: maxTokens } };
}

function maxTokensOf(request: ProviderRequest): number | undefined {
  const { max_tokens, max_completion_tokens, max_output_tokens } = request.body;
  const value = max_tokens ?? max_completion_tokens ?? max_output_tokens;
  return typeof value === "number" ? value : undefined;
}

type Stop = { kind: "interrupted" | "failed"; error: unknown };

/** What one task's execution produced, before timings are added. */
type Ended = Omit<TaskRecord, "task" | "stage" | "key" | "reused" | "partial" | "missing">;

class PipelineRun<I> {
  readonly #name: string;
  readonly #graph: TaskGraph<I>;
  readonly #options: RunPipelineOptions<I>;
  /** Each task's upstream (client and scheduler). */
  readonly #upstreams: Map<string, Upstream>;
  readonly #runDir: RunDir | undefined;
  readonly #journaled: Map<string, TaskRecord>;
  readonly #clock: Clock;
  readonly #records = new Map<string, TaskRecord>();
  /** Dependencies not yet ended, per task. */
  readonly #waiting = new Map<string, number>();
  /** Tasks submitted and not settled: their controller and first start time. */
  readonly #inFlight = new Map<string, { controller: AbortController; startedAt?: number }>();
  readonly #stageLeft = new Map<string, number>();
  /** Launches not yet through their `#end` (a dependant's launch begins inside its parent's). */
  #active = 0;
  #stop: Stop | undefined;
  #fatal: unknown;
  #startedAt = 0;
  #graceTimer: unknown;
  #finished!: () => void;
  readonly #done = new Promise<void>((resolve) => {
    this.#finished = resolve;
  });

  constructor(
    name: string,
    graph: TaskGraph<I>,
    options: RunPipelineOptions<I>,
    upstreams: Map<string, Upstream>,
    runDir: RunDir | undefined,
    journaled: Map<string, TaskRecord>,
  ) {
    this.#name = name;
    this.#graph = graph;
    this.#options = options;
    this.#upstreams = upstreams;
    this.#runDir = runDir;
    this.#journaled = journaled;
    this.#clock = options.clock ?? realClock;
    for (const node of graph.order) this.#waiting.set(node.id, node.deps.length);
    for (const stage of graph.stages) this.#stageLeft.set(stage.name, stage.ids.length);
  }

  async execute(): Promise<PipelineResult> {
    this.#startedAt = this.#clock.now();
    const startedAt = new Date().toISOString();
    const schedulers = new Set([...this.#upstreams.values()].map((u) => u.scheduler));
    const offs = [...schedulers].map((scheduler) =>
      scheduler.on("started", (event) => {
        const entry = this.#inFlight.get(String(event.id));
        if (entry !== undefined && entry.startedAt === undefined) entry.startedAt = event.at;
      }),
    );
    const offStarted = () => {
      for (const off of offs) off();
    };
    const signal = this.#options.signal;
    const onAbort = () => this.#interrupt(signal?.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.#active++;
      this.#launchAll(this.#graph.order.filter((node) => node.deps.length === 0));
      this.#active--;
      this.#checkDone();
      await this.#done;
    } finally {
      offStarted();
      signal?.removeEventListener("abort", onAbort);
      if (this.#graceTimer !== undefined) this.#clock.clearTimeout(this.#graceTimer);
    }
    if (this.#fatal !== undefined) throw this.#fatal;

    const stopError = this.#stop?.error ?? new PipelineStoppedError("(unknown)");
    for (const node of this.#graph.order) {
      if (this.#records.has(node.id)) continue;
      this.#records.set(node.id, {
        ...this.#base(node, [], false),
        status: "cancelled",
        error: errorInfo(stopError),
        attempts: 0,
      });
    }
    const makespanMs = this.#lastEnd();
    const status: RunStatus =
      this.#stop?.kind ??
      ([...this.#records.values()].every((r) => r.status === "succeeded")
        ? "succeeded"
        : "partial");
    const report = buildReport({
      name: this.#name,
      status,
      startedAt,
      makespanMs,
      graph: this.#graph,
      records: this.#records,
    });
    if (this.#runDir) {
      await this.#runDir.updateMetadata({
        status,
        tasks: countTasks(this.#records.values(), this.#graph.order.length),
      });
      await this.#runDir.writeReport(report);
      await this.#runDir.writeHtmlReport(
        renderHtmlReport({
          title: `salvo pipeline ${this.#name}`,
          pipeline: { report, tasks: ganttTasks(this.#records, report) },
        }),
      );
    }
    return { status, records: this.#records, report, runDir: this.#runDir?.dir };
  }

  #lastEnd(): number {
    let last = 0;
    for (const record of this.#records.values())
      if (record.endedAtMs !== undefined) last = Math.max(last, record.endedAtMs);
    return last;
  }

  #base(node: TaskNode<I>, missing: string[], reused: boolean) {
    return {
      task: node.id,
      stage: node.stage,
      key: node.key,
      reused,
      partial: missing.length > 0,
      missing,
    };
  }

  /** Runs (or reuses, or skips) a task whose dependencies have all ended. */
  #launch(node: TaskNode<I>): void {
    this.#active++;
    void this.#run(node)
      .catch((error: unknown) => {
        this.#fatal ??= error;
        this.#halt({ kind: "failed", error });
      })
      .finally(() => {
        this.#active--;
        this.#checkDone();
      });
  }

  async #run(node: TaskNode<I>): Promise<void> {
    if (this.#stop) return; // left without a record: cancelled at the end
    // A journaled answer was built on its dependencies' results as they were then: it stands
    // only if every one of them is reused too. A dependency run again (one that had failed and
    // left a fallback or a gap) may answer differently, and its dependants must see that.
    const reused = this.#journaled.get(node.id);
    if (reused !== undefined && node.deps.every((id) => this.#records.get(id)?.reused === true)) {
      const { readyAtMs, startedAtMs, endedAtMs, waitMs, ...kept } = reused;
      await this.#end(node, { ...kept, reused: true });
      return;
    }
    const readyAt = this.#clock.now();
    const deps = node.deps.map((id) => upstreamOf(this.#records.get(id)!));
    const missing = deps.filter((d) => !d.ok);
    for (const dep of missing) {
      if (this.#graph.nodes.get(dep.task)!.onFailure !== "skip") continue;
      const error = new DependencyFailedError(node.id, dep.task, dep.errorCode ?? "no result");
      await this.#end(node, {
        ...this.#base(
          node,
          missing.map((d) => d.task),
          false,
        ),
        status: "skipped",
        error: errorInfo(error),
        attempts: 0,
      });
      return;
    }
    const controller = new AbortController();
    const entry: { controller: AbortController; startedAt?: number } = { controller };
    this.#inFlight.set(node.id, entry);
    const missingIds = missing.map((d) => d.task);
    // The record of a task as it ended now: its timings, then what it did.
    const complete = (ended: Ended): TaskRecord => {
      const now = this.#clock.now();
      const startedAt = entry.startedAt;
      ended.readyAtMs = readyAt - this.#startedAt;
      ended.endedAtMs = now - this.#startedAt;
      if (startedAt !== undefined) {
        ended.startedAtMs = startedAt - this.#startedAt;
        ended.waitMs = startedAt - readyAt;
        ended.latencyMs = now - startedAt;
      }
      return { ...this.#base(node, missingIds, false), ...ended };
    };
    // A success is journaled while its call still holds its slot: at a kill, no more answers
    // than the concurrency limit are paid for and not yet journaled.
    let kept: TaskRecord | undefined;
    let journaling: Promise<void> | undefined;
    // Once the task has its record (a deadline or an abort settled it first), a late answer is
    // not journaled beside it.
    let recorded = false;
    const keep = async (ended: Ended): Promise<void> => {
      if (kept === undefined && !recorded && ended.status === "succeeded") {
        kept = complete(ended);
        journaling = this.#runDir?.journal(kept);
      }
      // A failed journal write stops the run below (as a failed record would), not this call.
      await journaling?.catch(() => undefined);
    };
    let ended: Ended;
    try {
      ended = await this.#execute(node, keep, {
        input: this.#options.input,
        task: node.id,
        stage: node.stage,
        key: node.key,
        item: node.item,
        deps,
        partial: missing.length > 0,
        missing: missing.map((d) => d.task),
        maxTokens: node.settings.maxTokens,
        signal: controller.signal,
      });
    } finally {
      this.#inFlight.delete(node.id);
    }
    // A kept answer stands, whatever came after it (an answer that arrived is kept).
    if (kept !== undefined) {
      await journaling; // rethrows a failed journal write
      await this.#end(node, kept, true);
      return;
    }
    recorded = true;
    // An abort by the run (an interrupt, or another task's `fail`) cancels: the task did not fail.
    if (controller.signal.aborted && ended.status === "failed") {
      ended.status = "cancelled";
      ended.error = errorInfo(controller.signal.reason);
      delete ended.fallback;
    }
    await this.#end(node, complete(ended));
  }

  /** Assembles the context, runs the task on the scheduler, and describes how it ended. */
  async #execute(
    node: TaskNode<I>,
    keep: (ended: Ended) => Promise<void>,
    base: ContextInput<I>,
  ): Promise<Ended> {
    const { settings, stageDefinition: stage } = node;
    const upstream = this.#upstreams.get(node.id)!;
    const client = upstream.name === undefined ? {} : { client: upstream.name };
    let context: { text: string; report: ContextReport } | undefined;
    try {
      const sections = stage.context ? stage.context(base) : defaultSections(base.deps);
      context = assembleContext(sections, stage.contextTokenBudget);
    } catch (error) {
      return this.#failed(node, base, new TaskFailedError(node.id, "context", { cause: error }), 0);
    }
    const task: TaskInput<I> = { ...base, context: context.text };
    const options = {
      id: node.id,
      priority: this.#options.order === "fifo" ? 0 : node.rank,
      signal: base.signal,
    };
    const contextReport = base.deps.length > 0 || stage.context ? context.report : undefined;

    if (settings.request !== undefined) {
      let request: ProviderRequest;
      try {
        request = withMaxTokens(settings.request(task), settings.maxTokens);
      } catch (error) {
        const failure = new TaskFailedError(node.id, "request builder", { cause: error });
        return { ...(await this.#failed(node, base, failure, 0)), context: contextReport };
      }
      const llm = {
        ...client,
        context: contextReport,
        promptTokens: request.body.messages
          ? estimatePromptTokens(request.body as ChatLike)
          : undefined,
        maxTokens: maxTokensOf(request),
      };
      // An answer's text and value, or the parse's error: worked out once per answer (for
      // `keep`, then for the outcome the call settles with).
      type Parsed = { result: ProviderResult; text: string; truncated: boolean } & (
        | { ok: true; value: unknown }
        | { ok: false; error: unknown }
      );
      let parsed: Parsed | undefined;
      const parse = (result: ProviderResult): Parsed => {
        if (parsed?.result === result) return parsed;
        const answer = answerText(result.body);
        const common = { result, text: answer.text, truncated: answer.truncated };
        try {
          const value = settings.parse ? settings.parse(answer.text, result) : answer.text;
          parsed = { ...common, ok: true, value };
        } catch (error) {
          parsed = { ...common, ok: false, error };
        }
        return parsed;
      };
      const succeeded = (p: Parsed & { ok: true }, attempts: number): Ended => ({
        status: "succeeded",
        value: p.value,
        // The text only when the value is not the text itself (a `parse` made something else).
        ...(p.value === p.text ? {} : { text: p.text }),
        attempts,
        usage: p.result.usage && {
          inputTokens: p.result.usage.inputTokens,
          outputTokens: p.result.usage.outputTokens,
        },
        truncatedAnswer: p.truncated,
        ...llm,
      });
      const outcome = await upstream.salvo!.settle(request, {
        ...options,
        // Only the journal line is written in the slot; a parse failure's fallback (which may
        // call the provider itself) runs after the call, as before.
        keep: async (result, attempt) => {
          const p = parse(result);
          if (p.ok) await keep(succeeded(p, attempt));
        },
      });
      if (!outcome.ok)
        return { ...(await this.#failed(node, base, outcome.error, outcome.attempts)), ...llm };
      const p = parse(outcome.value);
      if (!p.ok) {
        const failure = new TaskFailedError(node.id, "parse", { cause: p.error });
        return { ...(await this.#failed(node, base, failure, outcome.attempts)), ...llm };
      }
      return succeeded(p, outcome.attempts);
    }

    const run = settings.run!;
    const outcome: Outcome<unknown> = await upstream.scheduler.settle(
      async (attempt) => {
        const value = await run(task);
        attempt.answered();
        // Journaled in the slot, as an LLM task's answer is.
        await keep({
          status: "succeeded",
          value,
          attempts: attempt.attempt,
          ...client,
          context: contextReport,
        });
        return value;
      },
      { ...options, cost: { requests: 0 } },
    );
    if (!outcome.ok) {
      const error =
        outcome.error instanceof SalvoError
          ? outcome.error
          : new TaskFailedError(node.id, "run", { cause: outcome.error });
      return {
        ...(await this.#failed(node, base, error, outcome.attempts)),
        ...client,
        context: contextReport,
      };
    }
    return {
      status: "succeeded",
      value: outcome.value,
      attempts: outcome.attempts,
      ...client,
      context: contextReport,
    };
  }

  /** A failed task's record: its error and, if its fallback gives one, the value to use instead. */
  async #failed(
    node: TaskNode<I>,
    base: ContextInput<I>,
    error: unknown,
    attempts: number,
  ): Promise<Ended> {
    let fallback: unknown;
    if (node.settings.fallback && !base.signal.aborted) {
      try {
        fallback = await node.settings.fallback(error, base);
      } catch {
        fallback = undefined; // a fallback that throws gives none; the failure stands
      }
    }
    return {
      status: "failed",
      error: errorInfo(error),
      attempts,
      ...(fallback === undefined ? {} : { fallback }),
    };
  }

  /** Keeps a task's record (written, journaled) and then releases its dependants. */
  async #end(node: TaskNode<I>, record: TaskRecord, journaled = false): Promise<void> {
    this.#records.set(node.id, record);
    await this.#runDir?.record(record, { journaled });
    this.#options.onTask?.(record);
    const left = this.#stageLeft.get(node.stage)! - 1;
    this.#stageLeft.set(node.stage, left);
    if (left === 0 && this.#runDir) void this.#writeProgress();
    const noResult =
      record.status === "skipped" || (record.status === "failed" && record.fallback === undefined);
    if (noResult && node.onFailure === "fail")
      this.#halt({ kind: "failed", error: new PipelineStoppedError(node.id) });
    const ready: Array<TaskNode<I>> = [];
    for (const id of node.dependants) {
      const waiting = this.#waiting.get(id)! - 1;
      this.#waiting.set(id, waiting);
      if (waiting === 0) ready.push(this.#graph.nodes.get(id)!);
    }
    this.#launchAll(ready);
  }

  /**
   * Launches tasks that became ready together, highest rank first: a task reaches the scheduler
   * synchronously, and one that finds a free slot starts at once, so the order of submission is
   * the priority among tasks that do not queue (the scheduler's priority orders those that do).
   */
  #launchAll(ready: Array<TaskNode<I>>): void {
    if (this.#options.order !== "fifo") ready.sort((a, b) => b.rank - a.rank);
    for (const node of ready) this.#launch(node);
  }

  /** Metadata at a stage's end: per stage, how many tasks have ended. */
  #writeProgress(): Promise<void> {
    const stages = this.#graph.stages.map((s) => ({
      name: s.name,
      tasks: s.ids.length,
      ended: s.ids.length - this.#stageLeft.get(s.name)!,
    }));
    const tasks = countTasks(this.#records.values(), this.#graph.order.length);
    return this.#runDir!.updateMetadata({ stages, tasks }).catch((error: unknown) => {
      this.#fatal ??= error;
    });
  }

  /** Stops the run: nothing new starts and every task in flight is aborted. */
  #halt(stop: Stop): void {
    if (this.#stop?.kind === "failed") return;
    this.#stop = stop;
    for (const { controller } of this.#inFlight.values()) controller.abort(stop.error);
  }

  /** Stops starting tasks; those in flight get the grace period, those still queued stop now. */
  #interrupt(reason: unknown): void {
    if (this.#stop) return;
    this.#stop = { kind: "interrupted", error: reason };
    for (const { controller, startedAt } of this.#inFlight.values())
      if (startedAt === undefined) controller.abort(reason);
    const graceMs = this.#options.graceMs ?? 0;
    const abortAll = () => {
      for (const { controller } of this.#inFlight.values()) controller.abort(reason);
    };
    if (graceMs <= 0) abortAll();
    else this.#graceTimer = this.#clock.setTimeout(abortAll, graceMs);
  }

  #checkDone(): void {
    if (this.#active > 0) return;
    this.#finished();
  }
}

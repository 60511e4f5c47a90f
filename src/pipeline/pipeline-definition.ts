// What a pipeline is: stages of tasks over one input. A task is an LLM request built from its
// inputs (`request`) or any async function (`run`); it depends on tasks of its own or earlier
// stages, item by item (`needs: ["parts/brake-pads"]`) or on whole stages (`after: ["stageA"]`,
// a barrier, for a stage that really aggregates). Everything here is data and functions; the
// graph is built from it and the input by `buildTaskGraph`, and run by `runPipeline`.
import type { ProviderRequest, ProviderResult } from "../providers/provider.ts";
import type { ContextSection } from "./context-budget.ts";

/**
 * What a task without a result (failed without a fallback, or skipped) means for its dependants:
 * `continue` runs them with partial inputs (marked: `partial`, `missing`, and a note in the
 * default context), `skip` skips them (and, through their own stages' policies, theirs), `fail`
 * stops the run (tasks in flight are aborted, tasks not started are cancelled).
 */
export type FailurePolicy = "continue" | "skip" | "fail";

export const FAILURE_POLICIES: readonly FailurePolicy[] = ["continue", "skip", "fail"];

/** A dependency's result, as its dependants see it. */
export type UpstreamResult = {
  /** `stage/key`. */
  task: string;
  stage: string;
  key: string;
  /** Whether there is a value: a real answer, or a fallback (`fallback: true`). */
  ok: boolean;
  /** The task's value (its parsed answer, what `run` returned, or its fallback); undefined if none. */
  value: unknown;
  /** The value as text: the answer's text, a string value, or JSON; "" when there is none. */
  text: string;
  /** The value is the task's fallback, not a real answer. */
  fallback: boolean;
  /** The error code when the task failed or was skipped. */
  errorCode: string | undefined;
};

/** What a task's functions receive, but the assembled context. */
export type ContextInput<I> = {
  /** The pipeline's input. */
  input: I;
  /** `stage/key`. */
  task: string;
  stage: string;
  key: string;
  /** The task's own item (e.g. one line item, one PDF), if it has one. */
  item: unknown;
  /** Every dependency's result, in order: `needs` first, then the tasks of the `after` stages. */
  deps: readonly UpstreamResult[];
  /** Some dependency has no result (its stage continues on failure): the inputs are partial. */
  partial: boolean;
  /** The tasks among `deps` without a result. */
  missing: readonly string[];
  /** The task's `max_tokens`, if set on the task or its stage. */
  maxTokens: number | undefined;
  /** Aborted when the task must stop (the run was interrupted or failed). */
  signal: AbortSignal;
};

/** What a task's request builder and `run` receive. */
export type TaskInput<I> = ContextInput<I> & {
  /**
   * The dependencies' results assembled into one text within the stage's `contextTokenBudget`
   * (sections from the stage's `context`, or one per dependency), "" when there are no deps.
   */
  context: string;
};

/** Settings a stage gives all its tasks and a task may override. */
export type TaskSettings<I> = {
  /** Builds the task's LLM request from its inputs; it goes through the `Salvo` client. */
  request?: ((task: TaskInput<I>) => ProviderRequest) | undefined;
  /** Any async work instead of an LLM request, run on the same scheduler (no request charged). */
  run?: ((task: TaskInput<I>) => unknown) | undefined;
  /**
   * Which of the run's named clients (`runPipeline`'s `clients`) the task goes through: its
   * request, or for a `run` task its slot. Each client is one upstream with its own scheduler,
   * limits and adaptive controller, so a slow upstream never holds back a fast one.
   * @default the run's `salvo` client
   */
  client?: string | undefined;
  /** Turns an LLM answer's text into the task's value. @default the text */
  parse?: ((text: string, result: ProviderResult) => unknown) | undefined;
  /** `max_tokens` of the task's request, set when the built request has none. @default none */
  maxTokens?: number | undefined;
  /**
   * A value for a task that failed: its dependants get it (marked `fallback`), and the task stays
   * failed in the report. Without one, the stage's `onFailure` applies.
   */
  fallback?: ((error: unknown, task: ContextInput<I>) => unknown) | undefined;
  /**
   * The task's expected duration, ms, for critical-path priority only. @default 1_000 (so, with
   * no estimates, the priority is the longest remaining chain counted in tasks)
   */
  expectedMs?: number | undefined;
};

export type TaskDefinition<I> = TaskSettings<I> & {
  /** The task's name within its stage; its id is `stage/key`. */
  key: string;
  /** The task's own data, given back as `item`. @default undefined */
  item?: unknown;
  /** Tasks this one needs, as `stage/key`, of this or an earlier stage. @default none */
  needs?: readonly string[] | undefined;
  /** Where it was declared (a pipeline file's `file:line`), for error messages. */
  source?: string | undefined;
};

export type StageDefinition<I> = TaskSettings<I> & {
  /** Letters, digits, `_` and `-`, starting with a letter; unique in the pipeline. */
  name: string;
  /** The stage's tasks: a list, or a function of the input (e.g. one task per line item). */
  tasks: readonly TaskDefinition<I>[] | ((input: I) => readonly TaskDefinition<I>[]);
  /**
   * Earlier stages this one waits for as a whole (a barrier): each of its tasks depends on every
   * task of these stages. Use only where a stage aggregates; otherwise use `needs`. @default none
   */
  after?: readonly string[] | undefined;
  /**
   * The sections a task's context is assembled from, most important first by `priority`.
   * @default one section per dependency: its id and text (a note for one without a result)
   */
  context?: ((task: ContextInput<I>) => readonly ContextSection[]) | undefined;
  /** Most tokens (o200k) of a task's assembled context; lower-priority sections are trimmed. @default no limit */
  contextTokenBudget?: number | undefined;
  /** What a task of this stage without a result means for its dependants. @default "skip" */
  onFailure?: FailurePolicy | undefined;
  /** Where it was declared, for error messages. */
  source?: string | undefined;
};

export type PipelineDefinition<I> = {
  /** The pipeline's name, in reports and the run directory's metadata. */
  name: string;
  /**
   * Bump it when something that changes answers is not in the definition itself (a constant a
   * request builder reads): a run directory refuses another version. @default none
   */
  version?: string | number | undefined;
  stages: readonly StageDefinition<I>[];
  /** JSON data that identifies the definition beyond its functions' source (a pipeline file's content). */
  fingerprint?: unknown;
  /** Where it was declared (a pipeline file's path), for error messages. */
  source?: string | undefined;
};

/** Declares a pipeline (an identity function that gives the input type to every callback). */
export function definePipeline<I>(definition: PipelineDefinition<I>): PipelineDefinition<I> {
  return definition;
}

const FUNCTION_FIELDS = ["request", "run", "parse", "fallback", "context"] as const;

function sources(settings: object): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of FUNCTION_FIELDS) {
    const fn = (settings as Record<string, unknown>)[field];
    if (typeof fn === "function") out[field] = fn.toString();
  }
  return out;
}

/**
 * The definition as JSON for its fingerprint: names, settings, dependencies, and the source of
 * every function (so a changed prompt in a request builder is a different definition). A closure's
 * captured values are not seen: `version` covers those.
 */
export function describeDefinition<I>(definition: PipelineDefinition<I>): unknown {
  return {
    name: definition.name,
    version: definition.version ?? null,
    fingerprint: definition.fingerprint ?? null,
    stages: definition.stages.map((stage) => ({
      name: stage.name,
      // Only when set, so that definitions without clients keep their fingerprints.
      ...(stage.client === undefined ? {} : { client: stage.client }),
      after: stage.after ?? [],
      onFailure: stage.onFailure ?? null,
      contextTokenBudget: stage.contextTokenBudget ?? null,
      maxTokens: stage.maxTokens ?? null,
      functions: sources(stage),
      tasks:
        typeof stage.tasks === "function"
          ? stage.tasks.toString()
          : stage.tasks.map((task) => ({
              key: task.key,
              ...(task.client === undefined ? {} : { client: task.client }),
              item: task.item ?? null,
              needs: task.needs ?? [],
              maxTokens: task.maxTokens ?? null,
              functions: sources(task),
            })),
    })),
  };
}

// The task graph of one pipeline run: the stages' tasks for this input, their dependencies (item
// by item, plus the barriers of `after`), checked before any call, in topological order, each with
// its critical-path rank: the longest chain of expected durations from it to the end of the run.
// Ready tasks are submitted with their rank as the scheduler priority, so the tasks that hold up
// the end of the run go first and the makespan approaches the longest chain.
import { ConfigError } from "../errors.ts";
import {
  FAILURE_POLICIES,
  type FailurePolicy,
  type PipelineDefinition,
  type StageDefinition,
  type TaskDefinition,
  type TaskSettings,
} from "./pipeline-definition.ts";

/** A task's expected duration when none is given, ms. */
export const DEFAULT_EXPECTED_MS = 1_000;

export type TaskNode<I> = {
  /** `stage/key`. */
  id: string;
  stage: string;
  key: string;
  /** The stage's position in the pipeline. */
  stageIndex: number;
  item: unknown;
  /** The task's settings over its stage's. */
  settings: TaskSettings<I>;
  stageDefinition: StageDefinition<I>;
  onFailure: FailurePolicy;
  /** Ids of the tasks it depends on, `needs` first, then the `after` stages' tasks; no repeats. */
  deps: string[];
  /** Ids of the tasks that depend on it. */
  dependants: string[];
  /** Expected duration, ms. */
  expectedMs: number;
  /** The longest chain of expected durations from this task (included) to the end of the run. */
  rank: number;
};

export type TaskGraph<I> = {
  /** Every task, in topological order (stage order, then declaration order, where free). */
  order: TaskNode<I>[];
  nodes: Map<string, TaskNode<I>>;
  /** Each stage's task ids, in declaration order. */
  stages: Array<{ name: string; ids: string[] }>;
};

const STAGE_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

function where(...sources: Array<string | undefined>): string | undefined {
  return sources.find((s) => s !== undefined);
}

/** Checks the definition's own fields (not yet the tasks, which may depend on the input). */
function checkStages<I>(definition: PipelineDefinition<I>): void {
  const seen = new Set<string>();
  const base = definition.source ?? `pipeline ${definition.name}`;
  if (definition.stages.length === 0)
    throw new ConfigError({
      field: "stages",
      expected: "at least one stage",
      got: [],
      where: base,
    });
  definition.stages.forEach((stage, index) => {
    const at = where(stage.source, base);
    const field = `stages[${index}]`;
    if (typeof stage.name !== "string" || !STAGE_NAME.test(stage.name))
      throw new ConfigError({
        field: `${field}.name`,
        expected: "letters, digits, _ or -, starting with a letter",
        got: stage.name,
        where: at,
      });
    if (seen.has(stage.name))
      throw new ConfigError({
        field: `${field}.name`,
        expected: "a stage name not used before",
        got: stage.name,
        where: at,
      });
    for (const name of stage.after ?? []) {
      if (!seen.has(name))
        throw new ConfigError({
          field: `stages.${stage.name}.after`,
          expected: `an earlier stage (${[...seen].join(", ") || "there is none"})`,
          got: name,
          where: at,
        });
    }
    seen.add(stage.name);
    if (stage.onFailure !== undefined && !FAILURE_POLICIES.includes(stage.onFailure))
      throw new ConfigError({
        field: `stages.${stage.name}.onFailure`,
        expected: FAILURE_POLICIES.join(", "),
        got: stage.onFailure,
        where: at,
      });
    const budget = stage.contextTokenBudget;
    if (budget !== undefined && !(Number.isInteger(budget) && budget >= 1))
      throw new ConfigError({
        field: `stages.${stage.name}.contextTokenBudget`,
        expected: "a whole number of tokens >= 1",
        got: budget,
        where: at,
      });
    checkSettings(stage, `stages.${stage.name}`, at);
  });
}

function checkSettings<I>(settings: TaskSettings<I>, field: string, at: string | undefined): void {
  const { maxTokens, expectedMs } = settings;
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 1))
    throw new ConfigError({
      field: `${field}.maxTokens`,
      expected: "a whole number >= 1",
      got: maxTokens,
      where: at,
    });
  if (expectedMs !== undefined && !(Number.isFinite(expectedMs) && expectedMs >= 0))
    throw new ConfigError({
      field: `${field}.expectedMs`,
      expected: "a number of ms >= 0",
      got: expectedMs,
      where: at,
    });
}

/** The task's settings over its stage's: a task's own `request` or `run` replaces the stage's. */
function settingsOf<I>(stage: StageDefinition<I>, task: TaskDefinition<I>): TaskSettings<I> {
  const own = task.request !== undefined || task.run !== undefined;
  return {
    request: own ? task.request : stage.request,
    run: own ? task.run : stage.run,
    parse: task.parse ?? stage.parse,
    maxTokens: task.maxTokens ?? stage.maxTokens,
    fallback: task.fallback ?? stage.fallback,
    expectedMs: task.expectedMs ?? stage.expectedMs,
    client: task.client ?? stage.client,
  };
}

/**
 * Builds the graph of `definition` for `input`: every stage's tasks, their dependencies and
 * ranks. Throws a ConfigError naming the stage, task and place for a bad name, a duplicate key,
 * an unknown or later dependency, a cycle, or a task with nothing to run.
 */
export function buildTaskGraph<I>(definition: PipelineDefinition<I>, input: I): TaskGraph<I> {
  checkStages(definition);
  const base = definition.source ?? `pipeline ${definition.name}`;
  const nodes = new Map<string, TaskNode<I>>();
  const stages: TaskGraph<I>["stages"] = [];
  const stageIndex = new Map<string, number>();
  const pendingNeeds: Array<{ node: TaskNode<I>; needs: readonly string[]; at: string }> = [];

  definition.stages.forEach((stage, index) => {
    stageIndex.set(stage.name, index);
    const tasks = typeof stage.tasks === "function" ? stage.tasks(input) : stage.tasks;
    const ids: string[] = [];
    for (const task of tasks) {
      const at = where(task.source, stage.source, base)!;
      if (typeof task.key !== "string" || task.key === "")
        throw new ConfigError({
          field: `stages.${stage.name}.tasks`,
          expected: "a task key that is a non-empty string",
          got: task.key,
          where: at,
        });
      const id = `${stage.name}/${task.key}`;
      const field = `stages.${stage.name}.tasks.${task.key}`;
      if (nodes.has(id))
        throw new ConfigError({
          field,
          expected: "a task key used once in its stage",
          got: task.key,
          where: at,
        });
      checkSettings(task, field, at);
      const settings = settingsOf(stage, task);
      if (settings.request === undefined && settings.run === undefined)
        throw new ConfigError({
          field,
          expected: "a `request` builder or a `run` function, on the task or its stage",
          got: undefined,
          where: at,
        });
      const node: TaskNode<I> = {
        id,
        stage: stage.name,
        key: task.key,
        stageIndex: index,
        item: task.item,
        settings,
        stageDefinition: stage,
        onFailure: stage.onFailure ?? "skip",
        deps: [],
        dependants: [],
        expectedMs: settings.expectedMs ?? DEFAULT_EXPECTED_MS,
        rank: 0,
      };
      nodes.set(id, node);
      ids.push(id);
      pendingNeeds.push({ node, needs: task.needs ?? [], at });
    }
    stages.push({ name: stage.name, ids });
  });

  const stageIds = new Map(stages.map((s) => [s.name, s.ids]));
  for (const { node, needs, at } of pendingNeeds) {
    const deps = new Set<string>();
    for (const ref of needs) {
      const target = nodes.get(ref);
      const slash = ref.indexOf("/");
      const refStage = slash > 0 ? ref.slice(0, slash) : ref;
      const refIndex = stageIndex.get(refStage);
      if (
        target === undefined ||
        refIndex === undefined ||
        refIndex > node.stageIndex ||
        ref === node.id
      )
        throw new ConfigError({
          field: `stages.${node.stage}.tasks.${node.key}.needs`,
          expected:
            refIndex !== undefined && refIndex > node.stageIndex
              ? `a task of stage ${node.stage} or an earlier one (${refStage} comes later)`
              : ref === node.id
                ? "another task (a task cannot need itself)"
                : `an existing task, written stage/key${refIndex === undefined ? "" : ` (stage ${refStage} has ${describeKeys(stageIds.get(refStage) ?? [])})`}`,
          got: ref,
          where: at,
        });
      deps.add(ref);
    }
    for (const name of node.stageDefinition.after ?? [])
      for (const id of stageIds.get(name) ?? []) deps.add(id);
    node.deps = [...deps];
    for (const dep of node.deps) nodes.get(dep)!.dependants.push(node.id);
  }

  const order = topologicalOrder(nodes, base);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i]!;
    let longest = 0;
    for (const id of node.dependants) longest = Math.max(longest, nodes.get(id)!.rank);
    node.rank = node.expectedMs + longest;
  }
  return { order, nodes, stages };
}

function describeKeys(ids: readonly string[]): string {
  if (ids.length === 0) return "no tasks";
  const keys = ids.slice(0, 5).map((id) => id.slice(id.indexOf("/") + 1));
  return `${keys.join(", ")}${ids.length > 5 ? `, ... (${ids.length} tasks)` : ""}`;
}

/** Kahn's algorithm, taking ready tasks in declaration order; a cycle is a ConfigError. */
function topologicalOrder<I>(nodes: Map<string, TaskNode<I>>, at: string): TaskNode<I>[] {
  const waiting = new Map<string, number>();
  const ready: TaskNode<I>[] = [];
  for (const node of nodes.values()) {
    waiting.set(node.id, node.deps.length);
    if (node.deps.length === 0) ready.push(node);
  }
  const order: TaskNode<I>[] = [];
  // Declaration order is stage order; a FIFO of ready tasks keeps it wherever the deps allow.
  for (let head = 0; head < ready.length; head++) {
    const node = ready[head]!;
    order.push(node);
    for (const id of node.dependants) {
      const left = waiting.get(id)! - 1;
      waiting.set(id, left);
      if (left === 0) ready.push(nodes.get(id)!);
    }
  }
  if (order.length < nodes.size) {
    const stuck = [...nodes.values()].filter((n) => waiting.get(n.id)! > 0).map((n) => n.id);
    throw new ConfigError({
      field: "needs",
      expected: "dependencies without a cycle",
      got: `a cycle among ${stuck.slice(0, 6).join(", ")}${stuck.length > 6 ? ", ..." : ""}`,
      where: at,
    });
  }
  return order;
}

/** The longest chain of `weight` through the graph, and its tasks from first to last. */
export function longestChain<I>(
  graph: TaskGraph<I>,
  weight: (node: TaskNode<I>) => number,
): { lengthMs: number; tasks: string[] } {
  const best = new Map<string, { length: number; previous: string | undefined }>();
  let end: string | undefined;
  let endLength = 0;
  for (const node of graph.order) {
    let previous: string | undefined;
    let before = 0;
    for (const dep of node.deps) {
      const length = best.get(dep)!.length;
      if (length > before) {
        before = length;
        previous = dep;
      }
    }
    const length = before + weight(node);
    best.set(node.id, { length, previous });
    if (length > endLength) {
      endLength = length;
      end = node.id;
    }
  }
  const tasks: string[] = [];
  for (let id = end; id !== undefined; id = best.get(id)!.previous) tasks.unshift(id);
  return { lengthMs: endLength, tasks };
}

// Pipelines declared in YAML or JSON, for users who do not write TypeScript: stages of prompt
// templates over the input and upstream outputs, compiled into the same `PipelineDefinition` the
// library runs. Checked when loaded (schema, template syntax, which names a template may use,
// dependencies between stages) and when the tasks are built from the input (every `input.*` and
// `item.*` reference exists, every `needs` task exists), before any call; an error names
// `file:line` and the field.
//
//   name: transcript-analysis
//   model: gpt-4o-mini
//   stages:
//     - name: stageA                      # named tasks, all from the input
//       onFailure: continue
//       tasks:
//         sentiment: { maxTokens: 200, prompt: "Sentiment of: {{input.transcript}}" }
//         topics: { prompt: "Topics of: {{input.transcript}}" }
//     - name: stageB                      # a barrier: every task of stageA first
//       after: [stageA]
//       contextTokenBudget: 800
//       prompt: "Summarise these analyses:\n{{context}}"
//     - name: parts                       # one task per element of an input array
//       forEach: input.parts
//       key: "{{item.id}}"
//       prompt: "Is {{item.name}} covered?"
//     - name: labour                      # item-level dependencies on parts
//       forEach: input.labour
//       key: "{{item.id}}"
//       needs: ["parts/{{item.part}}"]
//       prompt: "Labour {{item.name}}; its part's decision: {{deps.parts}}"
//
// Several upstreams (seed 004: a document extractor, then an LLM) are named clients, each with
// its own limits (`salvo run`'s config-file names); a stage or task says which it goes through,
// and one that says none uses the default client (the command line's settings):
//
//   clients:
//     extractor: { baseUrl: "https://extract.example/v1", apiKeyEnv: EXTRACT_KEY, concurrency: auto }
//     llm: { provider: anthropic, model: claude-sonnet-4-5, rpm: 500 }
//   stages:
//     - name: extract
//       client: extractor
//       ...
//
// Template names: `input.*`; `item.*` and `index` (forEach stages); `key`; `context` (the
// dependencies' outputs within `contextTokenBudget`); `steps.<stage>.<key>.output[.field...]`
// (one task's output, which becomes a dependency); `deps.<stage>` (the outputs of this task's
// dependencies in that stage).
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { YamlLocator, type YamlPath } from "../config/yaml-locator.ts";
import { ConfigError } from "../errors.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import type { ContextSection } from "./context-budget.ts";
import type {
  ContextInput,
  PipelineDefinition,
  StageDefinition,
  TaskDefinition,
  TaskInput,
  UpstreamResult,
} from "./pipeline-definition.ts";
import {
  isSyntaxError,
  lookup,
  parseTemplate,
  renderTemplate,
  type Template,
  type TemplateRef,
  templateRefs,
  templateText,
} from "./template.ts";

export type PipelineFileOptions = {
  /** The provider the requests are shaped for, over the file's `provider`. @default the file's, else openai */
  provider?: "openai" | "anthropic" | undefined;
  /** The model of tasks for which the file names none. @default none (such a task is an error) */
  model?: string | undefined;
};

/** A named client of a pipeline file (`clients:`): one upstream, with its own limits. */
export type FileClient = {
  name: string;
  /** The API its tasks' requests are shaped for. */
  provider: "openai" | "anthropic";
  /**
   * Its settings as written, in `salvo run`'s config-file names (`baseUrl`, `apiKeyEnv`,
   * `concurrency`, `maxConcurrency`, `rpm`, `tpm`, `itpm`, `otpm`, `burstSeconds`,
   * `maxAttempts`, `timeout`, `deadline`, `model`): types checked here, values by the runner.
   */
  settings: Record<string, unknown>;
  /** `file:line` of its entry. */
  where: string;
};

/** A pipeline file's pipeline, and the provider its requests are shaped for. */
export type FilePipeline = PipelineDefinition<unknown> & {
  /** The API the default client's requests are shaped for. */
  provider: "openai" | "anthropic";
  /** The named clients, in file order (empty without `clients:`). */
  clients: FileClient[];
  /** Whether some task names no client, so the run needs its default client. */
  usesDefaultClient: boolean;
};

const stageName = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/);
const tokens = z.number().int().min(1);
const taskFields = {
  client: z.string().min(1).optional(),
  system: z.string().optional(),
  prompt: z.string().optional(),
  model: z.string().min(1).optional(),
  maxTokens: tokens.optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  parse: z.enum(["text", "json"]).optional(),
  fallback: z.unknown().optional(),
  expectedMs: z.number().min(0).finite().optional(),
  needs: z.array(z.string().min(1)).optional(),
};
const taskSchema = z.strictObject(taskFields);
const sectionSchema = z.strictObject({
  from: z.string().min(1),
  field: z.string().min(1).optional(),
  priority: z.number().finite().optional(),
  label: z.string().optional(),
});
const stageSchema = z.strictObject({
  name: stageName,
  ...taskFields,
  forEach: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  tasks: z.record(z.string().min(1), taskSchema).optional(),
  after: z.array(z.string().min(1)).optional(),
  context: z.array(sectionSchema).optional(),
  contextTokenBudget: tokens.optional(),
  onFailure: z.enum(["continue", "skip", "fail"]).optional(),
});
const positive = z.number().positive().finite();
const duration = z.union([positive, z.string().min(1)]);
/** A named client: where its upstream is and its limits, in `salvo run`'s config-file names. */
const clientSchema = z.strictObject({
  provider: z.enum(["openai", "anthropic"]).optional(),
  model: z.string().min(1).optional(),
  baseUrl: z.string().min(1).optional(),
  apiKeyEnv: z.string().min(1).optional(),
  concurrency: z.union([z.number().int().min(1), z.literal("auto")]).optional(),
  maxConcurrency: z.number().int().min(1).optional(),
  rpm: positive.optional(),
  tpm: positive.optional(),
  itpm: positive.optional(),
  otpm: positive.optional(),
  burstSeconds: positive.optional(),
  maxAttempts: z.number().int().min(1).optional(),
  timeout: duration.optional(),
  deadline: duration.optional(),
});
const fileSchema = z.strictObject({
  name: z.string().min(1),
  version: z.union([z.string(), z.number()]).optional(),
  provider: z.enum(["openai", "anthropic"]).optional(),
  clients: z.record(stageName, clientSchema).optional(),
  model: z.string().min(1).optional(),
  maxTokens: tokens.optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  stages: z.array(stageSchema).min(1),
});

type FileSpec = z.infer<typeof fileSchema>;
type StageSpec = z.infer<typeof stageSchema>;
type TaskSpec = z.infer<typeof taskSchema>;
type Path = YamlPath;

const FIELD_EXPECTED: Record<string, string> = {
  name: "a stage name: letters, digits, _ or -, starting with a letter",
};

function dotted(path: Path): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

function schemaError(issue: z.core.$ZodIssue, value: unknown, at: YamlLocator): ConfigError {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const got = lookup(value, path.map(String));
  const last = path[path.length - 1];
  let expected: string;
  switch (issue.code) {
    case "unrecognized_keys": {
      const key = issue.keys[0]!;
      return new ConfigError({
        field: dotted([...path, key]),
        expected: "a known field (see the pipeline file format in the README)",
        got: key,
        where: at.where([...path, key]),
      });
    }
    case "invalid_type":
      expected = issue.expected === "int" ? "a whole number" : `a ${issue.expected}`;
      if (got === undefined) expected = `a ${issue.expected} (it is required)`;
      break;
    case "too_small":
      expected =
        issue.origin === "array"
          ? `at least ${issue.minimum} item(s)`
          : issue.origin === "string"
            ? "a non-empty string"
            : `a number ${issue.inclusive ? ">=" : ">"} ${issue.minimum}`;
      break;
    case "invalid_value":
      expected = `one of ${issue.values.map(String).join(", ")}`;
      break;
    case "invalid_format":
      expected = FIELD_EXPECTED[String(last)] ?? issue.message;
      break;
    default:
      expected = issue.message;
  }
  return new ConfigError({ field: dotted(path), expected, got, where: at.where(path) });
}

/** Reads and checks a pipeline file (YAML or JSON). */
export async function loadPipelineFile(
  path: string,
  options: PipelineFileOptions = {},
): Promise<FilePipeline> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      { field: "pipeline", expected: "a readable YAML or JSON file", got: path, where: path },
      { cause: error },
    );
  }
  return parsePipelineFile(text, path, options);
}

/** Parses and checks pipeline file text; `file` names it in errors. */
export function parsePipelineFile(
  text: string,
  file: string,
  options: PipelineFileOptions = {},
): FilePipeline {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax)
    throw new ConfigError({
      field: "pipeline",
      expected: "valid YAML or JSON",
      got: syntax.message.split("\n")[0],
      where: `${file}:${lines.linePos(syntax.pos[0]).line}`,
    });
  const at = new YamlLocator(doc, lines, file);
  const value: unknown = doc.toJS() ?? {};
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) throw schemaError(parsed.error.issues[0]!, value, at);
  const spec = parsed.data;
  const provider = options.provider ?? spec.provider ?? "openai";
  const names: string[] = [];
  const clients: FileClient[] = Object.entries(spec.clients ?? {}).map(([name, client]) => ({
    name,
    provider: client.provider ?? provider,
    settings: client,
    where: at.where(["clients", name]),
  }));
  const ctx: Ctx = {
    at,
    provider,
    model: options.model,
    usesModelOption: false,
    clients: new Map(clients.map((c) => [c.name, c])),
    usesDefaultClient: false,
  };
  const stages = spec.stages.map((stage, index) => {
    const compiled = compileStage(spec, stage, index, names, ctx);
    names.push(stage.name);
    return compiled;
  });
  // A client's limits and address tune how fast, not what is asked: they stay out of the
  // fingerprint (a run directory resumes after a limit changes); its provider and model are in.
  const identity =
    spec.clients === undefined
      ? value
      : {
          ...(value as Record<string, unknown>),
          clients: Object.fromEntries(
            clients.map((c) => [c.name, { provider: c.provider, model: c.settings.model ?? null }]),
          ),
        };
  return {
    name: spec.name,
    version: spec.version,
    stages,
    source: file,
    provider,
    clients,
    usesDefaultClient: ctx.usesDefaultClient,
    fingerprint: { file: identity, provider, model: ctx.usesModelOption ? options.model : null },
  };
}

type Roots = ReadonlySet<string>;
type Ctx = {
  at: YamlLocator;
  provider: "openai" | "anthropic";
  model: string | undefined;
  /** Some task takes its model from `options.model` (so it is part of the fingerprint). */
  usesModelOption: boolean;
  clients: ReadonlyMap<string, FileClient>;
  /** Some task names no client. */
  usesDefaultClient: boolean;
};
type Field = { template: Template; path: Path };
type Scope = {
  input: unknown;
  item: unknown;
  index: number | undefined;
  key: string;
  task?: TaskInput<unknown> | undefined;
};

function template(source: string, path: Path, at: YamlLocator): Template {
  const parsed = parseTemplate(source);
  if (isSyntaxError(parsed))
    throw new ConfigError({
      field: dotted(path),
      expected: "a template whose {{...}} are dotted paths",
      got: parsed.message,
      where: at.whereIn(path, parsed.offset),
    });
  return parsed;
}

/** Checks a template's references against the names its field may use (not yet the input). */
function checkRefs(
  field: Field,
  roots: Roots,
  stage: { earlier: readonly string[]; self: string; depStages: ReadonlySet<string> },
  at: YamlLocator,
): void {
  for (const ref of templateRefs(field.template)) {
    const fail = (expected: string) =>
      new ConfigError({
        field: dotted(field.path),
        expected,
        got: ref.raw,
        where: at.whereIn(field.path, ref.offset),
      });
    const [root, ...rest] = ref.path;
    if (!roots.has(root!)) throw fail(`a reference starting with one of ${[...roots].join(", ")}`);
    if ((root === "context" || root === "key" || root === "index") && rest.length > 0)
      throw fail(`{{${root}}} alone`);
    if (root === "steps") {
      const [s, k, output] = rest;
      if (s === undefined || k === undefined || output !== "output")
        throw fail("{{steps.<stage>.<key>.output}}, optionally followed by .<field>");
      if (s !== stage.self && !stage.earlier.includes(s))
        throw fail(
          `a stage declared before this one or this one (${[...stage.earlier, stage.self].join(", ")})`,
        );
    }
    if (root === "deps") {
      if (rest.length !== 1 || !stage.depStages.has(rest[0]!))
        throw fail(
          `{{deps.<stage>}} for a stage this one depends on (${[...stage.depStages].join(", ") || "none: add after or needs"})`,
        );
    }
  }
}

/** A task of a pipeline file, checked; its key is undefined in a forEach stage (one per item). */
type CompiledTask = {
  key: string | undefined;
  path: Path;
  /** The named client it goes through, if any. */
  client: string | undefined;
  /** The API its request is shaped for (its client's). */
  provider: "openai" | "anthropic";
  /** The prompt, then the system prompt if there is one. */
  fields: Field[];
  needs: Field[];
  model: string;
  maxTokens: number | undefined;
  params: Record<string, unknown>;
  parse: TaskSpec["parse"];
  fallback: unknown;
  expectedMs: number | undefined;
};

function compileStage(
  file: FileSpec,
  stage: StageSpec,
  index: number,
  earlier: readonly string[],
  ctx: Ctx,
): StageDefinition<unknown> {
  const { at } = ctx;
  const base: Path = ["stages", index];
  const forEachPath = checkStageShape(stage, base, earlier, at);
  const keyPath: Path = [...base, "key"];
  const keyTemplate = stage.key === undefined ? undefined : template(stage.key, keyPath, at);
  if (keyTemplate) {
    const roots = new Set(forEachPath ? ["input", "item", "index"] : ["input"]);
    checkRefs({ template: keyTemplate, path: keyPath }, roots, noStages(stage), at);
  }
  const specs: Array<{ key: string | undefined; spec: TaskSpec; path: Path }> =
    stage.tasks !== undefined
      ? Object.entries(stage.tasks).map(([key, spec]) => ({
          key,
          spec,
          path: [...base, "tasks", key],
        }))
      : [{ key: forEachPath ? undefined : stage.name, spec: {}, path: base }];
  const tasks = specs.map(({ key, spec, path }) =>
    compileTask(
      { file, stage, base, earlier, ctx, forEach: forEachPath !== undefined },
      key,
      spec,
      path,
    ),
  );

  const build = (input: unknown): Array<TaskDefinition<unknown>> => {
    const elements = forEachPath
      ? forEachItems(input, forEachPath, [...base, "forEach"], at)
      : [undefined];
    return elements.flatMap((item, i) =>
      tasks.map((task) => {
        const scope: Scope = {
          input,
          item,
          index: forEachPath ? i : undefined,
          key: task.key ?? "",
        };
        if (task.key === undefined)
          scope.key = keyTemplate
            ? renderTemplate(keyTemplate, (ref) =>
                staticValue(ref, scope, { template: keyTemplate, path: keyPath }, at),
              )
            : String(i);
        return instantiate(task, scope, ctx);
      }),
    );
  };

  return {
    name: stage.name,
    tasks: build,
    after: stage.after,
    onFailure: stage.onFailure,
    contextTokenBudget: stage.contextTokenBudget,
    context: stage.context && sectionsOf(stage.context),
    source: at.where(base),
  };
}

/** Checks what a stage holds and what it names; returns its forEach path, if it has one. */
function checkStageShape(
  stage: StageSpec,
  base: Path,
  earlier: readonly string[],
  at: YamlLocator,
): string[] | undefined {
  const fail = (field: string, expected: string, got: unknown) =>
    new ConfigError({
      field: dotted([...base, field]),
      expected,
      got,
      where: at.where([...base, field]),
    });
  if (stage.tasks !== undefined && (stage.forEach !== undefined || stage.prompt !== undefined))
    throw fail(
      "tasks",
      "either named tasks, or a stage prompt (with or without forEach), not both",
      Object.keys(stage.tasks),
    );
  if (stage.tasks === undefined && stage.prompt === undefined)
    throw fail("prompt", "a prompt, or named tasks each with its prompt", undefined);
  if (stage.key !== undefined && stage.forEach === undefined)
    throw fail("key", "a key only with forEach (named tasks are keyed by their names)", stage.key);
  const before = `declared before this one (${earlier.join(", ") || "there is none"})`;
  for (const name of stage.after ?? [])
    if (!earlier.includes(name)) throw fail("after", `a stage ${before}`, name);
  for (const section of stage.context ?? []) {
    const from = section.from.split("/")[0]!;
    if (!earlier.includes(from) && from !== stage.name)
      throw fail("context", `a stage (or stage/key) ${before}`, section.from);
  }
  if (stage.forEach === undefined) return undefined;
  const path = stage.forEach.split(".");
  if (path[0] !== "input" || path.some((p) => p === ""))
    throw fail("forEach", "a dotted path into the input, such as input.items", stage.forEach);
  return path;
}

type StageScope = {
  file: FileSpec;
  stage: StageSpec;
  base: Path;
  earlier: readonly string[];
  ctx: Ctx;
  forEach: boolean;
};

/** Checks one task's templates, dependencies and model (a named task's fields over its stage's). */
function compileTask(
  scope: StageScope,
  key: string | undefined,
  spec: TaskSpec,
  path: Path,
): CompiledTask {
  const { file, stage, base, earlier, ctx } = scope;
  const { at } = ctx;
  const pick = <K extends keyof TaskSpec>(field: K): { value: TaskSpec[K]; path: Path } =>
    spec[field] !== undefined
      ? { value: spec[field], path: [...path, field] }
      : { value: stage[field] as TaskSpec[K], path: [...base, field] };
  const itemRoots = scope.forEach ? ["item", "index"] : [];
  const declared = [
    ...(stage.needs ?? []).map((n, i) => ({ n, path: [...base, "needs", i] as Path })),
    ...(spec.needs ?? []).map((n, i) => ({ n, path: [...path, "needs", i] as Path })),
  ];
  const depStages = new Set(stage.after ?? []);
  const needs = declared.map(({ n, path: needPath }) => {
    const slash = n.indexOf("/");
    const target = n.slice(0, Math.max(0, slash));
    if (slash <= 0 || (!earlier.includes(target) && target !== stage.name) || target.includes("{{"))
      throw new ConfigError({
        field: dotted(needPath),
        expected: `stage/key, with a stage declared before this one or this one (${[...earlier, stage.name].join(", ")}); the key may be a template`,
        got: n,
        where: at.where(needPath),
      });
    depStages.add(target);
    const field = { template: template(n, needPath, at), path: needPath };
    checkRefs(field, new Set(["input", ...itemRoots, "key"]), noStages(stage), at);
    return field;
  });
  const prompt = pick("prompt");
  const system = pick("system");
  if (prompt.value === undefined)
    throw new ConfigError({
      field: dotted([...path, "prompt"]),
      expected: "a prompt template",
      got: undefined,
      where: at.where(path),
    });
  const fields: Field[] = [
    { template: template(prompt.value, prompt.path, at), path: prompt.path },
  ];
  if (system.value !== undefined)
    fields.push({ template: template(system.value, system.path, at), path: system.path });
  const roots = new Set(["input", ...itemRoots, "key", "context", "steps", "deps"]);
  for (const field of fields) checkRefs(field, roots, { earlier, self: stage.name, depStages }, at);
  const clientName = pick("client");
  const client = clientName.value === undefined ? undefined : ctx.clients.get(clientName.value);
  if (clientName.value !== undefined && client === undefined)
    throw new ConfigError({
      field: dotted(clientName.path),
      expected: `a client declared under clients: (${[...ctx.clients.keys()].join(", ") || "there is none"})`,
      got: clientName.value,
      where: at.where(clientName.path),
    });
  if (client === undefined) ctx.usesDefaultClient = true;
  const clientModel = client?.settings.model as string | undefined;
  const own = pick("model").value ?? clientModel ?? file.model;
  if (own === undefined) ctx.usesModelOption = true;
  const model = own ?? ctx.model;
  if (model === undefined)
    throw new ConfigError({
      field: dotted([...path, "model"]),
      expected: "a model: `model` in the file, the stage or the task, or --model",
      got: undefined,
      where: at.where(path),
    });
  return {
    key,
    path,
    client: client?.name,
    provider: client?.provider ?? ctx.provider,
    fields,
    needs,
    model,
    maxTokens: pick("maxTokens").value ?? file.maxTokens,
    params: { ...file.params, ...stage.params, ...spec.params },
    parse: pick("parse").value,
    fallback: pick("fallback").value,
    expectedMs: pick("expectedMs").value,
  };
}

/** One task of the run, for one item: every input and item reference checked, needs rendered. */
function instantiate(task: CompiledTask, scope: Scope, ctx: Ctx): TaskDefinition<unknown> {
  const { at } = ctx;
  for (const field of task.fields)
    for (const ref of templateRefs(field.template))
      if (["input", "item", "index", "key"].includes(ref.path[0]!))
        staticValue(ref, scope, field, at);
  const needs = task.needs.map((field) =>
    renderTemplate(field.template, (ref) => staticValue(ref, scope, field, at)),
  );
  // A step reference is a dependency too.
  for (const field of task.fields)
    for (const ref of templateRefs(field.template))
      if (ref.path[0] === "steps") needs.push(`${ref.path[1]}/${ref.path[2]}`);
  const render = (field: Field, t: TaskInput<unknown>) =>
    renderTemplate(field.template, (ref) => runtimeValue(ref, { ...scope, task: t }, field, at));
  const [prompt, system] = task.fields as [Field, Field | undefined];
  return {
    key: scope.key,
    item: scope.item,
    needs: [...new Set(needs)],
    source: at.where(task.path),
    maxTokens: task.maxTokens,
    expectedMs: task.expectedMs,
    client: task.client,
    request: (t) =>
      requestOf(task.provider, {
        model: task.model,
        maxTokens: task.maxTokens,
        params: task.params,
        system: system && render(system, t),
        prompt: render(prompt, t),
      }),
    parse: task.parse === "json" ? parseJsonAnswer : undefined,
    fallback: task.fallback === undefined ? undefined : () => task.fallback,
  };
}

function noStages(stage: StageSpec) {
  return { earlier: [], self: stage.name, depStages: new Set<string>() };
}

function forEachItems(input: unknown, path: string[], fieldPath: Path, at: YamlLocator): unknown[] {
  const value = lookup(input, path.slice(1));
  if (!Array.isArray(value))
    throw new ConfigError({
      field: dotted(fieldPath),
      expected: `${path.join(".")} to be an array in the input`,
      got: value,
      where: at.where(fieldPath),
    });
  return value;
}

/** The value of an `input`, `item`, `index` or `key` reference; a missing one is a ConfigError. */
function staticValue(ref: TemplateRef, scope: Scope, field: Field, at: YamlLocator): unknown {
  const [root, ...rest] = ref.path;
  const value =
    root === "input"
      ? lookup(scope.input, rest)
      : root === "item"
        ? lookup(scope.item, rest)
        : root === "index"
          ? scope.index
          : root === "key"
            ? scope.key
            : undefined;
  if (value === undefined)
    throw new ConfigError({
      field: dotted(field.path),
      expected:
        root === "item"
          ? `item ${scope.index} of the forEach array to have ${rest.join(".") || "a value"}`
          : `the input to have ${rest.join(".") || "a value"}`,
      got: ref.raw,
      where: at.whereIn(field.path, ref.offset),
    });
  return value;
}

function missingText(dep: UpstreamResult): string {
  return `(no result from ${dep.task}: ${dep.errorCode ?? "failed"})`;
}

/** A reference's value when the request is built (upstream outputs are known). */
function runtimeValue(ref: TemplateRef, scope: Scope, field: Field, at: YamlLocator): unknown {
  const task = scope.task!;
  const [root, ...rest] = ref.path;
  if (root === "context") return task.context;
  if (root === "deps")
    return task.deps
      .filter((d) => d.stage === rest[0])
      .map((d) => (d.ok ? d.text : missingText(d)))
      .join("\n\n");
  if (root === "steps") {
    const id = `${rest[0]}/${rest[1]}`;
    const dep = task.deps.find((d) => d.task === id)!;
    if (!dep.ok) return missingText(dep);
    if (rest.length === 3) return dep.value;
    const value = lookup(dep.value, rest.slice(3));
    if (value === undefined)
      throw new ConfigError({
        field: dotted(field.path),
        expected: `the output of ${id} to have ${rest.slice(3).join(".")}`,
        got: ref.raw,
        where: at.whereIn(field.path, ref.offset),
      });
    return value;
  }
  return staticValue(ref, scope, field, at);
}

function requestOf(
  provider: "openai" | "anthropic",
  parts: {
    model: string;
    maxTokens: number | undefined;
    params: Record<string, unknown>;
    system: string | undefined;
    prompt: string;
  },
): ProviderRequest {
  const user = { role: "user", content: parts.prompt };
  if (provider === "anthropic")
    return {
      path: "/messages",
      body: {
        ...parts.params,
        model: parts.model,
        max_tokens: parts.maxTokens ?? 1024,
        ...(parts.system === undefined ? {} : { system: parts.system }),
        messages: [user],
      },
    };
  return {
    path: "/chat/completions",
    body: {
      ...parts.params,
      model: parts.model,
      messages:
        parts.system === undefined ? [user] : [{ role: "system", content: parts.system }, user],
    },
  };
}

/** A JSON answer, with a Markdown code fence around it allowed. */
function parseJsonAnswer(text: string): unknown {
  const fenced = /^\s*```(?:json)?\s*\n([\s\S]*?)\n\s*```\s*$/.exec(text);
  return JSON.parse(fenced ? fenced[1]! : text);
}

/** The stage's `context:` list as a sections function over the task's dependencies. */
function sectionsOf(
  specs: NonNullable<StageSpec["context"]>,
): (task: ContextInput<unknown>) => ContextSection[] {
  return (task) =>
    specs.flatMap((spec, index) => {
      const matches = task.deps.filter((d) =>
        spec.from.includes("/") ? d.task === spec.from : d.stage === spec.from,
      );
      return matches.map((dep) => {
        const name = spec.field ? `${dep.task} ${spec.field}` : dep.task;
        const header = `## ${spec.label ?? name}`;
        let body: string;
        if (!dep.ok) body = missingText(dep);
        else if (spec.field === undefined) body = dep.text;
        else {
          const value = lookup(dep.value, spec.field.split("."));
          body = value === undefined ? "" : templateText(value);
        }
        return {
          name,
          priority: spec.priority ?? index,
          text: body === "" ? "" : `${header}\n${body}`,
        };
      });
    });
}

// Pipeline files: what they compile to, and how a mistake is reported (file:line, field).
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.ts";
import type { TaskInput, UpstreamResult } from "./pipeline-definition.ts";
import { parsePipelineFile } from "./pipeline-file.ts";
import { buildTaskGraph } from "./task-graph.ts";

const FILE = `name: coverage
model: gpt-4o-mini
maxTokens: 60
stages:
  - name: parts
    forEach: input.parts
    key: "{{item.id}}"
    system: Decide coverage.
    prompt: |
      Policy: {{input.policy}}
      Part: {{item.name}} ({{index}})
  - name: labour
    forEach: input.labour
    key: "{{item.id}}"
    needs: ["parts/{{item.part}}"]
    prompt: |
      Labour {{item.name}}; part decision: {{deps.parts}}
  - name: summary
    after: [parts, labour]
    contextTokenBudget: 50
    tasks:
      short:
        maxTokens: 20
        prompt: "Summarise {{input.claim}}: {{context}}"
      first:
        prompt: "First part said {{steps.parts.p1.output}}"
`;

const input = {
  claim: "CLM-7",
  policy: "wear parts excluded",
  parts: [
    { id: "p1", name: "bumper" },
    { id: "p2", name: "brake pads" },
  ],
  labour: [{ id: "l1", part: "p2", name: "fit pads" }],
};

function error(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("no ConfigError");
}

function dep(task: string, text: string, ok = true): UpstreamResult {
  const [stage, key] = task.split("/") as [string, string];
  return {
    task,
    stage,
    key,
    ok,
    value: ok ? text : undefined,
    text: ok ? text : "",
    fallback: false,
    errorCode: ok ? undefined : "SALVO_SERVER_ERROR",
  };
}

function taskInput(deps: UpstreamResult[], context = ""): TaskInput<unknown> {
  return {
    input,
    task: "x/y",
    stage: "x",
    key: "y",
    item: undefined,
    deps,
    partial: false,
    missing: [],
    maxTokens: undefined,
    signal: new AbortController().signal,
    context,
  };
}

describe("pipeline files", () => {
  it("compile to tasks per item with item-level needs, barriers and step references", () => {
    const pipeline = parsePipelineFile(FILE, "coverage.yaml");
    const graph = buildTaskGraph<unknown>(pipeline, input);
    expect(graph.order.map((n) => n.id)).toEqual([
      "parts/p1",
      "parts/p2",
      "labour/l1",
      "summary/short",
      "summary/first",
    ]);
    expect(graph.nodes.get("labour/l1")!.deps).toEqual(["parts/p2"]);
    expect(graph.nodes.get("summary/first")!.deps).toEqual(["parts/p1", "parts/p2", "labour/l1"]);
    const part = graph.nodes.get("parts/p2")!;
    expect(part.settings.request!(taskInput([]))).toEqual({
      path: "/chat/completions",
      body: {
        model: "gpt-4o-mini",
        messages: [
          { role: "system", content: "Decide coverage." },
          { role: "user", content: "Policy: wear parts excluded\nPart: brake pads (1)\n" },
        ],
      },
    });
    expect(part.settings.maxTokens).toBe(60);
    const labour = graph.nodes.get("labour/l1")!.settings.request!(
      taskInput([dep("parts/p2", "NOT_COVERED: wear part")]),
    );
    expect((labour.body.messages as Array<{ content: string }>)[0]!.content).toBe(
      "Labour fit pads; part decision: NOT_COVERED: wear part\n",
    );
    const short = graph.nodes.get("summary/short")!;
    expect(short.settings.maxTokens).toBe(20);
    expect(short.stageDefinition.contextTokenBudget).toBe(50);
    const first = graph.nodes.get("summary/first")!.settings.request!(
      taskInput([dep("parts/p1", "", false)]),
    );
    expect((first.body.messages as Array<{ content: string }>)[0]!.content).toBe(
      "First part said (no result from parts/p1: SALVO_SERVER_ERROR)",
    );
  });

  it("shapes requests for Anthropic: system beside the messages, max_tokens always set", () => {
    const pipeline = parsePipelineFile(FILE, "coverage.yaml", { provider: "anthropic" });
    const graph = buildTaskGraph<unknown>(pipeline, input);
    const request = graph.nodes.get("parts/p1")!.settings.request!(taskInput([]));
    expect(request.path).toBe("/messages");
    expect(request.body).toMatchObject({ system: "Decide coverage.", max_tokens: 60 });
  });

  it("names the file, line and field of a schema error", () => {
    let e = error(() =>
      parsePipelineFile(FILE.replace("maxTokens: 60", "maxTokens: many"), "p.yaml"),
    );
    expect(e.message).toBe('p.yaml:3: maxTokens: expected a number, got "many"');
    e = error(() => parsePipelineFile(FILE.replace("    system:", "    sytem:"), "p.yaml"));
    expect(e.where).toBe("p.yaml:8");
    expect(e.field).toBe("stages[0].sytem");
    e = error(() => parsePipelineFile("name: x\nstages: []\n", "p.yaml"));
    expect(e.message).toContain("stages: expected at least 1 item(s)");
    e = error(() => parsePipelineFile("name: x\nstages:\n  - name: a\n    prompt: [\n", "p.yaml"));
    expect(e.where).toMatch(/^p\.yaml:\d+$/);
    expect(e.expected).toBe("valid YAML or JSON");
  });

  it("refuses an unknown template name, a later stage, or deps on a stage it does not depend on, at load time, at the reference's line", () => {
    let e = error(() =>
      parsePipelineFile(FILE.replace("{{item.name}} ({{index}})", "{{itme.name}}"), "p.yaml"),
    );
    expect(e.where).toBe("p.yaml:11");
    expect(e.field).toBe("stages[0].prompt");
    expect(e.got).toBe("{{itme.name}}");
    expect(e.expected).toContain("one of input, item, index, key, context, steps, deps");
    e = error(() =>
      parsePipelineFile(
        FILE.replace("{{steps.parts.p1.output}}", "{{steps.later.x.output}}"),
        "p.yaml",
      ),
    );
    expect(e.where).toBe("p.yaml:26");
    expect(e.expected).toContain("a stage declared before this one");
    e = error(() =>
      parsePipelineFile(FILE.replace("{{steps.parts.p1.output}}", "{{steps.parts.p1}}"), "p.yaml"),
    );
    expect(e.expected).toContain("{{steps.<stage>.<key>.output}}");
    e = error(() =>
      parsePipelineFile(
        FILE.replace('needs: ["parts/{{item.part}}"]', "after: [parts]").replace(
          "{{deps.parts}}",
          "{{deps.summary}}",
        ),
        "p.yaml",
      ),
    );
    expect(e.expected).toContain("for a stage this one depends on (parts)");
    e = error(() =>
      parsePipelineFile(
        FILE.replace("Part: {{item.name}} ({{index}})", "Part: {{item.name"),
        "p.yaml",
      ),
    );
    expect(e.got).toBe("a {{ without its closing }}");
    e = error(() => parsePipelineFile(FILE.replace("model: gpt-4o-mini\n", ""), "p.yaml"));
    expect(e.expected).toContain("a model");
    // --model gives one to tasks that name none.
    expect(
      parsePipelineFile(FILE.replace("model: gpt-4o-mini\n", ""), "p.yaml", { model: "m" }).name,
    ).toBe("coverage");
  });

  it("refuses, when the tasks are built, an input or item field that is not there, at the line of the reference", () => {
    const pipeline = parsePipelineFile(FILE, "p.yaml");
    let e = error(() => buildTaskGraph<unknown>(pipeline, { ...input, policy: undefined }));
    expect(e.message).toBe(
      'p.yaml:10: stages[0].prompt: expected the input to have policy, got "{{input.policy}}"',
    );
    e = error(() => buildTaskGraph<unknown>(pipeline, { ...input, parts: [{ id: "p1" }] }));
    expect(e.message).toBe(
      'p.yaml:11: stages[0].prompt: expected item 0 of the forEach array to have name, got "{{item.name}}"',
    );
    e = error(() =>
      buildTaskGraph<unknown>(pipeline, {
        ...input,
        labour: [{ id: "l1", part: "p9", name: "x" }],
      }),
    );
    expect(e.field).toBe("stages.labour.tasks.l1.needs");
    expect(e.got).toBe("parts/p9");
    expect(e.where).toBe("p.yaml:12");
    e = error(() => buildTaskGraph<unknown>(pipeline, { ...input, parts: "none" }));
    expect(e.message).toBe(
      'p.yaml:6: stages[0].forEach: expected input.parts to be an array in the input, got "none"',
    );
  });

  it("assembles a context from its `context:` sections: by priority, a field of a JSON output, a note for a missing one", () => {
    const pipeline = parsePipelineFile(
      `name: p
model: m
stages:
  - name: a
    parse: json
    tasks:
      x: { prompt: "x" }
      y: { prompt: "y" }
  - name: b
    after: [a]
    context:
      - { from: a, priority: 1 }
      - { from: a/x, field: insights, priority: 0, label: Insights }
    prompt: "{{context}}"
`,
      "p.yaml",
    );
    const graph = buildTaskGraph<unknown>(pipeline, {});
    const context = graph.nodes.get("b/b")!.stageDefinition.context!;
    const x: UpstreamResult = {
      ...dep("a/x", '{"insights": ["i1"]}'),
      value: { insights: ["i1"] },
    };
    const sections = context(taskInput([x, dep("a/y", "", false)]));
    expect(sections).toEqual([
      { name: "a/x", priority: 1, text: '## a/x\n{"insights": ["i1"]}' },
      { name: "a/y", priority: 1, text: "## a/y\n(no result from a/y: SALVO_SERVER_ERROR)" },
      { name: "a/x insights", priority: 0, text: '## Insights\n[\n  "i1"\n]' },
    ]);
    const parse = graph.nodes.get("a/x")!.settings.parse!;
    expect(parse('```json\n{"a": 1}\n```', undefined as never)).toEqual({ a: 1 });
  });
});

describe("pipeline files with several clients", () => {
  const TWO = `name: statements
model: gpt-4o-mini
clients:
  extractor:
    baseUrl: http://127.0.0.1:9/v1
    concurrency: 2
    model: whisper-form
  llm:
    provider: anthropic
    model: claude-x
    rpm: 500
stages:
  - name: extract
    client: extractor
    forEach: input.pdfs
    key: "{{item}}"
    prompt: "Extract {{item}}"
  - name: analyse
    client: llm
    forEach: input.pdfs
    key: "{{item}}"
    needs: ["extract/{{item}}"]
    prompt: "Structure: {{deps.extract}}"
  - name: total
    after: [analyse]
    prompt: "Total of {{deps.analyse}}"
`;

  it("compiles each task for its client: its provider's request shape, its model, its name", () => {
    const pipeline = parsePipelineFile(TWO, "two.yaml");
    expect(pipeline.clients.map((c) => [c.name, c.provider, c.where])).toEqual([
      ["extractor", "openai", "two.yaml:4"],
      ["llm", "anthropic", "two.yaml:8"],
    ]);
    expect(pipeline.clients[0]!.settings).toMatchObject({ concurrency: 2 });
    expect(pipeline.usesDefaultClient).toBe(true); // the total names none
    const graph = buildTaskGraph<unknown>(pipeline, { pdfs: ["a"] });
    const extract = graph.nodes.get("extract/a")!;
    const analyse = graph.nodes.get("analyse/a")!;
    expect(extract.settings.client).toBe("extractor");
    expect(extract.settings.request!(taskInput([]))).toMatchObject({
      path: "/chat/completions",
      body: { model: "whisper-form" },
    });
    expect(analyse.settings.client).toBe("llm");
    expect(analyse.settings.request!(taskInput([dep("extract/a", "text")]))).toMatchObject({
      path: "/messages",
      body: { model: "claude-x", max_tokens: 1024 },
    });
    expect(graph.nodes.get("total/total")!.settings.client).toBeUndefined();
  });

  it("a client's limits are not part of the fingerprint; its provider and model are", () => {
    const base = parsePipelineFile(TWO, "two.yaml").fingerprint;
    expect(
      parsePipelineFile(TWO.replace("concurrency: 2", "concurrency: 3"), "t").fingerprint,
    ).toEqual(base);
    expect(
      parsePipelineFile(TWO.replace("model: claude-x", "model: claude-y"), "t").fingerprint,
    ).not.toEqual(base);
  });

  it("reports an unknown client and a bad client field with file:line", () => {
    const unknown = error(() =>
      parsePipelineFile(TWO.replace("client: llm", "client: lm"), "two.yaml"),
    );
    expect(unknown.message).toBe(
      'two.yaml:19: stages[1].client: expected a client declared under clients: (extractor, llm), got "lm"',
    );
    const bad = error(() =>
      parsePipelineFile(TWO.replace("concurrency: 2", "concurrency: many"), "two.yaml"),
    );
    expect(bad.where).toBe("two.yaml:6");
    expect(bad.field).toBe("clients.extractor.concurrency");
    const field = error(() => parsePipelineFile(TWO.replace("rpm: 500", "rpms: 500"), "two.yaml"));
    expect(field.field).toBe("clients.llm.rpms");
  });
});

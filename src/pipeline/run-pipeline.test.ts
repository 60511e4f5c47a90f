// The pipeline engine on the fake clock with a fake provider: readiness, critical-path priority,
// makespans against their bounds, failure policies, fallbacks, interrupts and context budgets, all
// in deterministic time.
import { describe, expect, it } from "vitest";
import { FakeClock } from "../core/fake-clock.ts";
import { ClientError, ConfigError } from "../errors.ts";
import { CustomProvider } from "../providers/custom-provider.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { countTokens } from "../providers/token-estimate.ts";
import { Salvo } from "../salvo.ts";
import {
  definePipeline,
  describeDefinition,
  type PipelineDefinition,
  type StageDefinition,
  type TaskInput,
} from "./pipeline-definition.ts";
import { type PipelineResult, type RunPipelineOptions, runPipeline } from "./run-pipeline.ts";

type Call = { task: string; at: number; request: ProviderRequest };

/**
 * A Salvo client on a fake clock whose provider answers task `t` after `latency[t]` ms (the task
 * id is the prompt's first line), or fails it with a 400 (not retried) when it is in `failing`.
 */
function fakeSalvo(options: {
  latency: Record<string, number>;
  concurrency?: number;
  failing?: ReadonlySet<string>;
  clock?: FakeClock;
}) {
  const clock = options.clock ?? new FakeClock();
  const calls: Call[] = [];
  const provider = new CustomProvider(async (request, { signal }) => {
    const messages = request.body.messages as Array<{ content: string }>;
    const task = messages[messages.length - 1]!.content.split("\n")[0]!;
    calls.push({ task, at: clock.now(), request });
    await clock.sleep(options.latency[task] ?? 1000, signal);
    if (options.failing?.has(task)) throw new ClientError("rejected", { status: 400 });
    return {
      body: { choices: [{ message: { content: `answer of ${task}` }, finish_reason: "stop" }] },
      usage: { inputTokens: 10, outputTokens: 5 },
    };
  });
  const salvo = new Salvo({ provider, clock, concurrency: options.concurrency ?? 16 });
  return { clock, calls, salvo };
}

/** A request whose prompt starts with the task id, then its context. */
const ask = (task: TaskInput<unknown>): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "m",
    messages: [{ role: "user", content: `${task.task}\n${task.context}` }],
  },
});

function llmStage(
  name: string,
  keys: string[],
  extra: Partial<StageDefinition<unknown>> = {},
): StageDefinition<unknown> {
  return { name, request: ask, tasks: keys.map((key) => ({ key })), ...extra };
}

/** Runs the pipeline, moving fake time until it ends. */
async function drive<I>(
  clock: FakeClock,
  definition: PipelineDefinition<I>,
  options: Omit<RunPipelineOptions<I>, "clock" | "input"> & { input?: I },
): Promise<PipelineResult> {
  const promise = runPipeline(definition, { input: undefined as I, ...options, clock });
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  for (let i = 0; !settled && i < 10_000; i++) await clock.runAll();
  return promise;
}

describe("runPipeline on the fake clock", () => {
  it("a two-stage pipeline (seed 003: 5 + 3 analyzers) ends at its critical-path bound", async () => {
    const latency = {
      "stageA/ach": 1300,
      "stageA/entities": 2000,
      "stageA/sentiment": 3300,
      "stageA/timeline": 1500,
      "stageA/topics": 2500,
      "stageB/risks": 2000,
      "stageB/summary": 3000,
      "stageB/actions": 1800,
    };
    const { clock, salvo } = fakeSalvo({ latency, concurrency: 8 });
    const result = await drive(
      clock,
      definePipeline({
        name: "transcript",
        stages: [
          llmStage("stageA", ["ach", "entities", "sentiment", "timeline", "topics"]),
          llmStage("stageB", ["risks", "summary", "actions"], { after: ["stageA"] }),
        ],
      }),
      { salvo },
    );
    const { report } = result;
    expect(result.status).toBe("succeeded");
    expect(report.criticalPath.boundMs).toBe(6300);
    expect(report.criticalPath.tasks).toEqual(["stageA/sentiment", "stageB/summary"]);
    expect(report.makespanMs).toBeLessThanOrEqual(1.1 * report.criticalPath.boundMs);
    // Seed 003's criteria: each stage takes its longest analyzer, not the sum.
    const [a, b] = report.stages;
    expect([a!.wallMs, a!.maxMs, a!.sumMs]).toEqual([3300, 3300, 10_600]);
    expect([b!.wallMs, b!.maxMs, b!.sumMs]).toEqual([3000, 3000, 6800]);
    expect(report.tasks).toMatchObject({ total: 8, succeeded: 8 });
    expect(report.calls).toEqual({ attempts: 8, inputTokens: 80, outputTokens: 40 });
  });

  it("item-level dependencies beat stage barriers on the same work (seed 004: extract, then analyse, per PDF)", async () => {
    const extract = [1000, 4000, 1500, 2000];
    const analyse = [3000, 500, 2500, 1000];
    const latency: Record<string, number> = {};
    extract.forEach((ms, i) => {
      latency[`extract/pdf${i}`] = ms;
    });
    analyse.forEach((ms, i) => {
      latency[`analyse/pdf${i}`] = ms;
    });
    const pdfs = extract.map((_, i) => `pdf${i}`);
    const pipeline = (barrier: boolean) =>
      definePipeline({
        name: barrier ? "barrier" : "item-level",
        stages: [
          llmStage("extract", pdfs),
          llmStage("analyse", [], {
            tasks: pdfs.map((pdf) => ({ key: pdf, needs: barrier ? [] : [`extract/${pdf}`] })),
            after: barrier ? ["extract"] : [],
          }),
        ],
      });
    const itemLevel = fakeSalvo({ latency });
    const item = await drive(itemLevel.clock, pipeline(false), { salvo: itemLevel.salvo });
    const withBarrier = fakeSalvo({ latency });
    const barrier = await drive(withBarrier.clock, pipeline(true), { salvo: withBarrier.salvo });
    console.log(
      `seed 004 shape on the fake clock: item-level ${item.report.makespanMs} ms (bound ${item.report.criticalPath.boundMs} ms), stage barriers ${barrier.report.makespanMs} ms (bound ${barrier.report.criticalPath.boundMs} ms)`,
    );
    expect(item.report.makespanMs).toBe(4500); // max over PDFs of extract + analyse
    expect(barrier.report.makespanMs).toBe(7000); // longest extract + longest analyse
    expect(item.report.makespanMs).toBeLessThan(barrier.report.makespanMs);
    // No barrier unless declared: pdf0's analysis starts the moment its extraction ends.
    const analysed = item.records.get("analyse/pdf0")!;
    expect(analysed.startedAtMs).toBe(1000);
    expect(analysed.waitMs).toBe(0);
    expect(barrier.records.get("analyse/pdf0")!.startedAtMs).toBe(4000);
  });

  it("runs the task on the longest remaining chain first (critical path vs FIFO at concurrency 2)", async () => {
    // Four independent tasks declared first, then a chain x1 -> x2 -> x3, all 1 s.
    const pipeline = definePipeline({
      name: "priority",
      stages: [
        llmStage("s1", ["y1", "y2", "y3", "y4", "x1"]),
        llmStage("s2", [], { tasks: [{ key: "x2", needs: ["s1/x1"] }] }),
        llmStage("s3", [], { tasks: [{ key: "x3", needs: ["s2/x2"] }] }),
      ],
    });
    const cp = fakeSalvo({ latency: {}, concurrency: 2 });
    const critical = await drive(cp.clock, pipeline, { salvo: cp.salvo });
    const ff = fakeSalvo({ latency: {}, concurrency: 2 });
    const fifo = await drive(ff.clock, pipeline, { salvo: ff.salvo, order: "fifo" });
    expect(cp.calls.slice(0, 2).map((c) => c.task)).toEqual(["s1/x1", "s1/y1"]);
    expect(critical.report.makespanMs).toBe(4000); // the bound: 7 tasks of 1 s on 2 slots
    expect(fifo.report.makespanMs).toBe(5000);
  });

  it("skips the dependants of a failed task (transitively) by default, and runs everything else", async () => {
    const { clock, calls, salvo } = fakeSalvo({ latency: {}, failing: new Set(["a/bad"]) });
    const result = await drive(
      clock,
      definePipeline({
        name: "skip",
        stages: [
          llmStage("a", ["bad", "good"]),
          llmStage("b", [], {
            tasks: [
              { key: "x", needs: ["a/bad"] },
              { key: "y", needs: ["a/good"] },
            ],
          }),
          llmStage("c", [], { tasks: [{ key: "z", needs: ["b/x"] }] }),
        ],
      }),
      { salvo },
    );
    expect(result.status).toBe("partial");
    expect(result.records.get("a/bad")!.error?.code).toBe("SALVO_CLIENT_ERROR");
    const skipped = result.records.get("b/x")!;
    expect(skipped.status).toBe("skipped");
    expect(skipped.error?.code).toBe("SALVO_DEPENDENCY_FAILED");
    expect(skipped.error?.message).toContain("its input a/bad has no result (SALVO_CLIENT_ERROR)");
    expect(result.records.get("c/z")!.status).toBe("skipped");
    expect(result.records.get("b/y")!.status).toBe("succeeded");
    expect(calls.map((c) => c.task).sort()).toEqual(["a/bad", "a/good", "b/y"]);
  });

  it("continues with partial inputs, marked as such, when the failed task's stage continues", async () => {
    const { clock, calls, salvo } = fakeSalvo({ latency: {}, failing: new Set(["a/bad"]) });
    const result = await drive(
      clock,
      definePipeline({
        name: "continue",
        stages: [
          llmStage("a", ["bad", "good"], { onFailure: "continue" }),
          llmStage("b", ["all"], { after: ["a"] }),
        ],
      }),
      { salvo },
    );
    const record = result.records.get("b/all")!;
    expect(record.status).toBe("succeeded");
    expect(record).toMatchObject({ partial: true, missing: ["a/bad"] });
    const prompt = (
      calls.find((c) => c.task === "b/all")!.request.body.messages as Array<{
        content: string;
      }>
    )[0]!.content;
    expect(prompt).toContain("## a/bad\n(no result: SALVO_CLIENT_ERROR)");
    expect(prompt).toContain("## a/good\nanswer of a/good");
  });

  it("stops the run when a task fails in a stage that fails the run: aborts what runs, starts nothing", async () => {
    const { clock, calls, salvo } = fakeSalvo({
      latency: { "a/bad": 1000, "a/long": 5000 },
      failing: new Set(["a/bad"]),
    });
    const result = await drive(
      clock,
      definePipeline({
        name: "fail",
        stages: [
          llmStage("a", ["bad", "long"], { onFailure: "fail" }),
          llmStage("b", ["x"], { after: ["a"] }),
        ],
      }),
      { salvo },
    );
    expect(result.status).toBe("failed");
    expect(result.report.makespanMs).toBe(1000);
    const long = result.records.get("a/long")!;
    expect(long.status).toBe("cancelled");
    expect(long.error?.code).toBe("SALVO_PIPELINE_STOPPED");
    expect(result.records.get("b/x")).toMatchObject({
      status: "cancelled",
      error: { code: "SALVO_PIPELINE_STOPPED" },
    });
    expect(calls.map((c) => c.task)).toEqual(["a/bad", "a/long"]);
  });

  it("gives dependants a failed task's fallback value, marked, and keeps the task failed", async () => {
    const { clock, calls, salvo } = fakeSalvo({ latency: {}, failing: new Set(["parts/p1"]) });
    const result = await drive(
      clock,
      definePipeline({
        name: "fallback",
        stages: [
          llmStage("parts", ["p1"], { fallback: () => "REVIEW_NEEDED" }),
          llmStage("labour", [], { tasks: [{ key: "l1", needs: ["parts/p1"] }] }),
        ],
      }),
      { salvo },
    );
    expect(result.records.get("parts/p1")).toMatchObject({
      status: "failed",
      fallback: "REVIEW_NEEDED",
    });
    expect(result.records.get("labour/l1")).toMatchObject({ status: "succeeded", partial: false });
    const prompt = (calls[1]!.request.body.messages as Array<{ content: string }>)[0]!.content;
    expect(prompt).toContain("## parts/p1 (a fallback value, not an answer)\nREVIEW_NEEDED");
    expect(result.status).toBe("partial");
  });

  it("runs any async function as a task on the same scheduler, its value passed downstream", async () => {
    const { clock, calls, salvo } = fakeSalvo({ latency: {} });
    const result = await drive(
      clock,
      definePipeline<{ text: string }>({
        name: "functions",
        stages: [
          {
            name: "split",
            run: async ({ input }) => {
              await clock.sleep(200);
              return input.text.split(" ");
            },
            tasks: [{ key: "words" }],
          },
          llmStage("ask", ["count"], { after: ["split"] }) as StageDefinition<{ text: string }>,
          {
            name: "join",
            run: ({ deps }) => deps.map((d) => d.value).join(" | "),
            tasks: [{ key: "all", needs: ["split/words", "ask/count"] }],
          },
        ],
      }),
      { salvo, input: { text: "brake pads front" } },
    );
    expect(result.records.get("split/words")!.value).toEqual(["brake", "pads", "front"]);
    expect(result.records.get("join/all")!.value).toBe("brake,pads,front | answer of ask/count");
    expect(calls).toHaveLength(1);
    expect(result.records.get("ask/count")!.startedAtMs).toBe(200);
  });

  it("an interrupt starts nothing new, lets tasks in flight finish within the grace period, cancels the rest", async () => {
    const { clock, salvo } = fakeSalvo({
      latency: { "a/quick": 1000, "a/slow": 5000, "a/queued": 100 },
      concurrency: 2,
    });
    const interrupt = new AbortController();
    clock.setTimeout(() => interrupt.abort(new Error("SIGINT")), 500);
    const result = await drive(
      clock,
      definePipeline({
        name: "interrupt",
        stages: [
          llmStage("a", ["quick", "slow", "queued"], { expectedMs: 1 }),
          llmStage("b", ["x"], { after: ["a"] }),
        ],
      }),
      { salvo, signal: interrupt.signal, graceMs: 1000 },
    );
    expect(result.status).toBe("interrupted");
    expect(result.records.get("a/quick")!.status).toBe("succeeded");
    expect(result.records.get("a/slow")!.status).toBe("cancelled");
    expect(result.records.get("a/slow")!.endedAtMs).toBe(1500);
    expect(result.records.get("a/queued")!).toMatchObject({ status: "cancelled", attempts: 0 });
    expect(result.records.get("b/x")!.status).toBe("cancelled");
  });

  it("assembles each prompt's context within the stage's budget and applies per-task max_tokens", async () => {
    const { clock, calls, salvo } = fakeSalvo({ latency: {} });
    const long = (n: number) => Array.from({ length: n }, (_, i) => `point${i}`).join(" ");
    const result = await drive(
      clock,
      definePipeline({
        name: "budget",
        stages: [
          {
            name: "a",
            run: ({ task }) => ({ insights: [`${task} matters`], raw: long(300) }),
            tasks: [{ key: "ach" }, { key: "topics" }],
          },
          llmStage("b", [], {
            after: ["a"],
            contextTokenBudget: 100,
            maxTokens: 50,
            context: ({ deps }) =>
              deps.flatMap((d) => [
                {
                  name: `${d.task} insights`,
                  priority: 0,
                  text: (d.value as { insights: string[] }).insights.join("\n"),
                },
                { name: `${d.task} raw`, priority: 2, text: (d.value as { raw: string }).raw },
              ]),
            tasks: [{ key: "summary", maxTokens: 80 }, { key: "risks" }],
          }),
        ],
      }),
      { salvo },
    );
    for (const call of calls) {
      const content = (call.request.body.messages as Array<{ content: string }>)[0]!.content;
      const context = content.slice(content.indexOf("\n") + 1);
      expect(countTokens(context)).toBeLessThanOrEqual(100);
      expect(context.startsWith("a/ach matters\n\na/topics matters")).toBe(true);
    }
    expect(calls.map((c) => c.request.body.max_tokens).sort()).toEqual([50, 80]);
    const record = result.records.get("b/summary")!;
    expect(record.context).toMatchObject({
      budget: 100,
      truncated: ["a/ach raw"],
      dropped: ["a/topics raw"],
    });
    expect(result.report.contextTrimmed.map((t) => t.task)).toEqual(["b/summary", "b/risks"]);
  });

  it("refuses a bad definition before any call", async () => {
    const { calls, salvo } = fakeSalvo({ latency: {} });
    await expect(
      runPipeline(
        definePipeline({
          name: "bad",
          stages: [
            llmStage("a", ["1"]),
            llmStage("b", [], { tasks: [{ key: "x", needs: ["a/2"] }] }),
          ],
        }),
        { salvo, input: undefined },
      ),
    ).rejects.toBeInstanceOf(ConfigError);
    expect(calls).toHaveLength(0);
  });
});

describe("runPipeline with several clients (seed 004: an extractor, then an LLM)", () => {
  const PDFS = 8;
  const STATEMENTS = 5;
  const keys = Array.from(
    { length: PDFS * STATEMENTS },
    (_, i) => `pdf${Math.floor(i / STATEMENTS)}-s${i % STATEMENTS}`,
  );
  const latency = Object.fromEntries(
    keys.flatMap((k) => [
      [`extract/${k}`, 100],
      [`analyse/${k}`, 50],
    ]),
  );
  const statements = (clients: { extract?: string; analyse?: string }) =>
    definePipeline<unknown>({
      name: "seed-004",
      stages: [
        llmStage("extract", keys, { client: clients.extract }),
        {
          name: "analyse",
          request: ask,
          client: clients.analyse,
          tasks: keys.map((key) => ({ key, needs: [`extract/${key}`] })),
        },
      ],
    });

  it("each task goes through its own client: the extractor's limit never holds back the LLM, and they overlap item by item", async () => {
    const clock = new FakeClock();
    const extractor = fakeSalvo({ latency, concurrency: 1, clock });
    const llm = fakeSalvo({ latency, concurrency: 8, clock });
    const result = await drive(clock, statements({ extract: "extractor", analyse: "llm" }), {
      clients: { extractor: extractor.salvo, llm: llm.salvo },
    });
    expect(result.status).toBe("succeeded");
    expect(extractor.calls.map((c) => c.task)).toEqual(keys.map((k) => `extract/${k}`));
    expect(llm.calls.map((c) => c.task).sort()).toEqual(keys.map((k) => `analyse/${k}`).sort());
    // One extraction at a time (100 ms each); each statement's analysis starts the moment its
    // extraction ends, never waiting for the extractor's slot: the makespan is the extractor's
    // work plus one analysis.
    for (const key of keys) {
      const extract = result.records.get(`extract/${key}`)!;
      const analyse = result.records.get(`analyse/${key}`)!;
      expect(analyse.startedAtMs).toBe(extract.endedAtMs);
      expect(analyse.waitMs).toBe(0);
      expect(analyse.client).toBe("llm");
      expect(extract.client).toBe("extractor");
    }
    expect(result.report.makespanMs).toBe(PDFS * STATEMENTS * 100 + 50);

    // One shared client with the extractor's limit: the LLM calls queue behind extractions.
    const shared = fakeSalvo({ latency, concurrency: 1 });
    const one = await drive(shared.clock, statements({}), { salvo: shared.salvo });
    expect(one.report.makespanMs).toBeGreaterThanOrEqual(PDFS * STATEMENTS * 150);
  });

  it("a task naming a client the run does not have, or an LLM task with no client at all, is refused before any call", async () => {
    const llm = fakeSalvo({ latency });
    const error = await runPipeline(statements({ extract: "extractor", analyse: "llm" }), {
      clients: { llm: llm.salvo },
      input: undefined,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain("extract/pdf0-s0: client");
    expect((error as ConfigError).message).toContain("one of the run's clients (llm)");
    await expect(
      runPipeline(statements({ analyse: "llm" }), {
        clients: { llm: llm.salvo },
        input: undefined,
      }),
    ).rejects.toThrow(/task extract\/pdf0-s0 is an LLM request/);
    expect(llm.calls).toHaveLength(0);
  });

  it("the client a task names is part of the definition's fingerprint only when set", () => {
    const plain = describeDefinition(statements({}));
    expect(JSON.stringify(plain)).not.toContain("client");
    expect(describeDefinition(statements({ extract: "x" }))).not.toEqual(plain);
  });
});

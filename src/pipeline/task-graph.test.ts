import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.ts";
import { definePipeline, type StageDefinition } from "./pipeline-definition.ts";
import { buildTaskGraph, longestChain } from "./task-graph.ts";

const run = async () => "x";

function stage(
  name: string,
  keys: string[],
  extra: Partial<StageDefinition<unknown>> = {},
): StageDefinition<unknown> {
  return { name, run, tasks: keys.map((key) => ({ key })), ...extra };
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("no ConfigError");
}

describe("buildTaskGraph", () => {
  it("links item-level needs and stage barriers, in topological order", () => {
    const graph = buildTaskGraph(
      definePipeline({
        name: "p",
        stages: [
          stage("a", ["1", "2"]),
          {
            name: "b",
            run,
            tasks: (input: unknown) =>
              (input as string[]).map((k) => ({ key: k, needs: [`a/${k}`] })),
          },
          stage("c", ["all"], { after: ["a", "b"] }),
        ],
      }),
      ["1", "2"],
    );
    expect(graph.order.map((n) => n.id)).toEqual(["a/1", "a/2", "b/1", "b/2", "c/all"]);
    expect(graph.nodes.get("b/2")!.deps).toEqual(["a/2"]);
    expect(graph.nodes.get("c/all")!.deps).toEqual(["a/1", "a/2", "b/1", "b/2"]);
    expect(graph.nodes.get("a/1")!.dependants).toEqual(["b/1", "c/all"]);
    expect(graph.stages).toEqual([
      { name: "a", ids: ["a/1", "a/2"] },
      { name: "b", ids: ["b/1", "b/2"] },
      { name: "c", ids: ["c/all"] },
    ]);
  });

  it("ranks each task by the longest chain of expected durations from it to the end", () => {
    const graph = buildTaskGraph(
      definePipeline({
        name: "p",
        stages: [
          {
            name: "a",
            run,
            tasks: [
              { key: "slow", expectedMs: 3000 },
              { key: "fast", expectedMs: 500 },
            ],
          },
          {
            name: "b",
            run,
            expectedMs: 2000,
            tasks: [{ key: "x", needs: ["a/fast"] }, { key: "y" }],
          },
        ],
      }),
      undefined,
    );
    const rank = (id: string) => graph.nodes.get(id)!.rank;
    expect(rank("a/slow")).toBe(3000);
    expect(rank("a/fast")).toBe(2500);
    expect(rank("b/x")).toBe(2000);
    // Without estimates every task counts the default 1 s: the rank is the chain's length in tasks.
    const plain = buildTaskGraph(
      definePipeline({
        name: "p",
        stages: [stage("a", ["1"]), stage("b", ["1"], { after: ["a"] })],
      }),
      undefined,
    );
    expect(plain.nodes.get("a/1")!.rank).toBe(2000);
  });

  it("finds the longest chain under any weights", () => {
    const graph = buildTaskGraph(
      definePipeline({
        name: "p",
        stages: [stage("a", ["1", "2", "3"]), stage("b", ["1", "2"], { after: ["a"] })],
      }),
      undefined,
    );
    const weights: Record<string, number> = { "a/1": 5, "a/2": 9, "a/3": 1, "b/1": 2, "b/2": 4 };
    expect(longestChain(graph, (n) => weights[n.id]!)).toEqual({
      lengthMs: 13,
      tasks: ["a/2", "b/2"],
    });
  });

  it("refuses bad definitions before any call, naming the stage, task and what was expected", () => {
    const build = (stages: StageDefinition<unknown>[]) => () =>
      buildTaskGraph(definePipeline({ name: "p", stages }), undefined);
    let error = configError(
      build([stage("a", ["1"]), stage("b", ["1"], { tasks: [{ key: "1", needs: ["a/2"] }] })]),
    );
    expect(error.field).toBe("stages.b.tasks.1.needs");
    expect(error.message).toContain("stage a has 1");
    error = configError(
      build([stage("a", ["1"], { tasks: [{ key: "1", needs: ["b/1"] }] }), stage("b", ["1"])]),
    );
    expect(error.expected).toContain("b comes later");
    error = configError(
      build([
        stage("a", ["1", "2"], {
          tasks: [
            { key: "1", needs: ["a/2"] },
            { key: "2", needs: ["a/1"] },
          ],
        }),
      ]),
    );
    expect(error.got).toContain("a cycle among a/1, a/2");
    expect(configError(build([stage("a", ["1", "1"])])).expected).toContain("used once");
    expect(configError(build([stage("a", ["1"], { run: undefined })])).expected).toContain(
      "a `request` builder or a `run` function",
    );
    expect(configError(build([stage("a", ["1"]), stage("a", ["2"])])).field).toBe("stages[1].name");
    expect(configError(build([stage("a/b", ["1"])])).field).toBe("stages[0].name");
    expect(configError(build([stage("a", ["1"], { after: ["b"] }), stage("b", ["1"])])).field).toBe(
      "stages.a.after",
    );
    expect(configError(build([stage("a", ["1"], { contextTokenBudget: 0 })])).field).toBe(
      "stages.a.contextTokenBudget",
    );
    expect(
      configError(build([stage("a", ["1"], { tasks: [{ key: "1", maxTokens: 1.5 }] })])).field,
    ).toBe("stages.a.tasks.1.maxTokens");
  });
});

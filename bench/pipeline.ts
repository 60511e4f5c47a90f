// Pipeline makespans against the simulator, in real time (not a test): medians of a few runs.
//   (1) seed 003: 5 stage-A analyzers, then 3 stage-B analyzers of their results (a barrier):
//       the makespan against the critical-path bound (the longest chain of measured latencies).
//   (2) seed 004: per PDF an extraction, then an analysis: the same work as an item-level graph
//       and with a stage barrier.
//   (3) critical-path priority against FIFO at concurrency 2: four independent tasks and a chain
//       of three.
// Every run writes a run directory (journal, outputs, metadata), as a real run does.
//   node bench/pipeline.ts [--runs 5]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  definePipeline,
  OpenAIProvider,
  type PipelineDefinition,
  type ProviderRequest,
  runPipeline,
  Salvo,
  type TaskInput,
} from "../src/index.ts";
import { type SimConfigInput, startSimulator } from "../src/sim/index.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const RUNS = Number(values.runs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A request whose answer length (so its latency) follows from `tokens`, given in the prompt. */
const ask =
  (tokens: (task: TaskInput<unknown>) => number) =>
  (task: TaskInput<unknown>): ProviderRequest => ({
    path: "/chat/completions",
    body: {
      model: "gpt-4o-mini",
      max_tokens: tokens(task),
      messages: [{ role: "user", content: `${task.task}\n${task.context}` }],
    },
  });

// Answers run to max_tokens: 60 ms + 2 ms per token, no jitter, so both graphs do the same work.
const SIM: SimConfigInput = {
  seed: 1,
  latency: { ttftMs: 60, msPerToken: 2 },
  output: { tokens: 10_000, echoChars: 0 },
};

async function measure(
  definition: PipelineDefinition<unknown>,
  concurrency: number,
  order: "critical-path" | "fifo" = "critical-path",
) {
  const sim = await startSimulator(SIM);
  const salvo = new Salvo({
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: "sk-bench-not-a-key" }),
    concurrency,
  });
  const runDir = await mkdtemp(join(tmpdir(), "salvo-bench-pipeline-"));
  try {
    const { report } = await runPipeline(definition, { salvo, input: {}, runDir, order });
    if (report.status !== "succeeded") throw new Error(`${definition.name}: ${report.status}`);
    return { makespanMs: report.makespanMs, boundMs: report.criticalPath.boundMs };
  } finally {
    await salvo.close();
    await sim.close();
    await rm(runDir, { recursive: true, force: true });
  }
}

async function medians(
  definition: PipelineDefinition<unknown>,
  concurrency: number,
  order?: "fifo",
) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await measure(definition, concurrency, order));
  return {
    makespanMs: median(runs.map((r) => r.makespanMs)),
    boundMs: median(runs.map((r) => r.boundMs)),
    ratio: median(runs.map((r) => r.makespanMs / r.boundMs)),
  };
}

// (1) seed 003: stage-A answers of 100-300 tokens, stage-B answers of 100-250.
const A_TOKENS: Record<string, number> = {
  ach: 300,
  entities: 120,
  sentiment: 180,
  timeline: 250,
  topics: 100,
};
const B_TOKENS: Record<string, number> = { risks: 160, summary: 250, actions: 100 };
const twoStage = definePipeline<unknown>({
  name: "seed-003",
  stages: [
    {
      name: "stageA",
      request: ask((t) => A_TOKENS[t.key]!),
      tasks: Object.keys(A_TOKENS).map((key) => ({ key })),
    },
    {
      name: "stageB",
      after: ["stageA"],
      contextTokenBudget: 400,
      request: ask((t) => B_TOKENS[t.key]!),
      tasks: Object.keys(B_TOKENS).map((key) => ({ key })),
    },
  ],
});

// (2) seed 004: 8 PDFs; extraction and analysis lengths vary inversely, as real documents do.
const EXTRACT = [100, 400, 150, 300, 50, 350, 200, 250];
const ANALYSE = [300, 50, 250, 100, 350, 100, 200, 150];
const pdfs = EXTRACT.map((_, i) => `pdf${i}`);
const perPdf = (barrier: boolean) =>
  definePipeline<unknown>({
    name: barrier ? "seed-004-barrier" : "seed-004-item-level",
    stages: [
      {
        name: "extract",
        request: ask((t) => EXTRACT[pdfs.indexOf(t.key)]!),
        tasks: pdfs.map((key) => ({ key })),
      },
      {
        name: "analyse",
        after: barrier ? ["extract"] : [],
        request: ask((t) => ANALYSE[pdfs.indexOf(t.key)]!),
        tasks: pdfs.map((key) => ({ key, needs: barrier ? [] : [`extract/${key}`] })),
      },
    ],
  });

// (3) Priority: four independent tasks declared before a chain of three, 200 tokens each.
const chain = definePipeline<unknown>({
  name: "priority",
  stages: [
    {
      name: "s1",
      request: ask(() => 200),
      tasks: ["y1", "y2", "y3", "y4", "x1"].map((key) => ({ key })),
    },
    { name: "s2", request: ask(() => 200), tasks: [{ key: "x2", needs: ["s1/x1"] }] },
    { name: "s3", request: ask(() => 200), tasks: [{ key: "x3", needs: ["s2/x2"] }] },
  ],
});

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
console.log(
  `pipeline bench: median of ${RUNS} runs, node ${process.version}, simulator 60 ms + 2 ms/token`,
);

const one = await medians(twoStage, 8);
console.log(
  `(1) seed 003, 5 + 3 analyzers, concurrency 8: makespan ${s(one.makespanMs)}, critical-path bound ${s(one.boundMs)}, ratio ${one.ratio.toFixed(3)} (target <= 1.10: ${one.ratio <= 1.1 ? "met" : "NOT met"})`,
);

const item = await medians(perPdf(false), 16);
const barrier = await medians(perPdf(true), 16);
console.log(
  `(2) seed 004, 8 PDFs x (extract -> analyse), concurrency 16: item-level ${s(item.makespanMs)} (bound ${s(item.boundMs)}, ratio ${item.ratio.toFixed(3)}); stage barrier ${s(barrier.makespanMs)} (bound ${s(barrier.boundMs)}); item-level is ${(barrier.makespanMs / item.makespanMs).toFixed(2)}x faster`,
);

const cp = await medians(chain, 2);
const fifo = await medians(chain, 2, "fifo");
console.log(
  `(3) 4 independent tasks + a chain of 3, concurrency 2: critical-path priority ${s(cp.makespanMs)}, FIFO ${s(fifo.makespanMs)}`,
);

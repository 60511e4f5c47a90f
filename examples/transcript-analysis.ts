// Seed 003's transcript analysis as a Salvo pipeline: five stage-A analyzers read the transcript
// at once; three stage-B analyzers read stage A's results, assembled in priority sections (top
// insights, then structured data, then raw text) and trimmed to a token budget with the real
// tokenizer. Stage B waits for all of stage A because it aggregates it (a declared barrier);
// each analyzer has its own max_tokens; everything lands in a run directory that a rerun resumes.
//
// Run: node examples/transcript-analysis.ts [run-dir]   (against the built-in simulator)
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ContextSection,
  definePipeline,
  formatDuration,
  OpenAIProvider,
  type ProviderRequest,
  runPipeline,
  Salvo,
} from "salvo";
import { startSimulator } from "salvo/sim";

export type Transcript = { id: string; text: string };

/** What a stage-A analyzer's answer becomes. */
export type Analysis = { insights: string[]; structured: Record<string, unknown>; raw: string };

/** Stage A: independent analyzers of the transcript, each with its own answer budget. */
export const STAGE_A = {
  ach: { maxTokens: 180, instructions: "Weigh the competing hypotheses the speakers raise." },
  entities: { maxTokens: 120, instructions: "List the people, organisations and places named." },
  sentiment: { maxTokens: 80, instructions: "Describe each speaker's sentiment and how it moves." },
  timeline: { maxTokens: 150, instructions: "Put the events mentioned in order, with dates." },
  topics: { maxTokens: 120, instructions: "Name the main topics and how long each is discussed." },
} as const;

/** Stage B: analyzers of stage A's combined results. */
export const STAGE_B = {
  risks: { maxTokens: 160, instructions: "From these analyses, list the risks to follow up." },
  summary: { maxTokens: 200, instructions: "Write an executive summary of these analyses." },
  actions: { maxTokens: 120, instructions: "List the action items these analyses imply." },
} as const;

/** Stage B's context budget, tokens (seed 003: `stage_b_context_token_budget`). */
export const STAGE_B_CONTEXT_TOKENS = 400;
/** Insights per stage-A analyzer in stage B's context (seed 003: `stage_b_context_top_insights`). */
export const TOP_INSIGHTS = 3;

const chat = (system: string, user: string): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    messages: [
      { role: "system", content: system },
      { role: "user", content: user },
    ],
  },
});

/** A stage-A answer as insights (short lines), structured data and the raw text. */
export function parseAnalysis(text: string): Analysis {
  const words = text.split(/\s+/).filter(Boolean);
  const insights: string[] = [];
  for (let i = 0; i < words.length; i += 6) insights.push(words.slice(i, i + 6).join(" "));
  return { insights, structured: { words: words.length, lead: words[0] ?? null }, raw: text };
}

/** Stage B's context: every analyzer's top insights first, then structured data, then raw text. */
export function stageBSections(deps: ReadonlyArray<{ task: string; ok: boolean; value: unknown }>) {
  const sections: ContextSection[] = [];
  for (const dep of deps) {
    if (!dep.ok) {
      sections.push({ name: dep.task, priority: 0, text: `## ${dep.task}: no result` });
      continue;
    }
    const analysis = dep.value as Analysis;
    sections.push(
      {
        name: `${dep.task} insights`,
        priority: 0,
        text: `## ${dep.task}: top insights\n${analysis.insights.slice(0, TOP_INSIGHTS).join("\n")}`,
      },
      {
        name: `${dep.task} structured`,
        priority: 1,
        text: `## ${dep.task}: structured\n${JSON.stringify(analysis.structured)}`,
      },
      { name: `${dep.task} raw`, priority: 2, text: `## ${dep.task}: full text\n${analysis.raw}` },
    );
  }
  return sections;
}

export const transcriptAnalysis = definePipeline<Transcript>({
  name: "transcript-analysis",
  version: 1,
  stages: [
    {
      name: "stageA",
      // One analyzer failing leaves stage B to run on the other four, marked partial.
      onFailure: "continue",
      parse: parseAnalysis,
      tasks: Object.entries(STAGE_A).map(([key, analyzer]) => ({
        key,
        maxTokens: analyzer.maxTokens,
        request: ({ input }) =>
          chat(analyzer.instructions, `Transcript ${input.id}:\n${input.text}`),
      })),
    },
    {
      name: "stageB",
      after: ["stageA"],
      contextTokenBudget: STAGE_B_CONTEXT_TOKENS,
      context: ({ deps }) => stageBSections(deps),
      tasks: Object.entries(STAGE_B).map(([key, analyzer]) => ({
        key,
        maxTokens: analyzer.maxTokens,
        // The context is its own message, so its size is exactly what the budget bounds.
        request: ({ context }) => chat(analyzer.instructions, context),
      })),
    },
  ],
});

export const SAMPLE: Transcript = {
  id: "sample1",
  text: [
    "ANA: The supplier missed the March delivery again; that is the third time this year.",
    "BEN: Their plant in Porto had a fire in February, so some delay was expected.",
    "ANA: Expected, but not communicated. We heard about it from the logistics team.",
    "CHLOE: If we switch suppliers we lose the volume discount from the 2024 contract.",
    "BEN: Then let us ask for a recovery plan by the end of the month and decide in May.",
  ].join("\n"),
};

if (import.meta.main) {
  const runDir = process.argv[2] ?? (await mkdtemp(join(tmpdir(), "transcript-analysis-")));
  // A simulated provider: answers of 60-200 tokens at 150 ms + 2 ms per token, a few 500s.
  const sim = await startSimulator({
    seed: 3,
    latency: { ttftMs: 150, msPerToken: 2 },
    output: { tokens: { min: 60, max: 200 }, echoChars: 0 },
    capacity: { slots: 8 },
    faults: { p500: 0.05 },
  });
  const salvo = new Salvo({
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: "sk-example-not-a-key" }),
    concurrency: 3, // seed 003's `max_concurrent`
  });
  try {
    const { status, report } = await runPipeline(transcriptAnalysis, {
      salvo,
      input: SAMPLE,
      runDir,
    });
    const done = report.tasks.succeeded;
    console.log(`transcript-analysis: ${status}, ${done}/${report.tasks.total} analyzers`);
    for (const stage of report.stages)
      console.log(
        `  ${stage.name}: wall ${formatDuration(stage.wallMs)}, longest analyzer ${formatDuration(stage.maxMs)}, all of them one after another ${formatDuration(stage.sumMs)}`,
      );
    const speedup = report.stages.reduce((n, s) => n + s.sumMs, 0) / report.makespanMs;
    console.log(
      `  makespan ${formatDuration(report.makespanMs)}: ${speedup.toFixed(1)}x faster than one at a time; critical path ${formatDuration(report.criticalPath.boundMs)}`,
    );
    for (const trimmed of report.contextTrimmed)
      console.log(
        `  ${trimmed.task}: context ${trimmed.tokens}/${trimmed.budget} tokens; cut ${trimmed.truncated.join(", ") || "nothing"}; dropped ${trimmed.dropped.length} section(s)`,
      );
    console.log(`  run directory: ${runDir} (run again with it to reuse every finished analyzer)`);
    if (status !== "succeeded") process.exitCode = 1;
  } finally {
    await salvo.close();
    await sim.close();
  }
}

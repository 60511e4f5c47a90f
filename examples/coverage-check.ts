// Seed 000's coverage check as a Salvo pipeline, with the "two-pass parts-then-labour" follow-up
// it planned: every part of a claim is judged in parallel; each labour item is judged as soon as
// the part it fits has been (an item-level dependency, not a barrier), with that part's decision
// in its prompt; a plain function (no LLM) then collects the claim's decision. A failed call
// gives REVIEW_NEEDED (a fallback, kept apart from real answers), as the seed's matcher did.
//
// Run: node examples/coverage-check.ts [run-dir]   (against the built-in simulator)
//
// The simulator's answers are placeholders (a marker and filler words), so `decisionOf` finds no
// COVERED / NOT_COVERED in them and every item comes out REVIEW_NEEDED; with a real model the
// same code reads its verdicts. What the run shows is the schedule.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  definePipeline,
  formatDuration,
  OpenAIProvider,
  type ProviderRequest,
  runPipeline,
  Salvo,
  type UpstreamResult,
} from "salvo";
import { startSimulator } from "salvo/sim";

export type LineItem = {
  id: string;
  kind: "part" | "labour";
  description: string;
  amount: number;
  /** For labour: the part it fits. */
  part?: string;
};
export type Claim = { id: string; policy: string; items: LineItem[] };
export type Decision = "COVERED" | "NOT_COVERED" | "REVIEW_NEEDED";

/** The system prompt, identical across the claim's calls (seed 000: ~1,200 tokens). */
const SYSTEM = [
  "You check whether one line item of a motor insurance claim is covered by the policy.",
  "Start your answer with COVERED or NOT_COVERED, then give one sentence of reasons.",
  "Labour is covered only when the part it fits is covered.",
].join("\n");

/** A model's verdict, or REVIEW_NEEDED when the answer has none. */
export function decisionOf(text: string): Decision {
  const verdict = /^\W*(NOT_COVERED|COVERED)\b/.exec(text)?.[1];
  return (verdict as Decision | undefined) ?? "REVIEW_NEEDED";
}

function ask(claim: Claim, item: LineItem, parts: readonly UpstreamResult[]): ProviderRequest {
  const lines = [
    `Policy: ${claim.policy}`,
    `${item.kind}: ${item.description}, ${item.amount} EUR`,
  ];
  // Seed 000's `covered_parts_in_claim`, now with the LLM's own decisions on the parts.
  for (const part of parts)
    lines.push(`Decision on the part it fits (${part.key}): ${part.ok ? part.value : "none"}`);
  return {
    path: "/chat/completions",
    body: {
      model: "gpt-4o-mini",
      messages: [
        { role: "system", content: SYSTEM },
        { role: "user", content: lines.join("\n") },
      ],
    },
  };
}

const itemsOf = (claim: Claim, kind: LineItem["kind"]) =>
  claim.items.filter((item) => item.kind === kind);

export const coverageCheck = definePipeline<Claim>({
  name: "coverage-check",
  version: 1,
  stages: [
    {
      name: "parts",
      maxTokens: 60,
      parse: decisionOf,
      fallback: () => "REVIEW_NEEDED",
      tasks: (claim) => itemsOf(claim, "part").map((item) => ({ key: item.id, item })),
      request: ({ input, item }) => ask(input, item as LineItem, []),
    },
    {
      name: "labour",
      maxTokens: 60,
      parse: decisionOf,
      fallback: () => "REVIEW_NEEDED",
      tasks: (claim) =>
        itemsOf(claim, "labour").map((item) => ({
          key: item.id,
          item,
          needs: item.part === undefined ? [] : [`parts/${item.part}`],
        })),
      request: ({ input, item, deps }) => ask(input, item as LineItem, deps),
    },
    {
      // Aggregates the whole claim: a barrier is right here.
      name: "claim",
      after: ["parts", "labour"],
      tasks: [{ key: "decision" }],
      run: ({ input, deps }) => {
        const byDecision: Record<Decision, string[]> = {
          COVERED: [],
          NOT_COVERED: [],
          REVIEW_NEEDED: [],
        };
        let payable = 0;
        for (const dep of deps) {
          const decision = (dep.ok ? dep.value : "REVIEW_NEEDED") as Decision;
          byDecision[decision].push(dep.key);
          if (decision === "COVERED")
            payable += input.items.find((item) => item.id === dep.key)?.amount ?? 0;
        }
        return { claim: input.id, ...byDecision, payable };
      },
    },
  ],
});

export const SAMPLE_CLAIM: Claim = {
  id: "CLM-1042",
  policy:
    "Comprehensive: parts damaged in the insured collision and the labour to fit them are covered; wear parts are not.",
  items: [
    { id: "p1", kind: "part", description: "front bumper", amount: 420 },
    { id: "p2", kind: "part", description: "headlamp unit, left", amount: 310 },
    { id: "p3", kind: "part", description: "brake pads, front", amount: 91 },
    { id: "p4", kind: "part", description: "radiator", amount: 265 },
    { id: "p5", kind: "part", description: "bonnet", amount: 380 },
    { id: "p6", kind: "part", description: "wiper blades", amount: 36 },
    { id: "p7", kind: "part", description: "wing mirror, right", amount: 140 },
    { id: "p8", kind: "part", description: "grille", amount: 120 },
    {
      id: "l1",
      kind: "labour",
      description: "remove and fit front bumper",
      amount: 90,
      part: "p1",
    },
    { id: "l2", kind: "labour", description: "fit and align headlamp", amount: 48, part: "p2" },
    { id: "l3", kind: "labour", description: "fit front brake pads", amount: 60, part: "p3" },
    {
      id: "l4",
      kind: "labour",
      description: "fit radiator, refill coolant",
      amount: 120,
      part: "p4",
    },
    { id: "l5", kind: "labour", description: "fit and paint bonnet", amount: 210, part: "p5" },
    { id: "l6", kind: "labour", description: "fit wing mirror", amount: 30, part: "p7" },
    { id: "l7", kind: "labour", description: "fit grille", amount: 24, part: "p8" },
  ],
};

if (import.meta.main) {
  const runDir = process.argv[2] ?? (await mkdtemp(join(tmpdir(), "coverage-check-")));
  // Seed 000's provider, 20x faster: ~1.5 s calls become ~75 ms; a few transient 500s.
  const sim = await startSimulator({
    seed: 5,
    latency: { ttftMs: 40, msPerToken: 1, jitter: 0.5 },
    output: { tokens: { min: 20, max: 60 }, echoChars: 0 },
    faults: { p500: 0.1 },
  });
  const salvo = new Salvo({
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: "sk-example-not-a-key" }),
    concurrency: 5, // seed 000's `max_concurrent`
  });
  try {
    const { status, records, report } = await runPipeline(coverageCheck, {
      salvo,
      input: SAMPLE_CLAIM,
      runDir,
    });
    const partsEnd = Math.max(
      ...[...records.values()].filter((r) => r.stage === "parts").map((r) => r.endedAtMs ?? 0),
    );
    const labour = [...records.values()].filter((r) => r.stage === "labour");
    const early = labour.filter((r) => (r.startedAtMs ?? Number.POSITIVE_INFINITY) < partsEnd);
    // How long each labour item waited after the part it fits was judged.
    const waits = labour.map((r) => {
      const part = SAMPLE_CLAIM.items.find((item) => item.id === r.key)?.part;
      return (r.startedAtMs ?? 0) - (records.get(`parts/${part}`)?.endedAtMs ?? 0);
    });
    console.log(`coverage-check ${SAMPLE_CLAIM.id}: ${status}, ${report.tasks.total} tasks`);
    console.log(
      `  ${early.length} of ${labour.length} labour items started before the last part was judged; each started ${formatDuration(Math.max(...waits))} or less after its part`,
    );
    console.log(
      `  makespan ${formatDuration(report.makespanMs)}; calls one at a time would take ${formatDuration(report.stages.reduce((n, s) => n + s.sumMs, 0))}; ${report.calls.attempts} attempts`,
    );
    console.log(`  decision: ${JSON.stringify(records.get("claim/decision")?.value)}`);
    console.log(`  run directory: ${runDir}`);
    if (status !== "succeeded" && status !== "partial") process.exitCode = 1;
  } finally {
    await salvo.close();
    await sim.close();
  }
}

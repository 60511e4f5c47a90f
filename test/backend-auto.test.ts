// `salvo run --backend auto --run-deadline D` against the simulator (its batch API takes 500 ms +
// 50 ms per request; real time is bound by 600 requests per minute): a deadline shorter than the
// batch API's turnaround runs in real time, a long one uses the batch API, and one between splits:
// it finishes before the deadline at less than the all-real-time cost. The decision and its
// reason are in the summary and the report. `--dry-run` shows both backends side by side.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { Pricing } from "../src/cost/pricing.ts";
import { expectedMarker } from "../src/sim/index.ts";
import { chatLines } from "./support/chat-lines.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-backend-auto-");
const N = 40;
const question = (i: number) => `Is claim line ${i} covered by the policy?`;
const pricing = new Pricing();

const SCENARIO = `seed: 3
latency: { ttftMs: 20, msPerToken: 0 }
output: { tokens: 8 }
limits: { rpm: 600 }
batch: { completionMs: 500, msPerRequest: 50 }
`;

type Line = {
  custom_id: string;
  error: unknown;
  batch_id?: string;
  cost_usd: number;
  usage: { input_tokens: number; output_tokens: number };
  response: { body: { choices: Array<{ message: { content: string } }> } };
};

async function run(extra: string[]) {
  const scenario = join(ws.dir, "scenario.yaml");
  await writeFile(scenario, SCENARIO);
  const input = join(ws.dir, "in.jsonl");
  await writeFile(input, chatLines(N, { tag: "claim", maxTokens: 20, content: question }));
  const output = join(ws.dir, "out.jsonl");
  const report = join(ws.dir, "report.json");
  const io = memoryIo({});
  const args = ["run", input, "-o", output, "--sim", scenario, "--rpm", "600", "--backend", "auto"];
  const code = await runCli([...args, "--progress", "none", "--report", report, ...extra], io);
  return { code, io, output, report, args };
}

async function results(output: string, report: string) {
  const lines = (await readFile(output, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Line);
  expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: N }, (_, i) => `claim-${i}`));
  lines.forEach((line, i) => {
    expect(line.error).toBeNull();
    const content = line.response.body.choices[0]!.message.content;
    expect(content.startsWith(expectedMarker([{ role: "user", content: question(i) }]))).toBe(true);
  });
  const allRealtime = lines.reduce(
    (sum, l) =>
      sum +
      pricing.cost("gpt-4o-mini", {
        inputTokens: l.usage.input_tokens,
        outputTokens: l.usage.output_tokens,
      }).usd!,
    0,
  );
  const cost = lines.reduce((sum, l) => sum + l.cost_usd, 0);
  return { lines, allRealtime, cost, json: JSON.parse(await readFile(report, "utf8")) };
}

describe("salvo run --backend auto", () => {
  it("a deadline shorter than the batch API's turnaround runs in real time", async () => {
    const { code, io, output, report } = await run(["--run-deadline", "2s"]);
    expect(code, io.err).toBe(0);
    const { lines, json, cost, allRealtime } = await results(output, report);
    expect(lines.every((l) => l.batch_id === undefined)).toBe(true);
    expect(cost).toBeCloseTo(allRealtime, 12);
    expect(json.backend.plan).toMatchObject({ mode: "realtime", batch: 0, realtime: N });
    expect(json.backend.plan.reason).toMatch(/batch API is not expected back within/);
    expect(json.backend.batches).toEqual([]);
    expect(io.out).toMatch(
      /backend auto: real time for 40 items; the batch API is not expected back/,
    );
  });

  it("a long deadline uses the batch API for everything, at half the price", async () => {
    const { code, io, output, report } = await run(["--run-deadline", "10m"]);
    expect(code, io.err).toBe(0);
    const { lines, json, cost, allRealtime } = await results(output, report);
    expect(lines.every((l) => l.batch_id !== undefined)).toBe(true);
    expect(cost).toBeCloseTo(allRealtime / 2, 12);
    expect(json.backend.plan).toMatchObject({ mode: "batch", batch: N, realtime: 0 });
    expect(json.backend.plan.reason).toMatch(/expected back in .* for all 40 items/);
    expect(json.backend.submitted).toBe(1);
    expect(io.out).toMatch(/backend auto: batch API for 40 items/);
  });

  it("a deadline between splits: the bulk to the batch API, the first lines in real time; done before the deadline, for less than all in real time", async () => {
    const { code, io, output, report } = await run(["--run-deadline", "4s"]);
    expect(code, io.err).toBe(0);
    const { lines, json, cost, allRealtime } = await results(output, report);
    const plan = json.backend.plan;
    expect(plan.mode).toBe("split");
    expect(plan.batch + plan.realtime).toBe(N);
    expect(plan.batch).toBeGreaterThan(0);
    expect(plan.realtime).toBeGreaterThan(0);
    // The first `realtime` lines in real time, the rest from the batch API.
    lines.forEach((line, i) => {
      expect(line.batch_id === undefined, `line ${i}`).toBe(i < plan.realtime);
    });
    expect(json.run.makespanMs).toBeLessThan(4000);
    expect(cost).toBeLessThan(allRealtime);
    expect(cost).toBeCloseTo(
      lines.reduce((sum, l) => sum + (l.batch_id ? l.cost_usd * 2 : l.cost_usd), 0) -
        lines.filter((l) => l.batch_id).reduce((sum, l) => sum + l.cost_usd, 0),
      12,
    );
    expect(plan.reason).toMatch(
      /a split meets the .* left before the run deadline at the lowest cost/,
    );
    expect(io.out).toContain(
      `backend auto: split: ${plan.batch} items to the batch API, ${plan.realtime} in real time`,
    );
    expect(json.settings).toMatchObject({ backend: "auto", runDeadline: 4000 });
  });

  it("--dry-run shows real time and the batch API side by side, and what auto would choose", async () => {
    const { code, io, report } = await run(["--run-deadline", "4s", "--dry-run"]);
    expect(code, io.err).toBe(0);
    expect(io.out).toMatch(
      /real time: +about [\d.]+s \(1\.5x M\*\); cost at most \$[\d.]+, expected \$[\d.]+/,
    );
    expect(io.out).toMatch(
      /batch API: +about [\d.]+s \(the simulator's batch settings; 1 batch\); cost at most \$[\d.]+, expected \$[\d.]+ \(50% of the real-time price\)/,
    );
    expect(io.out).toMatch(/--backend auto with this --run-deadline would choose split/);
    const json = JSON.parse(await readFile(report, "utf8"));
    expect(json.backends.batch.cost.bound).toBeCloseTo(json.backends.realtime.cost.bound / 2, 12);
    expect(json.backends.auto.mode).toBe("split");
  });
});

// `salvo pipeline` end to end on the YAML example, over HTTP to the simulator: the run directory,
// the report, reuse on a rerun (counted by the simulator), refusals with exit code 2, and no key
// in any file.
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import type { PipelineReport } from "../src/pipeline/pipeline-report.ts";
import { type SimHandle, startSimulator } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";

const FAKE_KEY = "sk-test-pipeline-cli-not-a-real-key";
const PIPELINE = new URL("../examples/claim-coverage.yaml", import.meta.url).pathname;
const INPUT = new URL("../examples/claim-coverage.input.json", import.meta.url).pathname;
let dir: string;
let sim: SimHandle;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-pipeline-"));
  sim = await startSimulator({
    seed: 2,
    latency: { ttftMs: 10, msPerToken: 0.5 },
    output: { tokens: { min: 20, max: 60 } },
  });
});
afterEach(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

async function salvo(args: string[]) {
  const io = memoryIo({ OPENAI_API_KEY: FAKE_KEY });
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}

const pipeline = (runDir: string, ...extra: string[]) =>
  salvo([
    "pipeline",
    PIPELINE,
    "--input",
    INPUT,
    "--run-dir",
    runDir,
    "--base-url",
    sim.baseUrl,
    "--progress",
    "none",
    ...extra,
  ]);

async function filesUnder(path: string): Promise<string[]> {
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe("salvo pipeline", () => {
  it("runs the YAML example into a run directory; a rerun reuses every task and calls nothing", async () => {
    const runDir = join(dir, "run");
    const first = await pipeline(runDir);
    expect(first.code, first.err).toBe(0);
    expect(first.err).toContain("salvo pipeline claim-coverage: 10 tasks");
    expect(sim.stats().completions).toBe(10);
    const report = JSON.parse(
      await readFile(join(runDir, "report.json"), "utf8"),
    ) as PipelineReport;
    expect(report.status).toBe("succeeded");
    expect(report.stages.map((s) => [s.name, s.tasks])).toEqual([
      ["parts", 5],
      ["labour", 4],
      ["summary", 1],
    ]);
    expect(report.criticalPath.tasks.at(-1)).toBe("summary/summary");
    // The summary's context was trimmed to 150 tokens, and the report says what went.
    expect(report.contextTrimmed).toHaveLength(1);
    expect(report.contextTrimmed[0]).toMatchObject({ task: "summary/summary", budget: 150 });
    expect(report.contextTrimmed[0]!.tokens).toBeLessThanOrEqual(150);
    expect(report.contextTrimmed[0]!.dropped.length).toBeGreaterThan(0);
    // Labour decisions went first (priority 0): none of them is dropped before a part is kept.
    const summary = JSON.parse(
      await readFile(join(runDir, "outputs/summary/summary.json"), "utf8"),
    );
    const kept = summary.context.sections.filter((s: { kept: string }) => s.kept !== "dropped");
    expect(kept[0].name).toBe("labour/l1");
    // Each labour task depended on its own part only (item-level `needs`).
    const labour = JSON.parse(await readFile(join(runDir, "outputs/labour/l3.json"), "utf8"));
    expect(labour.status).toBe("succeeded");
    expect(labour.context.sections.map((s: { name: string }) => s.name)).toEqual(["parts/p3"]);
    expect((await readdir(join(runDir, "outputs/labour"))).sort()).toEqual([
      "l1.json",
      "l2.json",
      "l3.json",
      "l4.json",
    ]);

    const again = await pipeline(runDir);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain("10 succeeded (10 reused from the run directory)");
    expect(sim.stats().arrivals).toBe(10);

    // The key reached no file.
    for (const file of await filesUnder(runDir))
      expect(await readFile(file, "utf8"), file).not.toContain(FAKE_KEY);
  });

  it("refuses a run directory made for another input (exit 2, nothing called); --fresh starts over", async () => {
    const runDir = join(dir, "run");
    expect((await pipeline(runDir)).code).toBe(0);
    const other = join(dir, "other.json");
    const input = JSON.parse(await readFile(INPUT, "utf8"));
    await writeFile(other, JSON.stringify({ ...input, claim_id: "CLM-9" }));
    const arrivals = sim.stats().arrivals;
    const args = ["pipeline", PIPELINE, "--input", other, "--run-dir", runDir];
    const refused = await salvo([...args, "--base-url", sim.baseUrl, "--progress", "none"]);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(
      /cannot use run directory .*: it was created for an input with sha256 \w+, not \w+ \(the input changed\)\. Rerun with --fresh .* \[SALVO_RUN_DIR_REFUSED\]/,
    );
    expect(sim.stats().arrivals).toBe(arrivals);
    const fresh = await salvo([
      ...args,
      "--base-url",
      sim.baseUrl,
      "--progress",
      "none",
      "--fresh",
    ]);
    expect(fresh.code, fresh.err).toBe(0);
    expect(sim.stats().arrivals).toBe(arrivals + 10);
  });

  it("reports a mistake in the pipeline file with file:line before any call (exit 2)", async () => {
    const bad = join(dir, "bad.yaml");
    const text = await readFile(PIPELINE, "utf8");
    await writeFile(bad, text.replace("{{item.hours}} h", "{{item.hour}} h"));
    const run = await salvo([
      "pipeline",
      bad,
      "--input",
      INPUT,
      "--run-dir",
      join(dir, "run"),
      "--base-url",
      sim.baseUrl,
    ]);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(
      /bad\.yaml:32: stages\[1\]\.prompt: expected item 0 of the forEach array to have hour, got "\{\{item\.hour\}\}" \[SALVO_CONFIG_INVALID\]/,
    );
    expect(sim.stats().arrivals).toBe(0);
  });

  it("refuses a budget, cache or dry run it does not support, rather than ignore it (exit 2)", async () => {
    const config = join(dir, "salvo.yaml");
    await writeFile(config, "maxCost: 5\n");
    const run = await pipeline(join(dir, "run"), "--config", config);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(
      /salvo\.yaml: --max-cost \/ SALVO_MAX_COST \/ maxCost: expected not set: salvo pipeline does not support budgets/,
    );
    expect(sim.stats().arrivals).toBe(0);
  });

  it("exits 1 when a task fails, and the report and output file say why", async () => {
    await sim.close();
    sim = await startSimulator({ quota: true });
    const runDir = join(dir, "run");
    const run = await pipeline(runDir, "--max-attempts", "1");
    expect(run.code).toBe(1);
    const report = JSON.parse(
      await readFile(join(runDir, "report.json"), "utf8"),
    ) as PipelineReport;
    expect(report.status).toBe("partial");
    // Parts fail but have a fallback: their labour runs and fails too; the summary is skipped.
    expect(report.tasks).toMatchObject({ failed: 9, skipped: 1 });
    const part = JSON.parse(await readFile(join(runDir, "outputs/parts/p1.json"), "utf8"));
    expect(part).toMatchObject({
      status: "failed",
      fallback: "REVIEW_NEEDED",
      error: { code: "SALVO_QUOTA_EXCEEDED" },
    });
  });

  it("lists its options in --help", async () => {
    const help = await salvo(["pipeline", "--help"]);
    for (const flag of [
      "--input",
      "--run-dir",
      "--fresh",
      "--sim",
      "--concurrency",
      "--rpm",
      "--model",
    ])
      expect(help.out).toContain(flag);
  });
});

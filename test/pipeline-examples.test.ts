// The pipeline examples run as their README says (`node examples/<x>.ts [run-dir]`), against the
// simulator, and a second run on the same run directory reuses every task.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PipelineReport } from "../src/pipeline/pipeline-report.ts";

const run = promisify(execFile);
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-examples-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function example(name: string, runDir: string) {
  const script = new URL(`../examples/${name}`, import.meta.url).pathname;
  const { stdout } = await run(process.execPath, [script, runDir]);
  const report = JSON.parse(await readFile(join(runDir, "report.json"), "utf8")) as PipelineReport;
  return { stdout, report };
}

describe("pipeline examples", () => {
  it("transcript-analysis.ts: seed 003's 5 + 3 analyzers in two stages, stage B within its budget", async () => {
    const runDir = join(dir, "transcript");
    const { stdout, report } = await example("transcript-analysis.ts", runDir);
    expect(stdout).toContain("transcript-analysis: succeeded, 8/8 analyzers");
    expect(report.stages.map((s) => [s.name, s.tasks])).toEqual([
      ["stageA", 5],
      ["stageB", 3],
    ]);
    expect(report.contextTrimmed.every((t) => t.tokens <= (t.budget ?? 0))).toBe(true);
    const again = await example("transcript-analysis.ts", runDir);
    expect(again.report.tasks).toMatchObject({ total: 8, reused: 8 });
  });

  it("coverage-check.ts: seed 000's parts, then labour item by item, then the claim", async () => {
    const runDir = join(dir, "coverage");
    const { stdout, report } = await example("coverage-check.ts", runDir);
    expect(stdout).toContain("coverage-check CLM-1042:");
    expect(stdout).toMatch(/labour items started before the last part was judged/);
    expect(report.stages.map((s) => [s.name, s.tasks])).toEqual([
      ["parts", 8],
      ["labour", 7],
      ["claim", 1],
    ]);
    expect(report.tasks.succeeded + report.tasks.failed).toBe(16);
    const again = await example("coverage-check.ts", runDir);
    expect(again.report.tasks.reused).toBe(report.tasks.succeeded);
  });
});

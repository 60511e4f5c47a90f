// The bench harness end to end on tiny scenarios: every contender's items are counted, M* and the
// ratios are computed, results.json and results.md are written, the README block is replaced only
// between its markers. Correctness of the harness, not timing.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BenchResults, runBench } from "../bench/harness.ts";
import { modelBound } from "../bench/model-bound.ts";
import { markdownReport, readmeBlock, writeResults } from "../bench/report.ts";
import { parseBenchScenario } from "../bench/scenario.ts";
import { END, replaceBlock, START } from "../bench/update-readme.ts";
import { ConfigError } from "../src/errors.ts";

const FLAT = `# a tiny RPM-bound scenario
seed: 3
latency: { ttftMs: 20 }
output: { tokens: 4 }
limits: { rpm: 1200, burstSeconds: 1 }
bench:
  title: tiny
  calls: 30
  concurrency: 4
  maxTokens: 8
  promptTokens: 20
  targets: { noLoss: true, maxRatioToBound: 100 }
  quick: { calls: 24 }
`;

const STAGED = `seed: 4
latency: { ttftMs: 10 }
output: { tokens: 4 }
bench:
  stages: [3, 2]
  concurrency: 3
  maxTokens: 8
`;

describe("bench harness", () => {
  let dir: string;
  let results: BenchResults;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "salvo-bench-"));
    await writeFile(join(dir, "tiny.yaml"), FLAT);
    await writeFile(join(dir, "staged.yaml"), STAGED);
    results = await runBench({
      files: [join(dir, "tiny.yaml"), join(dir, "staged.yaml")],
      quick: true,
      repetitions: 2,
      contenders: ["salvo", "p-limit", "sequential"],
    });
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs every contender on every scenario and accounts for every item", () => {
    expect(results.mode).toBe("quick");
    expect(results.scenarios.map((s) => [s.id, s.calls])).toEqual([
      ["tiny", 24],
      ["staged", 5],
    ]);
    for (const scenario of results.scenarios) {
      expect(scenario.rows.map((r) => r.contender)).toEqual(["salvo", "p-limit", "sequential"]);
      for (const row of scenario.rows) {
        // Sequential calls run once: their makespan is the sum of the latencies.
        expect(row.repetitions, row.description).toBe(row.contender === "sequential" ? 1 : 2);
        expect(row.items).toBe(scenario.calls);
        expect(row.succeeded + row.failed + row.wrong + row.lost).toBe(row.items);
        expect(row.unaccounted).toBe(0);
        expect(row.makespanMs).toBeGreaterThan(0);
        expect(row.cpuMs).toBeGreaterThan(0);
        expect(row.peakRssMb).toBeGreaterThan(0);
      }
      const salvo = scenario.rows[0]!;
      expect(salvo.succeeded).toBe(scenario.calls);
      expect(salvo.lost + salvo.wrong + salvo.duplicates).toBe(0);
      expect(salvo.ratioToSalvo).toBe(1);
      expect(salvo.latencyMs.p50).toBeGreaterThan(0);
    }
  });

  it("computes M* and the ratios from the scenario, the same for every contender", () => {
    const tiny = results.scenarios[0]!;
    // 24 calls at 1,200 RPM with a burst of 20: (24 - 20) x 50 ms + 20 ms; 6 rounds of 20 ms.
    expect(tiny.bound.binding).toBe("requests");
    expect(tiny.bound.boundMs).toBeCloseTo(220, 0);
    for (const row of tiny.rows) {
      expect(row.ratioToBound).toBeCloseTo(row.makespanMs / tiny.bound.boundMs, 9);
      expect(row.ratioToSalvo).toBeCloseTo(row.makespanMs / tiny.rows[0]!.makespanMs, 9);
    }
    expect(tiny.verdicts.map((v) => [v.target, v.met])).toEqual([
      ["within 9900% of M*", true],
      ["no item lost or unaccounted", true],
    ]);
    const staged = results.scenarios[1]!;
    expect(staged.bound.stages.map((s) => s.calls)).toEqual([3, 2]);
    expect(staged.bound.boundMs).toBeCloseTo(20, 6); // 10 ms + 10 ms: stage B waits for A
    // Server-side count: one request per item when nothing failed.
    expect(staged.rows[0]!.retries).toBe(0);
  });

  it("writes results.json and results.md", async () => {
    const out = join(dir, "out");
    const written = await writeResults(results, out);
    const json = JSON.parse(await readFile(written.json, "utf8")) as BenchResults;
    expect(json.scenarios).toHaveLength(2);
    // salvo and p-limit twice each, sequential once.
    expect(json.scenarios[0]!.runs).toHaveLength(5);
    const md = await readFile(written.markdown, "utf8");
    expect(md).toBe(markdownReport(results));
    expect(md).toContain(`Node ${process.version}`);
    expect(md).toMatch(/\| tiny \| 0\.22 s \| [\d.]+x \|/);
  });

  it("replaces the README block only between the markers", () => {
    const block = readmeBlock(results);
    const readme = `# Salvo\n\n${START}\nold table\n${END}\n\nmore\n`;
    const updated = replaceBlock(readme, block)!;
    expect(updated).toBe(`# Salvo\n\n${START}\n${block}\n${END}\n\nmore\n`);
    expect(replaceBlock(updated, block)).toBe(updated);
    expect(replaceBlock("# Salvo\nno markers\n", block)).toBeUndefined();
  });
});

describe("bench scenario files", () => {
  it("keeps the simulator's line numbers when the bench section comes first", () => {
    const text = "bench:\n  calls: 5\nlatency:\n  ttftMs: -1\n";
    expect(() => parseBenchScenario(text, "x.yaml", false)).toThrow(/x\.yaml:4/);
  });

  it("rejects an unknown bench field, naming it", () => {
    const text = "seed: 1\nbench:\n  callz: 5\n";
    expect(() => parseBenchScenario(text, "x.yaml", false)).toThrow(ConfigError);
  });

  it("applies the quick overrides and the time scale", () => {
    const text =
      "latency: { ttftMs: 100 }\nlimits: { rpm: 600 }\nbench:\n  calls: 50\n  timeoutMs: 1000\n  quick: { calls: 10, timeScale: 0.5 }\n";
    const full = parseBenchScenario(text, "s.yaml", false);
    const quick = parseBenchScenario(text, "s.yaml", true);
    expect(full.workload.stages).toEqual([50]);
    expect(quick.workload.stages).toEqual([10]);
    expect(quick.sim.latency?.ttftMs).toBe(50);
    expect(quick.sim.limits?.rpm).toBe(1200);
    expect(quick.workload.timeoutMs).toBe(500);
    // Half the time per call, twice the rate: the bound halves with the same calls.
    const same = parseBenchScenario(text.replace("calls: 10", "calls: 50"), "s.yaml", true);
    expect(modelBound(same).boundMs).toBeCloseTo(modelBound(full).boundMs / 2, 6);
  });
});

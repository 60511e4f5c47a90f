// The HTML report from the commands: `salvo run --report run.html` writes the page, with the same
// summary the JSON report has and the run's series; `salvo pipeline` writes report.html beside
// report.json, built from it. (test/report-html.test.ts opens such pages in Chromium.)
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import type { RunSummary } from "../src/metrics/run-metrics.ts";
import type { RunSeries } from "../src/metrics/run-timeline.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const KEY = "sk-test-report-cli-not-a-real-key";
const work = useWorkspace("salvo-report-cli-", {
  seed: 5,
  latency: { ttftMs: 10, msPerToken: 0.5 },
  output: { tokens: { min: 10, max: 30 } },
});

/** The data a report page embeds. */
function embedded(html: string): {
  run: RunSummary | null;
  series: RunSeries | null;
  pipeline: { report: unknown; tasks: Array<{ id: string; critical: boolean }> } | null;
} {
  const match = /<script type="application\/json" id="salvo-report">([\s\S]*?)<\/script>/.exec(
    html,
  );
  expect(match, "the page embeds its data").not.toBeNull();
  return JSON.parse(match![1]!);
}

async function salvo(args: string[]) {
  const io = memoryIo({ OPENAI_API_KEY: KEY });
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}

describe("HTML reports from the commands", () => {
  it("salvo run --report run.html writes the page; run.json has the same summary and series", async () => {
    const sim = await work.simulator({ capacity: { slots: 4 }, limits: { rpm: 3000 } });
    const input = join(work.dir, "requests.jsonl");
    const lines = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({
        custom_id: `r${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "gpt-4o-mini",
          max_tokens: 40,
          messages: [{ role: "user", content: `q${i}` }],
        },
      }),
    );
    await writeFile(input, `${lines.join("\n")}\n`);
    const html = join(work.dir, "run.html");
    const run = await salvo([
      "run",
      input,
      "--output",
      join(work.dir, "out.jsonl"),
      "--base-url",
      sim.baseUrl,
      "--concurrency",
      "4",
      "--progress",
      "none",
      "--report",
      html,
    ]);
    expect(run.code, run.err).toBe(0);
    const page = await readFile(html, "utf8");
    expect(page.startsWith("<!doctype html>")).toBe(true);
    expect(page).not.toContain(KEY);
    const data = embedded(page);
    expect(data.run?.succeeded).toBe(40);
    expect(data.run?.attempts).toBe(sim.stats().arrivals);
    const series = data.series!;
    expect(series.buckets.reduce((n, b) => n + b.succeeded, 0)).toBe(40);
    expect(series.buckets.reduce((n, b) => n + b.attempts, 0)).toBe(data.run?.attempts);
    expect(series.latency.counts.reduce((a, b) => a + b, 0)).toBe(40);

    // The JSON report of the same run made afresh carries the same summary, series included.
    const json = join(work.dir, "run.json");
    const again = await salvo([
      "run",
      input,
      "--output",
      join(work.dir, "out.jsonl"),
      "--base-url",
      sim.baseUrl,
      "--concurrency",
      "4",
      "--fresh",
      "--progress",
      "none",
      "--report",
      json,
    ]);
    expect(again.code, again.err).toBe(0);
    const report = JSON.parse(await readFile(json, "utf8"));
    expect(Object.keys(report.run).sort()).toEqual(Object.keys(data.run!).sort());
    expect(report.series.bucketMs).toBeGreaterThan(0);
  });

  it("salvo pipeline writes report.html beside report.json, from the same report", async () => {
    const sim = await work.simulator();
    const runDir = join(work.dir, "run");
    const result = await salvo([
      "pipeline",
      new URL("../examples/claim-coverage.yaml", import.meta.url).pathname,
      "--input",
      new URL("../examples/claim-coverage.input.json", import.meta.url).pathname,
      "--run-dir",
      runDir,
      "--base-url",
      sim.baseUrl,
      "--progress",
      "none",
    ]);
    expect(result.code, result.err).toBe(0);
    const report = JSON.parse(await readFile(join(runDir, "report.json"), "utf8"));
    const page = await readFile(join(runDir, "report.html"), "utf8");
    const data = embedded(page);
    expect(data.pipeline?.report).toEqual(report);
    const ran = (report.perTask as Array<{ status: string; reused: boolean }>).filter(
      (t) => !t.reused && t.status !== "cancelled",
    );
    expect(data.pipeline?.tasks).toHaveLength(ran.length);
    expect(
      data.pipeline?.tasks
        .filter((t) => t.critical)
        .map((t) => t.id)
        .sort(),
    ).toEqual([...report.criticalPath.tasks].sort());
  });
});

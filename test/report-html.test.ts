// The HTML report in a real headless Chromium (Debian's `chromium`), offline: a run against the
// simulator with 429s, retries, cooldowns and an adaptive limit, and a pipeline run, each written
// as JSON and as HTML; the page loads with every network request refused, its script runs
// without errors, every chart draws marks with a real size, and every number it shows is the
// JSON report's.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAMPLE, transcriptAnalysis } from "../examples/transcript-analysis.ts";
import { runBatchFile } from "../src/batch/run-batch-file.ts";
import { ganttTasks, renderHtmlReport } from "../src/metrics/report-html.ts";
import { RunMetrics, type RunSummary } from "../src/metrics/run-metrics.ts";
import { RunTimeline } from "../src/metrics/run-timeline.ts";
import { runPipeline } from "../src/pipeline/run-pipeline.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { ProviderRequest, ProviderResult } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import { startSimulator } from "../src/sim/index.ts";

/** Debian's chromium, or the one CHROMIUM_PATH names. */
function findChromium(): string | undefined {
  const named = process.env.CHROMIUM_PATH;
  if (named && existsSync(named)) return named;
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (existsSync(path)) return path;
  }
  try {
    return (
      execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

const CHROMIUM = findChromium();
if (CHROMIUM === undefined) {
  console.warn(
    "report-html.test.ts: SKIPPED: no chromium found (apt-get install -y chromium, or set CHROMIUM_PATH)",
  );
}

const KEY = "sk-test-report-not-a-real-key";
let dir = "";
let profile = "";
let browser: BrowserContext | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-report-"));
  profile = await mkdtemp(join(tmpdir(), "salvo-chromium-"));
  if (CHROMIUM === undefined) return;
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    offline: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      // No name resolves and no proxy answers: nothing can leave the machine.
      "--host-resolver-rules=MAP * ~NOTFOUND",
      "--proxy-server=http://127.0.0.1:9",
    ],
    viewport: { width: 1280, height: 900 },
  });
  // Every request but the report file itself is refused (and recorded, to fail the test).
  await browser.route("**/*", (route) =>
    route.request().url().startsWith("file:") ? route.continue() : route.abort(),
  );
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(profile, { recursive: true, force: true });
});

/** Opens a report file; returns the page once its script has drawn, and what went wrong. */
async function open(file: string) {
  const page = await browser!.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => {
    if (!r.url().startsWith("file:")) requests.push(r.url());
  });
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector("body[data-drawn=true]", { timeout: 10_000 });
  return { page, problems, requests };
}

type Page = Awaited<ReturnType<typeof open>>["page"];

/** Each chart's drawn marks: how many, and how many have a real size on the page. */
async function chartMarks(page: Page) {
  return page.$$eval("svg[data-chart]", (svgs) =>
    svgs.map((svg) => {
      const marks = [...svg.querySelectorAll(".mark")];
      const sized = marks.filter((m) => {
        const box = m.getBoundingClientRect();
        return box.width > 0 && box.height > 0;
      });
      const points = marks
        .filter((m) => m.tagName === "path")
        .map((m) => (m.getAttribute("d")?.match(/[MLHV]/g) ?? []).length);
      return {
        chart: svg.getAttribute("data-chart"),
        marks: marks.length,
        sized: sized.length,
        points,
        width: svg.getBoundingClientRect().width,
      };
    }),
  );
}

/** Every number shown: its JSON path, raw value and the text on the page. */
async function shownNumbers(page: Page) {
  return page.$$eval("[data-key]", (nodes) =>
    nodes.map((n) => ({
      key: n.getAttribute("data-key")!,
      value: n.getAttribute("data-value")!,
      text: n.textContent ?? "",
    })),
  );
}

function at(json: unknown, path: string): unknown {
  let value = json;
  for (const part of path.split(".")) value = (value as Record<string, unknown>)?.[part];
  return value;
}

/** The number a formatted text shows, in the JSON's unit (ms for durations, USD, counts). */
function parseShown(text: string): number | string {
  const m = /^\$?(-?[\d,]*\.?\d+)\s*(min|ms|s|x|\/s)?$/.exec(text.trim());
  if (m === null) return text;
  const n = Number(m[1]!.replace(/,/g, ""));
  if (m[2] === "min") return n * 60_000;
  if (m[2] === "s") return n * 1000;
  return n;
}

/** The page shows each number as the JSON has it, to the precision it prints. */
function expectNumbersMatch(
  numbers: Awaited<ReturnType<typeof shownNumbers>>,
  json: unknown,
): void {
  for (const { key, value, text } of numbers) {
    const expected = at(
      json,
      key.replace(/^run\./, "run.").replace(/^pipeline\.report\./, "pipeline.report."),
    );
    expect(String(expected), key).toBe(value);
    const shown = parseShown(text);
    if (typeof expected === "number") {
      const tolerance = Math.max(
        0.011 * Math.abs(expected),
        0.06,
        Math.abs(expected) < 1 ? 0.006 : 0,
      );
      expect(
        Math.abs((shown as number) - expected),
        `${key}: "${text}" vs ${expected}`,
      ).toBeLessThanOrEqual(tolerance);
    } else expect(shown, key).toBe(String(expected));
  }
}

describe.skipIf(CHROMIUM === undefined)("the HTML report in headless Chromium", () => {
  it("a run with 429s, retries, cooldowns and an adaptive limit: charts draw, numbers are the JSON's", async () => {
    // The server allows 20 requests a second and 6 in service; Salvo is not told, starts at
    // concurrency auto and learns; answers vary in length.
    const sim = await startSimulator({
      seed: 3,
      capacity: { slots: 6 },
      limits: { rpm: 1200, burstSeconds: 1 },
      latency: { ttftMs: 15, msPerToken: 1, jitter: 0.3 },
      output: { tokens: { min: 4, max: 40 } },
      faults: { p500: 0.03 },
    });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
      concurrency: "auto",
      learnLimits: false,
      retry: { baseDelayMs: 20, maxDelayMs: 300, maxAttempts: 30 },
      cooldownMs: 100,
    });
    const startedAt = performance.now();
    const metrics = new RunMetrics({
      startedAt,
      total: 100,
      usageOf: (v) => (v as ProviderResult).usage,
      costOf: (v) => (v as { cost?: { usd?: number } }).cost?.usd,
      limits: { requestsPerMinute: 1200, burstSeconds: 1 },
    });
    const timeline = new RunTimeline(startedAt);
    metrics.attach(salvo.scheduler);
    timeline.attach(salvo.scheduler);
    const requests: ProviderRequest[] = Array.from({ length: 100 }, (_, i) => ({
      path: "/chat/completions",
      body: {
        model: "gpt-4o-mini",
        max_tokens: 64,
        messages: [{ role: "user", content: `item ${i}` }],
      },
    }));
    const outcomes = await salvo.map(requests);
    const endedAt = performance.now();
    await salvo.close();
    await sim.close();
    expect(outcomes.every((o) => o.ok)).toBe(true);
    const run: RunSummary = metrics.summary(endedAt);
    const series = timeline.series(endedAt);
    expect(run.rateLimited, "the run met 429s").toBeGreaterThan(0);
    expect(run.retries).toBeGreaterThan(0);

    // The JSON report, then the HTML from the same data.
    const jsonFile = join(dir, "run.json");
    const htmlFile = join(dir, "run.html");
    await writeFile(jsonFile, JSON.stringify({ run, series }, null, 2));
    const json = JSON.parse(await readFile(jsonFile, "utf8"));
    await writeFile(htmlFile, renderHtmlReport({ title: "Salvo run: 100 calls", ...json }));
    const html = await readFile(htmlFile, "utf8");
    // Nothing to fetch: no element that loads, no URL but the SVG namespace's name.
    expect(html).not.toMatch(/<(link|img|iframe|object|embed)\b|\bsrc=/);
    expect(html.replaceAll("http://www.w3.org/2000/svg", "")).not.toMatch(/https?:\/\//);
    expect(html).not.toContain(KEY);

    const { page, problems, requests: sent } = await open(htmlFile);
    expect(problems).toEqual([]);
    expect(sent).toEqual([]);
    const charts = await chartMarks(page);
    const byName = Object.fromEntries(charts.map((c) => [c.chart, c]));
    for (const name of [
      "throughput",
      "in-flight",
      "queue",
      "failures",
      "limit",
      "latency",
      "bound",
    ]) {
      const chart = byName[name];
      expect(chart, name).toBeDefined();
      expect(chart!.width, name).toBeGreaterThan(200);
      expect(chart!.sized, `${name}: marks with a size`).toBeGreaterThan(0);
    }
    // Lines have a point per bucket; the histogram a bar per non-empty bin.
    expect(byName.throughput!.points[0]).toBe(series.buckets.length);
    const nonEmpty = series.latency.counts.filter((c) => c > 0).length;
    expect(byName.latency!.sized).toBe(nonEmpty);
    expect(byName.failures!.sized).toBe(
      series.buckets.reduce(
        (n, b) =>
          n + (b.rateLimited > 0 ? 1 : 0) + (b.retries > 0 ? 1 : 0) + (b.cooldowns > 0 ? 1 : 0),
        0,
      ),
    );
    // A step line: M, then H and V per later point, then H to the end.
    expect(byName.limit!.points[0]).toBe(2 * run.limitTimeline.length);
    expect(run.limit.min).toBeLessThan(run.limit.max);
    // Each number on the page is the JSON report's.
    const numbers = await shownNumbers(page);
    const keys = numbers.map((n) => n.key);
    for (const key of [
      "run.succeeded",
      "run.attempts",
      "run.retries",
      "run.rateLimited",
      "run.makespanMs",
      "run.throughputPerSecond",
      "run.latencyMs.p50",
      "run.latencyMs.p95",
      "run.latencyMs.p99",
      "run.cost.usd",
      "run.bound.boundMs",
      "run.ratioToBound",
      "run.tokens.input",
    ]) {
      expect(keys, key).toContain(key);
    }
    expectNumbersMatch(numbers, json);
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.length).toBeGreaterThan(20_000);
    if (process.env.SALVO_REPORT_SCREENSHOT)
      await writeFile(process.env.SALVO_REPORT_SCREENSHOT, shot);
    await page.close();
  }, 60_000);

  it("salvo run's own page (runBatchFile with report: run.html, as --report run.html): charts draw, every number is the run's JSON report's", async () => {
    const sim = await startSimulator({
      seed: 7,
      capacity: { slots: 4 },
      limits: { rpm: 3000 },
      latency: { ttftMs: 10, msPerToken: 0.5, jitter: 0.2 },
      output: { tokens: { min: 4, max: 24 } },
      faults: { p500: 0.05 },
    });
    const input = join(dir, "requests.jsonl");
    const lines = Array.from({ length: 60 }, (_, i) =>
      JSON.stringify({
        custom_id: `r${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "gpt-4o-mini",
          max_tokens: 32,
          messages: [{ role: "user", content: `q${i}` }],
        },
      }),
    );
    await writeFile(input, `${lines.join("\n")}\n`);
    const htmlFile = join(dir, "run.html");
    const result = await runBatchFile({
      input,
      output: join(dir, "out.jsonl"),
      provider: () => new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
      report: htmlFile,
      limitMemory: false,
      retry: { baseDelayMs: 10, maxDelayMs: 100 },
    });
    await sim.close();
    expect(result.status).toBe("completed");
    // What `--report run.json` holds: the result without its text (numbers as JSON writes them).
    const json = JSON.parse(JSON.stringify({ run: result.run, series: result.series }));
    const { page, problems, requests: sent } = await open(htmlFile);
    expect(problems).toEqual([]);
    expect(sent).toEqual([]);
    const charts = await chartMarks(page);
    const byName = Object.fromEntries(charts.map((c) => [c.chart, c]));
    for (const name of ["throughput", "in-flight", "latency"]) {
      expect(byName[name], name).toBeDefined();
      expect(byName[name]!.sized, `${name}: marks with a size`).toBeGreaterThan(0);
    }
    expect(byName.throughput!.points[0]).toBe(json.series.buckets.length);
    const numbers = await shownNumbers(page);
    const keys = numbers.map((n) => n.key);
    for (const key of ["run.succeeded", "run.attempts", "run.makespanMs", "run.latencyMs.p50"])
      expect(keys, key).toContain(key);
    expectNumbersMatch(numbers, json);
    expect(json.run.succeeded).toBe(60);
    await page.close();
  }, 60_000);

  it("a pipeline: its tasks in a Gantt chart, the critical path marked, numbers from report.json", async () => {
    const sim = await startSimulator({
      seed: 4,
      latency: { ttftMs: 20, msPerToken: 0.5 },
      output: { tokens: { min: 20, max: 80 }, echoChars: 0 },
    });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
      concurrency: 3,
    });
    const result = await runPipeline(transcriptAnalysis, { salvo, input: SAMPLE });
    await salvo.close();
    await sim.close();
    expect(result.status).toBe("succeeded");
    const reportFile = join(dir, "report.json");
    await writeFile(reportFile, JSON.stringify(result.report, null, 2));
    const report = JSON.parse(await readFile(reportFile, "utf8"));
    const tasks = ganttTasks(result.records, report);
    const htmlFile = join(dir, "report.html");
    await writeFile(htmlFile, renderHtmlReport({ title: "Pipeline", pipeline: { report, tasks } }));

    const { page, problems, requests: sent } = await open(htmlFile);
    expect(problems).toEqual([]);
    expect(sent).toEqual([]);
    const gantt = (await chartMarks(page)).find((c) => c.chart === "gantt");
    expect(gantt?.sized).toBe(result.records.size);
    const critical = await page.$$eval("svg[data-chart=gantt] rect.critical", (rects) =>
      rects.map((r) => r.getAttribute("data-task")),
    );
    expect(critical.sort()).toEqual([...report.criticalPath.tasks].sort());
    expect(report.criticalPath.tasks.length).toBeGreaterThan(1);
    const link = await page.$eval("svg[data-chart=gantt] path.critical-link", (p) =>
      p.getAttribute("d"),
    );
    expect((link?.match(/L/g) ?? []).length).toBe(2 * report.criticalPath.tasks.length - 2);
    const numbers = await shownNumbers(page);
    expect(numbers.map((n) => n.key)).toContain("pipeline.report.criticalPath.boundMs");
    expectNumbersMatch(numbers, { pipeline: { report } });
    await page.close();
  }, 60_000);
});

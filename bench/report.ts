// The benchmark's outputs: results.json as is, and a markdown report with a header line (date,
// machine, Node, mode), a summary matrix (makespan / M* per scenario and contender), each
// scenario's detail table and the targets. The README shows `readmeBlock`, generated, never typed.

import type { BenchResults, ResultRow, ScenarioResult } from "./harness.ts";

const num = (n: number | undefined, digits = 2) =>
  n === undefined || Number.isNaN(n) ? "—" : n.toFixed(digits);
const int = (n: number | undefined) =>
  n === undefined || Number.isNaN(n) ? "—" : Math.round(n).toLocaleString("en-US");
const seconds = (ms: number) => (Number.isNaN(ms) ? "—" : `${(ms / 1000).toFixed(2)} s`);

export function headerLine(results: BenchResults): string {
  const m = results.machine;
  return (
    `Measured ${results.date.slice(0, 16).replace("T", " ")} UTC on ${m.cpu} (${m.cores} cores), ` +
    `Node ${m.node}, ${m.platform}; ${results.mode} mode, median of ${results.repetitions} ` +
    `repetition${results.repetitions === 1 ? "" : "s"}${results.repetitions > 1 ? " of Salvo's rows (the peers, sequential calls, the scale run and some sweeps: 1)" : ""}; wall time ${(results.wallMs / 1000).toFixed(0)} s.`
  );
}

/**
 * The makespan / M* matrix: one row per scenario, one column per contender (`salvo` is Salvo at
 * the scenario's fixed concurrency, `salvo-auto` its default), then the best fixed limit a sweep
 * of Salvo's fixed limits found in the same run, and auto's makespan over it.
 */
export function summaryTable(results: BenchResults): string {
  const names: string[] = [];
  for (const s of results.scenarios)
    for (const r of s.rows)
      if (!names.includes(r.contender) && !r.contender.includes("N/5") && !isSweep(r.contender))
        names.push(r.contender);
  const swept = results.scenarios.some((s) => s.sweep !== undefined);
  const extra = swept ? ["best fixed (sweep)", "auto ÷ best"] : [];
  const head = `| scenario | M* | ${[...names, ...extra].join(" | ")} |`;
  const rule = `|---|---:|${[...names, ...extra].map(() => "---:").join("|")}|`;
  const lines = results.scenarios.map((s) => {
    const cells = names.map((n) => cell(s.rows.find((r) => r.contender === n)));
    if (swept) {
      const sw = s.sweep;
      cells.push(
        sw && Number.isFinite(sw.best.makespanMs)
          ? `${sw.best.limit}: ${num(s.bound.boundMs > 0 ? sw.best.makespanMs / s.bound.boundMs : Number.NaN)}x`
          : "—",
        sw?.auto ? `**${num(sw.auto.ratioToBest)}**` : "—",
      );
    }
    const bound = s.bound.boundMs > 0 ? seconds(s.bound.boundMs) : "—";
    return `| ${s.title} | ${bound} | ${cells.join(" | ")} |`;
  });
  return [head, rule, ...lines].join("\n");
}

function isSweep(contender: string): boolean {
  return /^salvo-fixed-\d+$/.test(contender);
}

/** A scenario's sweep: each fixed limit's makespan, the best, auto against them. */
export function sweepLine(s: ScenarioResult): string | undefined {
  const sw = s.sweep;
  if (sw === undefined) return undefined;
  const values = sw.values
    .map((v) => `${v.limit}: ${seconds(v.makespanMs)}${v.limit === sw.best.limit ? " (best)" : ""}`)
    .join(", ");
  const auto = sw.auto
    ? `; auto ${seconds(sw.auto.makespanMs)} = **${num(sw.auto.ratioToBest, 3)}x** the best${sw.auto.vsFixed[5] === undefined ? "" : `, ${num(sw.auto.vsFixed[5], 3)}x fixed 5`}${sw.auto.makespansMs.length > 1 ? ` (runs ${sw.auto.makespansMs.map((m) => (m / 1000).toFixed(2)).join(", ")} s)` : ""}`
    : "";
  return `Fixed limits swept (median makespan): ${values}${auto}. Unloaded call ${Math.round(sw.unloadedMs)} ms${sw.slots === undefined ? "" : `; ${sw.slots} slots`}.`;
}

// makespan / M* (or throughput where M* is 0), marked when items failed or went missing.
function cell(row: ResultRow | undefined): string {
  if (!row || row.skipped || row.repetitions === 0) return "—";
  const main =
    row.ratioToBound !== undefined
      ? `${num(row.ratioToBound)}x`
      : `${int(row.throughputPerSecond)}/s`;
  const missing = row.items - row.succeeded;
  return missing > 0 ? `${main} (${int(missing)} failed)` : main;
}

export function scenarioTable(s: ScenarioResult): string {
  const head =
    "| contender | makespan | x M* | x Salvo | req/s | ok | failed | lost | 429s | retries | latency p50 / p95 / p99 ms | in server (steady max) / p50 ms | CPU s | peak RSS MB |";
  const rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
  const lines = s.rows.map((r) => {
    if (r.skipped || r.repetitions === 0) {
      return `| ${r.contender} | ${r.skipped ?? `failed: ${r.description.split("\n")[0]}`} ||||||||||||`;
    }
    const lost = r.lost + r.wrong + r.duplicates;
    return (
      `| ${r.contender} | ${seconds(r.makespanMs)} | ${num(r.ratioToBound)} | ${num(r.ratioToSalvo)} | ` +
      `${int(r.throughputPerSecond)} | ${int(r.succeeded)} | ${int(r.failed)} | ${int(lost)} | ` +
      `${int(r.http429)} | ${int(r.retries)} | ${num(r.latencyMs.p50, 0)} / ${num(r.latencyMs.p95, 0)} / ${num(r.latencyMs.p99, 0)} | ` +
      `${r.steadyMaxInServer === undefined ? "—" : `${int(r.steadyMaxInServer)} / ${num(r.serverP50Ms, 0)}`} | ` +
      `${num(r.cpuMs / 1000)} | ${int(r.peakRssMb)} |`
    );
  });
  return [head, rule, ...lines].join("\n");
}

function boundLine(s: ScenarioResult): string {
  const b = s.bound;
  const terms = b.stages
    .map((st) =>
      Object.entries(st.terms)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k.replace(/Ms$/, "")} ${seconds(v)}`)
        .join(", "),
    )
    .join(" + ");
  return (
    `M* ${b.boundMs > 0 ? seconds(b.boundMs) : "0 (no modelled time)"} — binding: ${b.binding}` +
    `${terms ? ` (${terms})` : ""}; ${s.calls} calls, concurrency ${s.concurrency}` +
    `${s.knownLimits ? "" : ", limits not told to the clients"}` +
    `${s.timeScale !== 1 ? `, time scale ${s.timeScale}` : ""}.`
  );
}

function verdictLines(s: ScenarioResult): string[] {
  return s.verdicts.map(
    (v) => `- Salvo target "${v.target}": **${v.met ? "met" : "NOT met"}** (${v.detail})`,
  );
}

export function markdownReport(results: BenchResults): string {
  const out = [
    "# Salvo benchmark",
    "",
    headerLine(results),
    "",
    "Makespan as a multiple of M* (the physical bound of each scenario, the same for every contender), median of the repetitions; `(n failed)`: items that did not end with their answer. `salvo`: Salvo at the scenario's fixed concurrency; `salvo-auto`: Salvo's default (`--concurrency auto`); best fixed: the fastest of Salvo's fixed limits swept in the same run (limit: x M*); auto ÷ best: auto's makespan over it.",
    "",
    summaryTable(results),
    "",
  ];
  for (const s of results.scenarios) {
    out.push(`## ${s.title}`, "", `\`${s.path}\`. ${boundLine(s)}`, "", scenarioTable(s), "");
    const sweep = sweepLine(s);
    if (sweep) out.push(sweep, "");
    const v = verdictLines(s);
    if (v.length) out.push(...v, "");
    out.push("Contenders:", "");
    for (const r of s.rows)
      if (r.description && !r.skipped) out.push(`- ${r.contender}: ${r.description}`);
    out.push("");
  }
  out.push(
    "Columns: makespan from the first call to the last outcome; x M* and x Salvo are ratios of makespans; ok/failed/lost per item (lost = never settled, answered twice or with another item's answer); 429s as the simulator sent them; retries = requests the simulator received beyond one per item; latency per item from its first attempt to its last, client side; in server: the most requests in the simulator at once after the first quarter of the run, and the median answered call's time there (arrival to answer), for scenarios that read its timeline; CPU and peak RSS of the contender's own process (the simulator runs in another).",
    "",
  );
  return out.join("\n");
}

/** What README.md shows between its bench markers. */
export function readmeBlock(results: BenchResults): string {
  const targets = results.scenarios.flatMap((s) =>
    s.verdicts.map((v) => `- ${s.title}: ${v.target} — ${v.met ? "met" : "NOT met"} (${v.detail})`),
  );
  return [
    headerLine(results),
    "",
    summaryTable(results),
    "",
    ...(targets.length ? ["Salvo's targets:", "", ...targets, ""] : []),
    "Details: `bench/results/results.md`; run it yourself with `npm run bench -- --quick`.",
  ].join("\n");
}

/** Writes `results.json` and `results.md` into `dir`; returns their paths. */
export async function writeResults(
  results: BenchResults,
  dir: string,
): Promise<{ json: string; markdown: string }> {
  const { mkdir, writeFile } = await import("node:fs/promises");
  const { join } = await import("node:path");
  await mkdir(dir, { recursive: true });
  const json = join(dir, "results.json");
  const markdown = join(dir, "results.md");
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(markdown, markdownReport(results));
  return { json, markdown };
}

// Audit log throughput (not a test): chained appends per second under each fsync policy, and
// `verify` records per second. Prints a table of medians over a few runs.
//   node bench/audit.ts [--runs 3] [--records 100000]
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openChainLog } from "../src/audit/chain-log.ts";
import type { FsyncPolicy } from "../src/audit/line-writer.ts";
import { verifyLog } from "../src/audit/verify-log.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    records: { type: "string", default: "100000" },
  },
});
const RUNS = Number(values.runs);
const RECORDS = Number(values.records);
const PRODUCERS = 256;

/** A call record of a typical size (about 600 bytes on disk). */
const record = (producer: number, n: number) => ({
  run_id: "3f0c3c52-52f4-4d51-a2a8-7b9b5b3f0c11",
  call_id: String(producer * 1_000_000 + n),
  attempt: 1,
  status: "ok",
  duration_ms: 812.5,
  context: { claim_id: `CLM-${producer}`, doc_id: `DOC-${n}` },
  attributes: {
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 80,
  },
  request: { sha256: "9f2b5c1e8d7a6b4c3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d" },
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function appendRun(path: string, fsync: FsyncPolicy, records: number): Promise<number> {
  const log = openChainLog(path, { kind: "calls", fsync, checkpointFile: false, env: {} });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: PRODUCERS }, async (_, p) => {
      for (let n = p; n < records; n += PRODUCERS) await log.append("llm_call", record(p, n));
    }),
  );
  await log.close();
  return records / ((performance.now() - start) / 1000);
}

const dir = await mkdtemp(join(tmpdir(), "salvo-bench-audit-"));
const rows: Array<[string, string, string]> = [];
try {
  await appendRun(join(dir, "warm-up.jsonl"), "none", 20_000); // JIT warm-up, not reported
  for (const fsync of ["none", "interval", "always"] as const) {
    const records = fsync === "always" ? Math.min(RECORDS, 20_000) : RECORDS;
    const rates: number[] = [];
    for (let run = 0; run < RUNS; run++)
      rates.push(await appendRun(join(dir, `${fsync}-${run}.jsonl`), fsync, records));
    rows.push([
      `append, fsync ${fsync}`,
      `${Math.round(median(rates)).toLocaleString("en-US")}/s`,
      `${records} records x ${RUNS}, ${PRODUCERS} producers`,
    ]);
  }
  const file = join(dir, "none-0.jsonl");
  const { size } = await stat(file);
  const rates: number[] = [];
  let records = 0;
  for (let run = 0; run < RUNS; run++) {
    const start = performance.now();
    const report = await verifyLog(file);
    if (report.status !== "intact") throw new Error(`verify: ${report.status}`);
    records = report.records;
    rates.push(records / ((performance.now() - start) / 1000));
  }
  rows.push([
    "verify",
    `${Math.round(median(rates)).toLocaleString("en-US")}/s`,
    `${records} records, ${(size / 1e6).toFixed(1)} MB x ${RUNS}`,
  ]);
} finally {
  await rm(dir, { recursive: true, force: true });
}
const width = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), 10));
console.log(`audit bench (median of ${RUNS}), node ${process.version}`);
for (const row of [["what", "rate", "work"] as [string, string, string], ...rows]) {
  console.log(
    row.map((cell, i) => (i === 1 ? cell.padStart(width[i]!) : cell.padEnd(width[i]!))).join("  "),
  );
}

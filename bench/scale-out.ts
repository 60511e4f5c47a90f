// Scale-out: `salvo run --redis URL --workers N` as real processes, a real redis-server and the
// simulator over HTTP; every figure from the simulator's own stats (and the coordinator's report
// for the Redis round trips). Two parts:
//
// 1. Throughput with 1, 2, 4 and 8 workers, each worker capped at --worker-concurrency 8, against
//    an upstream whose limits allow it: 8 calls of ~0.4 s per worker is ~20 calls/s each, under a
//    3,000 RPM (50/s) limit. Expect near-linear growth until the limit, then flat at it, with no
//    429; and the Redis round trips per admission (one to be admitted, one to reconcile).
// 2. The acceptance scenario (issue 17): 4 workers told --rpm 600 --concurrency 8 against an
//    upstream of 600 RPM and 8 slots: 429s, most in the server at once, makespan / M*. Then the
//    same 4 processes without Redis, each believing it owns the limit: their 429s.
//
// Run: `npm run bench:scale-out` (= `node bench/scale-out.ts`); SALVO_BENCH_REPS (default 3) runs
// each measurement that many times and reports medians. Writes bench/results/scale-out.json.
// Needs redis-server (apt-get install -y redis-server) and the built CLI (npm run build).
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DistributedBatchResult } from "../src/distributed/run-distributed-batch.ts";
import { type SimConfigInput, type SimStats, startSimulator } from "../src/sim/index.ts";
import { chatLines } from "../test/support/chat-lines.ts";
import { redisServerPath, startRedisServer } from "../test/support/redis-server.ts";

const BIN = fileURLToPath(new URL("../bin/salvo.js", import.meta.url));
const REPS = Number(process.env.SALVO_BENCH_REPS ?? 3);
const ENV = { ...process.env, OPENAI_API_KEY: "sk-bench-scale-out-0000" };

if (redisServerPath === undefined) {
  console.error("bench:scale-out needs redis-server: apt-get install -y redis-server");
  process.exit(2);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function writeInput(path: string, lines: number, tag: string): Promise<void> {
  await writeFile(path, chatLines(lines, { tag, content: (i, t) => `bench ${t} ${i}` }));
}

function salvo(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: ENV,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

/** Calls per second at the provider: answers over the span from first arrival to last answer. */
function atProvider(stats: SimStats) {
  const arrivals = stats.timeline.map((e) => e.arrivalMs);
  const ends = stats.timeline.map((e) => e.endMs);
  const spanMs = Math.max(...ends) - Math.min(...arrivals);
  return { spanMs, perSecond: (stats.completions * 1000) / spanMs };
}

/** M* over what the simulator served (DESIGN.md), with its bucket of `burst` at the start. */
function boundMs(stats: SimStats, slots: number, rpm: number, burst: number): number {
  const served = stats.timeline.filter((e) => e.status === 200 && e.startMs !== null);
  const service = served.map((e) => e.endMs - e.startMs!);
  const sum = service.reduce((a, b) => a + b, 0);
  return Math.max(
    sum / slots,
    (60_000 * Math.max(0, served.length - burst)) / rpm + Math.min(...service),
    Math.max(...service),
  );
}

const redis = await startRedisServer();
const dir = await mkdtemp(join(tmpdir(), "salvo-bench-scale-"));
const results: Record<string, unknown> = {
  node: process.version,
  date: new Date().toISOString(),
  reps: REPS,
};

try {
  // --- 1. throughput with 1, 2, 4 and 8 workers: near-linear until the limit, then flat ---
  const RPM = 3_000;
  const LINES = 400;
  const throughputConfig: SimConfigInput = {
    seed: 11,
    latency: { ttftMs: 400 },
    output: { tokens: 8 },
    limits: { rpm: RPM, burstSeconds: 1 },
  };
  const sim = await startSimulator(throughputConfig);
  const rows: Array<Record<string, unknown>> = [];
  for (const workers of [1, 2, 4, 8]) {
    const samples: Array<{ perSecond: number; r429: number; admit: number; reconcile: number }> =
      [];
    for (let rep = 0; rep < REPS; rep++) {
      sim.reset();
      const input = join(dir, `t-${workers}-${rep}.jsonl`);
      await writeInput(input, LINES, `t${workers}r${rep}`);
      const report = `${input}.report.json`;
      const { code, stderr } = await salvo([
        "run",
        input,
        "-o",
        `${input}.out`,
        "--redis",
        redis.url,
        "--workers",
        String(workers),
        "--worker-concurrency",
        "8",
        "--concurrency",
        "64",
        "--rpm",
        String(RPM),
        "--base-url",
        sim.baseUrl,
        "--progress",
        "none",
        "--report",
        report,
      ]);
      if (code !== 0) throw new Error(`salvo run exited ${code}: ${stderr}`);
      const stats = sim.stats();
      const json = JSON.parse(readFileSync(report, "utf8")) as DistributedBatchResult;
      samples.push({
        perSecond: atProvider(stats).perSecond,
        r429: stats.byStatus["429"] ?? 0,
        admit: json.distributed.admission.roundTripsPerAdmission ?? Number.NaN,
        reconcile: json.distributed.admission.roundTripsPerReconcile ?? Number.NaN,
      });
    }
    rows.push({
      workers,
      "calls/s (median)": median(samples.map((s) => s.perSecond)).toFixed(1),
      "per worker alone": "~20",
      "limit (RPM/60)": (RPM / 60).toFixed(1),
      "429s (max)": Math.max(...samples.map((s) => s.r429)),
      "Redis trips / admission": median(samples.map((s) => s.admit)).toFixed(2),
      "Redis trips / reconcile": median(samples.map((s) => s.reconcile)).toFixed(2),
      samples,
    });
  }
  await sim.close();
  console.log(
    `scale-out throughput: ${LINES} lines, ~0.4 s calls, 8 in flight per worker, ${RPM} RPM; median of ${REPS} (node ${process.version})`,
  );
  console.table(rows.map(({ samples: _samples, ...row }) => row));
  results.throughput = { rpm: RPM, lines: LINES, rows };

  // --- 2. the acceptance scenario, with and without Redis ---
  const acceptanceConfig: SimConfigInput = {
    seed: 3,
    latency: { ttftMs: 250 },
    output: { tokens: 8 },
    capacity: { slots: 8 },
    limits: { rpm: 600, burstSeconds: 1 },
  };
  const sim2 = await startSimulator(acceptanceConfig);
  const N = 120;
  const withRedis: Array<{ r429: number; maxInServer: number; ratio: number }> = [];
  const without: Array<{ r429: number; maxInServer: number; requests: number }> = [];
  for (let rep = 0; rep < REPS; rep++) {
    sim2.reset();
    const input = join(dir, `a-${rep}.jsonl`);
    await writeInput(input, N, `a${rep}`);
    const { code, stderr } = await salvo([
      "run",
      input,
      "-o",
      `${input}.out`,
      "--redis",
      redis.url,
      "--workers",
      "4",
      "--rpm",
      "600",
      "--concurrency",
      "8",
      "--base-url",
      sim2.baseUrl,
      "--progress",
      "none",
    ]);
    if (code !== 0) throw new Error(`salvo run exited ${code}: ${stderr}`);
    const stats = sim2.stats();
    withRedis.push({
      r429: stats.byStatus["429"] ?? 0,
      maxInServer: stats.maxInServer,
      ratio: atProvider(stats).spanMs / boundMs(stats, 8, 600, 10),
    });

    sim2.reset();
    const parts = await Promise.all(
      [0, 1, 2, 3].map(async (p) => {
        const part = join(dir, `a-${rep}-part-${p}.jsonl`);
        await writeInput(part, N / 4, `a${rep}p${p}`);
        return part;
      }),
    );
    await Promise.all(
      parts.map((part) =>
        salvo([
          "run",
          part,
          "-o",
          `${part}.out`,
          "--rpm",
          "600",
          "--concurrency",
          "8",
          "--base-url",
          sim2.baseUrl,
          "--progress",
          "none",
        ]),
      ),
    );
    const alone = sim2.stats({ timeline: false });
    without.push({
      r429: alone.byStatus["429"] ?? 0,
      maxInServer: alone.maxInServer,
      requests: alone.arrivals,
    });
  }
  await sim2.close();
  console.log(
    `acceptance: ${N} lines, 4 processes told --rpm 600 --concurrency 8, upstream 600 RPM and 8 slots; median of ${REPS}`,
  );
  console.table([
    {
      setup: "4 workers sharing Redis",
      "429s": median(withRedis.map((r) => r.r429)),
      "most in the server": median(withRedis.map((r) => r.maxInServer)),
      "makespan / M* at the provider": median(withRedis.map((r) => r.ratio)).toFixed(3),
    },
    {
      setup: "4 processes without Redis",
      "429s": median(without.map((r) => r.r429)),
      "most in the server": median(without.map((r) => r.maxInServer)),
      "makespan / M* at the provider": "-",
    },
  ]);
  results.acceptance = { lines: N, withRedis, without };
} finally {
  await redis.close();
  await rm(dir, { recursive: true, force: true });
}

const out = join(dirname(fileURLToPath(import.meta.url)), "results", "scale-out.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`wrote ${out}`);

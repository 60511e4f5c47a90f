// Per-call scheduling overhead with an instant task (`async () => 1`): Salvo next to p-limit and
// p-queue doing only concurrency limiting, in one run, several repetitions, medians.
// Run: `npm run bench:overhead` (= `node bench/overhead.ts`). Writes bench/results/overhead.json.
// A micro-benchmark, not a test: numbers depend on the machine; the ratios are what matter.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pLimit from "p-limit";
import PQueue from "p-queue";
import { Scheduler } from "../src/index.ts";

const CALLS = Number(process.env.SALVO_BENCH_CALLS ?? 200_000);
const REPETITIONS = Number(process.env.SALVO_BENCH_REPS ?? 7);
const CONCURRENCY = 64;

const task = async () => 1;

type Contender = { name: string; run: (calls: number) => Promise<void> };

const contenders: Contender[] = [
  {
    name: "p-limit",
    run: async (calls) => {
      const limit = pLimit(CONCURRENCY);
      const promises: Array<Promise<number>> = new Array(calls);
      for (let i = 0; i < calls; i++) promises[i] = limit(task);
      await Promise.all(promises);
    },
  },
  {
    name: "p-queue",
    run: async (calls) => {
      const queue = new PQueue({ concurrency: CONCURRENCY });
      const promises: Array<Promise<number>> = new Array(calls);
      for (let i = 0; i < calls; i++) promises[i] = queue.add(task);
      await Promise.all(promises);
    },
  },
  {
    name: "salvo (concurrency only)",
    run: async (calls) => {
      const scheduler = new Scheduler({
        concurrency: CONCURRENCY,
        timeoutMs: Number.POSITIVE_INFINITY,
        retry: { maxAttempts: 1, budget: false },
        learnLimits: false,
      });
      const promises: Array<Promise<number>> = new Array(calls);
      for (let i = 0; i < calls; i++) promises[i] = scheduler.run(task);
      await Promise.all(promises);
    },
  },
  {
    name: "salvo (all limits on)",
    run: async (calls) => {
      // Limits set so high they never bind: this measures their bookkeeping, not waiting.
      const scheduler = new Scheduler({
        concurrency: CONCURRENCY,
        requestsPerMinute: 1e12,
        tokensPerMinute: 1e15,
        timeoutMs: 60_000,
        retry: { maxAttempts: 5 },
      });
      const cost = { tokens: 1_000 };
      const options = { cost };
      const promises: Array<Promise<number>> = new Array(calls);
      for (let i = 0; i < calls; i++) promises[i] = scheduler.run(task, options);
      await Promise.all(promises);
    },
  },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// Warm up every contender (JIT), then interleave repetitions so drift hits all alike.
for (const contender of contenders) await contender.run(20_000);
const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
for (let rep = 0; rep < REPETITIONS; rep++) {
  for (const contender of contenders) {
    const start = performance.now();
    await contender.run(CALLS);
    const seconds = (performance.now() - start) / 1000;
    samples.get(contender.name)!.push(CALLS / seconds);
  }
}

const rows = contenders.map((c) => {
  const callsPerSecond = median(samples.get(c.name)!);
  return { name: c.name, callsPerSecond, nsPerCall: 1e9 / callsPerSecond };
});
const base = rows.find((r) => r.name === "p-limit")!;
const pqueue = rows.find((r) => r.name === "p-queue")!;
const table = rows.map((r) => ({
  contender: r.name,
  "calls/s": Math.round(r.callsPerSecond).toLocaleString("en-US"),
  "ns/call": Math.round(r.nsPerCall),
  "cost vs p-limit": `${(r.nsPerCall / base.nsPerCall).toFixed(2)}x`,
  "cost vs p-queue": `${(r.nsPerCall / pqueue.nsPerCall).toFixed(2)}x`,
}));

console.log(
  `per-call overhead, instant task, concurrency ${CONCURRENCY}, ${CALLS.toLocaleString("en-US")} calls, median of ${REPETITIONS} (node ${process.version})`,
);
console.table(table);

const allOn = rows.find((r) => r.name === "salvo (all limits on)")!;
const targets = {
  allLimitsCostVsPLimit: allOn.nsPerCall / base.nsPerCall,
  allLimitsCallsPerSecond: allOn.callsPerSecond,
  met: allOn.nsPerCall / base.nsPerCall <= 2 && allOn.callsPerSecond > 200_000,
};
console.log(
  `target (all limits on: <= 2x p-limit's cost and > 200,000 calls/s): ${targets.met ? "met" : "NOT met"}`,
);

const out = join(dirname(fileURLToPath(import.meta.url)), "results", "overhead.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      node: process.version,
      calls: CALLS,
      repetitions: REPETITIONS,
      concurrency: CONCURRENCY,
      date: new Date().toISOString(),
      results: rows.map((r) => ({
        ...r,
        samples: samples.get(r.name),
        costVsPLimit: r.nsPerCall / base.nsPerCall,
        costVsPQueue: r.nsPerCall / pqueue.nsPerCall,
      })),
      targets,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${out}`);

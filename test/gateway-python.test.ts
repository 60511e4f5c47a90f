// Seed 001's shape in Python, standard library only: 4 processes, each with a pool of 5 claim
// threads, each claim with a nested pool of 8 item calls, all through `salvo serve` (a real
// process, started from the command line as a user would) to a simulator that allows 8 in
// service and 600 requests a minute. The gateway is the one admission authority for all four
// processes: the simulator never sees more than 8 at once nor a request over its limit, every
// answer reaches the item that asked, the makespan is within 10% of the physical bound, and the
// audit log holds one record per attempt with each call's claim and item, and verifies.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { physicalBound } from "../src/metrics/physical-bound.ts";
import { expectedMarker } from "../src/sim/index.ts";
import { UPSTREAM_OPENAI_KEY, useGatewayWorld } from "./support/gateway-world.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const PYTHON = ["python3", "python"].find(
  (cmd) => spawnSync(cmd, ["-c", "import sys; assert sys.version_info >= (3, 8)"]).status === 0,
);
const PROCESSES = 4;
const CLAIMS = 5;
const ITEMS = 8;

const world = useGatewayWorld("salvo-gateway-python-");

type ItemResult = {
  claim: string;
  item: string;
  prompt: string;
  status: number;
  text: string;
  start: number;
  end: number;
};

/** Runs a process to its end; rejects on a non-zero exit, with its output. */
function run(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      world.saw(stdout + stderr);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${stderr}`));
    });
  });
}

/** Starts `salvo serve`; resolves with the process and the base URL it printed first. */
function serve(
  args: string[],
): Promise<{ child: ChildProcess; baseUrl: string; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/salvo.js", "serve", ...args], {
      cwd: ROOT,
      env: { ...process.env, OPENAI_API_KEY: UPSTREAM_OPENAI_KEY },
    });
    let stdout = "";
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d));
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d;
      const first = stdout.indexOf("\n");
      if (first > 0)
        resolve({ child, baseUrl: stdout.slice(0, first), output: () => stdout + stderr });
    });
    child.on("error", reject);
    child.on("close", (code) => reject(new Error(`salvo serve exited ${code} early:\n${stderr}`)));
  });
}

describe("a Python client (urllib + ThreadPoolExecutor, seed 001's shape) through salvo serve", () => {
  it.skipIf(PYTHON === undefined)(
    `4 processes x 5 claims x 8 items: never more than 8 in service, zero 429s, every answer to its item, within 1.10x of M*, one audit record per attempt${PYTHON === undefined ? " (skipped: no python3 on PATH; .ci/run installs it)" : ""}`,
    async () => {
      const sim = await world.simulator({
        capacity: { slots: 8, queue: 0 }, // a 9th request at once would be refused (503)
        limits: { rpm: 600, burstSeconds: 1 },
        latency: { ttftMs: 250 },
      });
      const audit = join(world.dir, "calls.log");
      const gateway = await serve([
        "--base-url",
        sim.baseUrl,
        "--concurrency",
        "8",
        "--rpm",
        "600",
        // Half the simulator's one-second burst in reserve: a request admitted here may reach
        // the simulator late (a busy machine), bunched with later ones; the reserve absorbs it.
        "--burst-seconds",
        "0.5",
        "--port",
        "0",
        "--audit",
        audit,
        "--access-log",
        join(world.dir, "access.log"),
      ]);
      expect(gateway.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      let results: ItemResult[];
      try {
        await Promise.all(
          Array.from({ length: PROCESSES }, (_, p) =>
            run(PYTHON!, [
              "test/python/seed001_client.py",
              gateway.baseUrl,
              String(p),
              String(CLAIMS),
              String(ITEMS),
              join(world.dir, `items-${p}.jsonl`),
            ]),
          ),
        );
        results = [];
        for (let p = 0; p < PROCESSES; p++) {
          const text = await readFile(join(world.dir, `items-${p}.jsonl`), "utf8");
          results.push(
            ...text
              .trim()
              .split("\n")
              .map((line) => JSON.parse(line) as ItemResult),
          );
        }
      } finally {
        const closed = new Promise((resolve) => gateway.child.on("close", resolve));
        gateway.child.kill("SIGTERM");
        expect(await closed).toBe(0);
      }
      world.saw(gateway.output());
      expect(gateway.output()).toMatch(/salvo serve: stopped\. openai: 160 requests, 160 answered/);

      // Every item answered, to the item that asked, with no 429 to the client.
      const n = PROCESSES * CLAIMS * ITEMS;
      expect(results).toHaveLength(n);
      expect(new Set(results.map((r) => r.item)).size).toBe(n);
      for (const r of results) {
        expect(r.status, r.text).toBe(200);
        expect(r.text.startsWith(expectedMarker([{ role: "user", content: r.prompt }]))).toBe(true);
        expect(r.text).toContain(r.item);
      }

      // The simulator's own account: never more than 8 at once, nothing over its limits.
      const stats = sim.stats();
      expect(stats.maxInServer).toBeLessThanOrEqual(8);
      expect(stats.refusals).toEqual({
        badRequest: 0,
        quota: 0,
        rateLimited: 0,
        tooLarge: 0,
        queueFull: 0,
      });
      expect(stats.byStatus).toEqual({ "200": n });

      // Within 10% of the physical bound for these limits.
      const latencies = stats.timeline.map((t) => t.endMs - t.startMs!);
      const bound = physicalBound({
        calls: n,
        latencySumMs: latencies.reduce((a, b) => a + b, 0),
        latencyMinMs: Math.min(...latencies),
        latencyMaxMs: Math.max(...latencies),
        concurrency: 8,
        requestsPerMinute: 600,
        burstSeconds: 1,
      });
      const makespan =
        Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.start));
      expect(bound.binding).toBe("requests");
      expect(makespan / bound.boundMs).toBeLessThan(1.1);

      // One audit record per attempt, each with its call's claim and item from the header.
      const records = (await readFile(audit, "utf8"))
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { type: string; context: Record<string, string> })
        .filter((r) => r.type === "llm_call");
      expect(records).toHaveLength(stats.arrivals);
      const byItem = new Map(results.map((r) => [r.item, r.claim]));
      for (const record of records) {
        expect(byItem.get(record.context.item_id!)).toBe(record.context.claim_id);
        expect(record.context).toMatchObject({ call_purpose: "coverage", tenant: "default" });
      }
      expect(new Set(records.map((r) => r.context.item_id)).size).toBe(n);
      const verify = spawnSync(process.execPath, ["bin/salvo.js", "verify", audit], {
        cwd: ROOT,
        encoding: "utf8",
      });
      world.saw(verify.stdout + verify.stderr);
      expect(verify.status, verify.stdout + verify.stderr).toBe(0);
      expect(verify.stdout).toMatch(/INTACT/);
    },
    90_000,
  );
});

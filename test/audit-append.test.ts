// Losing nothing under concurrency: many async callers in one process, and several processes on
// one file. Every line is counted and parsed; every (caller, n) must be present exactly once; the
// file must verify (each process is its own chained segment).
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openChainLog } from "../src/audit/chain-log.ts";
import { verifyLog } from "../src/audit/verify-log.ts";

const WORKER = fileURLToPath(new URL("./fixtures/audit/append-worker.ts", import.meta.url));
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-audit-append-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Parses every line (throws on any unparsable one) and counts (caller, n) pairs. */
async function census(path: string): Promise<{ lines: number; pairs: Map<string, number> }> {
  const text = await readFile(path, "utf8");
  expect(text.endsWith("\n")).toBe(true);
  const lines = text.slice(0, -1).split("\n");
  const pairs = new Map<string, number>();
  for (const line of lines) {
    const record = JSON.parse(line) as { type: string; caller?: string; n?: number };
    if (record.type !== "llm_call") continue;
    const key = `${record.caller}:${record.n}`;
    pairs.set(key, (pairs.get(key) ?? 0) + 1);
  }
  return { lines: lines.length, pairs };
}

function run(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve(code ?? -1));
  });
}

describe("appends lose nothing", () => {
  it("1,000 concurrent callers x 100 records each, one process", async () => {
    const path = join(dir, "calls.jsonl");
    const log = openChainLog(path, { kind: "calls", fsync: "interval" });
    const callers = 1000;
    const perCaller = 100;
    await Promise.all(
      Array.from({ length: callers }, async (_, caller) => {
        for (let n = 0; n < perCaller; n++)
          await log.append("llm_call", { caller: `c${caller}`, n });
      }),
    );
    await log.close();
    const { lines, pairs } = await census(path);
    expect(pairs.size).toBe(callers * perCaller);
    for (const count of pairs.values()) expect(count).toBe(1);
    // genesis + records + a checkpoint every 1000 + the final one.
    expect(lines).toBe(1 + callers * perCaller + 100 + 1);
    const report = await verifyLog(path, { checkpointsFile: `${path}.checkpoints` });
    expect(report.status).toBe("intact");
    expect(report.records).toBe(lines);
  });

  it("4 processes appending to one call log", async () => {
    const path = join(dir, "calls.jsonl");
    const perProcess = 5000;
    const codes = await Promise.all(
      ["p0", "p1", "p2", "p3"].map((p) => run([path, p, String(perProcess)])),
    );
    expect(codes).toEqual([0, 0, 0, 0]);
    const { pairs } = await census(path);
    expect(pairs.size).toBe(4 * perProcess);
    for (const p of ["p0", "p1", "p2", "p3"]) {
      for (let n = 0; n < perProcess; n++) expect(pairs.get(`${p}:${n}`)).toBe(1);
    }
    const report = await verifyLog(path, { checkpointsFile: `${path}.checkpoints` });
    expect(report.status).toBe("intact");
    expect(report.segments).toBe(4);
    expect(report.checkpoints.external).toBe(4 * (perProcess / 200 + 1));
  });
});

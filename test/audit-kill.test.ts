// A writer killed with SIGKILL mid-stream leaves at worst a torn last line; the next open heals
// it (keeping the torn bytes as evidence) and the whole file still verifies. 50 kills, bounded.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openChainLog } from "../src/audit/chain-log.ts";
import { verifyLog } from "../src/audit/verify-log.ts";

const WORKER = fileURLToPath(new URL("./fixtures/audit/append-worker.ts", import.meta.url));
const KILLS = 50;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-audit-kill-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts a writer, waits for its first write, lets it run 20-80 ms, then SIGKILLs it. */
function killMidStream(path: string, payloadBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, path, "forever", String(payloadBytes)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.on("error", reject);
    child.stdout.once("data", () => {
      setTimeout(() => child.kill("SIGKILL"), 20 + Math.random() * 60);
    });
    child.on("exit", (_code, signal) =>
      signal === "SIGKILL"
        ? resolve()
        : reject(new Error(`writer ended without being killed (${signal})`)),
    );
  });
}

describe("kill -9 mid-stream", () => {
  it(`${KILLS} kills: at worst a torn tail, healed on the next open; the chain verifies`, async () => {
    const files = [0, 1, 2, 3, 4].map((i) => join(dir, `calls-${i}.jsonl`));
    let torn = 0;
    let healed = 0;
    const start = Date.now();
    // One writer at a time per file, the five files side by side: the kills are what is tested,
    // and a writer's start-up (most of each round) need not be paid fifty times in a row.
    // Every chain ends before the test does (the directory is removed after it), failed or not.
    const chains = await Promise.allSettled(
      files.map(async (path, f) => {
        for (let kill = f; kill < KILLS; kill += files.length) {
          // Records of 100 B or 16 KiB, so some batches are large writes a kill can cut.
          await killMidStream(path, kill % 2 === 0 ? 100 : 16 * 1024);
          const before = await verifyLog(path);
          expect(["intact", "torn_tail"]).toContain(before.status);
          if (before.status === "torn_tail") torn++;
          // The next open heals the tail; then everything verifies.
          await openChainLog(path, { kind: "calls", checkpointFile: false }).close();
          const after = await verifyLog(path);
          expect(after.first_bad).toBeUndefined();
          expect(after.status).toBe("intact");
          healed = Math.max(healed, after.healed);
        }
      }),
    );
    for (const chain of chains) if (chain.status === "rejected") throw chain.reason;
    const reports = await Promise.all(files.map((path) => verifyLog(path)));
    const totalHealed = reports.reduce((sum, r) => sum + r.healed, 0);
    expect(totalHealed).toBe(torn);
    console.log(
      `audit-kill: ${KILLS} kills in ${Date.now() - start} ms; torn tails ${torn}, healed ${totalHealed}; ` +
        `records ${reports.reduce((sum, r) => sum + r.records, 0)}`,
    );
  }, 60_000);
});

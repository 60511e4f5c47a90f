// Several real processes write one response cache directory at once, one of them killed with
// SIGKILL mid-write: every entry read back afterwards is the right answer or a miss, never a
// torn or wrong one, and every write of the processes that finished is there.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ResponseCache } from "../src/cache/response-cache.ts";
import { expectedAnswer, sharedKey, workerKey } from "./fixtures/cache/cache-keys.ts";

const WORKER = join(import.meta.dirname, "fixtures/cache/cache-worker.ts");
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-cache-procs-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function worker(args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, dir, ...args], { stdio: "pipe" });
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, err }));
  });
}

/** Starts a writer of large entries, lets it write for a while, then SIGKILLs it mid-stream. */
function killedWriter(): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, dir, "forever", "200000"], { stdio: "pipe" });
    child.stdout.once("data", () =>
      setTimeout(() => child.kill("SIGKILL"), 50 + Math.random() * 100),
    );
    child.on("error", reject);
    child.on("exit", (_code, signal) => resolve(signal));
  });
}

describe("response cache shared by several processes", () => {
  it("concurrent writers and a killed one: all finished writes readable, nothing torn or wrong", async () => {
    const count = 60;
    const names = ["w1", "w2", "w3", "w4"];
    const [signal, ...results] = await Promise.all([
      killedWriter(),
      ...names.map((name) => worker([name, String(count)])),
    ]);
    expect(signal).toBe("SIGKILL");
    for (const result of results) expect(result).toEqual({ code: 0, err: "" });

    const cache = await ResponseCache.open(dir);
    for (let i = 0; i < count; i++) {
      expect((await cache.get(sharedKey(i)))?.answer).toEqual(expectedAnswer(`shared-${i}`));
      for (const name of names)
        expect((await cache.get(workerKey(name, i)))?.answer).toEqual(
          expectedAnswer(`${name}-${i}`),
        );
    }
    // The killed writer's entries: each is whole and right, or absent.
    const padding = "x".repeat(200000);
    let whole = 0;
    for (let n = 0; n < 1000; n++) {
      const hit = await cache.get(workerKey("forever", n));
      if (hit === undefined) continue;
      expect(hit.answer).toEqual(expectedAnswer(`forever-${n}`, padding));
      whole += 1;
    }
    expect(whole).toBeGreaterThan(0);
    expect(cache.counters.errors).toBe(0);
    const stats = await cache.stats();
    expect(stats.entries).toBe(count + names.length * count + whole);
  }, 60_000);
});

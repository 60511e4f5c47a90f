// The run lock: one holder at a time, a refusal that names it, and a dead holder's lock taken
// over at once (gone pid, reused pid, another boot), never a live or uncheckable one's.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, RunLockedError } from "../errors.ts";
import { RunLock } from "./run-lock.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-lock-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A pid that was just used and is now free (a child that has exited and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(child.stdout.toString());
}

async function lockRecord(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
}

describe("RunLock", () => {
  it("refuses a second holder in the same process, naming the holder, until the first releases", async () => {
    const file = join(dir, "out.jsonl.lock");
    const first = await RunLock.acquire("out.jsonl", file, { purpose: "test" });
    const error = await RunLock.acquire("out.jsonl", file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunLockedError);
    const locked = error as RunLockedError;
    expect(locked.holder).toMatchObject({ pid: process.pid, host: hostname() });
    expect(locked.message).toContain(`pid ${process.pid} on host ${hostname()}, since `);
    expect(locked.message).toContain(file);
    expect(await lockRecord(file)).toMatchObject({ purpose: "test", pid: process.pid });
    await first.release();
    expect(existsSync(file)).toBe(false);
    const second = await RunLock.acquire("out.jsonl", file);
    await second.release();
    await first.release(); // idempotent, and does not remove another holder's lock
  });

  it("takes over at once the lock of a process that is gone", async () => {
    const file = join(dir, "out.jsonl.lock");
    const held = await RunLock.acquire("out.jsonl", file);
    const record = await lockRecord(file);
    await writeFile(file, JSON.stringify({ ...record, pid: deadPid(), token: "dead" }));
    const taken = await RunLock.acquire("out.jsonl", file);
    expect((await lockRecord(file)).pid).toBe(process.pid);
    expect((await lockRecord(file)).token).not.toBe("dead");
    await taken.release();
    await held.release(); // not its lock any more: a no-op
    expect(existsSync(file)).toBe(false);
  });

  it("takes over a lock whose pid now belongs to another process (pid reuse), or from an earlier boot", async () => {
    const file = join(dir, "out.jsonl.lock");
    const held = await RunLock.acquire("out.jsonl", file);
    const record = await lockRecord(file);
    await held.release();
    if (record.start_ticks !== undefined) {
      // Our own pid, alive, but started at another time: it is not the holder.
      await writeFile(file, JSON.stringify({ ...record, start_ticks: "1", token: "reused" }));
      const taken = await RunLock.acquire("out.jsonl", file);
      await taken.release();
    }
    if (record.boot_id !== undefined) {
      await writeFile(file, JSON.stringify({ ...record, boot_id: "another-boot", token: "boot" }));
      const taken = await RunLock.acquire("out.jsonl", file);
      await taken.release();
    }
    expect(existsSync(file)).toBe(false);
  });

  it("honours a holder on another host (it cannot be checked from here)", async () => {
    const file = join(dir, "out.jsonl.lock");
    const since = "2025-01-02T03:04:05.000Z";
    await writeFile(
      file,
      JSON.stringify({ salvo_lock: 1, pid: 1, host: "elsewhere", since, token: "t", purpose: "x" }),
    );
    const error = (await RunLock.acquire("out.jsonl", file).catch((e) => e)) as RunLockedError;
    expect(error).toBeInstanceOf(RunLockedError);
    expect(error.message).toContain(`pid 1 on host elsewhere, since ${since}`);
    expect(await lockRecord(file)).toMatchObject({ host: "elsewhere" });
  });

  it("refuses a lock file that is not Salvo's, and a directory it cannot write, as ConfigErrors", async () => {
    const file = join(dir, "out.jsonl.lock");
    await writeFile(file, "not a lock\n");
    await expect(RunLock.acquire("out.jsonl", file)).rejects.toBeInstanceOf(ConfigError);
    const missing = join(dir, "no-such-dir", "out.jsonl.lock");
    const error = (await RunLock.acquire("out", missing, { field: "--output" }).catch(
      (e) => e,
    )) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.field).toBe("--output");
  });

  it("of many acquirers racing for one dead holder's lock, exactly one wins", async () => {
    const file = join(dir, "out.jsonl.lock");
    const held = await RunLock.acquire("out.jsonl", file);
    const record = await lockRecord(file);
    await writeFile(file, JSON.stringify({ ...record, pid: deadPid(), token: "dead" }));
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => RunLock.acquire("out.jsonl", file)),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results)
      if (r.status === "rejected") expect(r.reason).toBeInstanceOf(RunLockedError);
    await (won[0] as PromiseFulfilledResult<RunLock>).value.release();
    await held.release();
    // No temporary or break file is left beside it.
    expect(await readdir(dir)).toEqual([]);
  });
});

import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CacheError } from "../errors.ts";
import { ResponseCache, type StoredAnswer } from "./response-cache.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-cache-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const answer = (text: string): StoredAnswer => ({
  status: 200,
  body: { choices: [{ message: { content: text } }] },
  usage: { inputTokens: 10, outputTokens: 5 },
  requestId: "req_1",
});
const details = { provider: "openai", model: "gpt-4o-mini", costUsd: 0.001 };

/** Every file under `root`, recursively. */
async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true }))
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  return out;
}

describe("ResponseCache", () => {
  it("stores and returns an answer by fingerprint, across instances (a later process)", async () => {
    const writer = await ResponseCache.open(join(dir, "c"));
    expect(await writer.get("a".repeat(64))).toBeUndefined();
    await writer.put("a".repeat(64), answer("yes"), details);
    const reader = await ResponseCache.open(join(dir, "c"));
    const hit = await reader.get("a".repeat(64));
    expect(hit?.answer).toEqual(answer("yes"));
    expect(hit?.metadata).toMatchObject({
      provider: "openai",
      model: "gpt-4o-mini",
      cost_usd: 0.001,
    });
    expect(reader.counters).toEqual({ hits: 1, misses: 0, stored: 0, errors: 0 });
    expect(writer.counters).toEqual({ hits: 0, misses: 1, stored: 1, errors: 0 });
  });

  it("an entry expires after its TTL (wall clock injected), and stats count it", async () => {
    let now = 1_000_000;
    const cache = await ResponseCache.open(dir, { ttlMs: 60_000, now: () => now });
    await cache.put("b".repeat(64), answer("fresh"), details);
    now += 59_999;
    expect(await cache.get("b".repeat(64))).toBeDefined();
    now += 1;
    expect(await cache.get("b".repeat(64))).toBeUndefined();
    const stats = await cache.stats();
    expect([stats.entries, stats.expired, stats.oldest, stats.newest]).toEqual([
      1, 1, 1_000_000, 1_000_000,
    ]);
    expect(stats.storedCostUsd).toBeCloseTo(0.001);
  });

  it("damaged content is a miss, never a wrong answer, and the entry is dropped", async () => {
    const cache = await ResponseCache.open(dir);
    await cache.put("c".repeat(64), answer("right"), details);
    const content = (await files(dir)).filter((f) => f.includes("content-v2"));
    expect(content).toHaveLength(1);
    await writeFile(content[0]!, JSON.stringify(answer("WRONG")));
    expect(await cache.get("c".repeat(64))).toBeUndefined();
    expect((await cache.stats()).entries).toBe(0);
  });

  it("clear removes every entry; clear --expired only the expired ones", async () => {
    let now = 0;
    const short = await ResponseCache.open(dir, { ttlMs: 10, now: () => now });
    const long = await ResponseCache.open(dir, { now: () => now });
    await short.put("d".repeat(64), answer("short"), details);
    await long.put("e".repeat(64), answer("long"), details);
    now = 100;
    expect(await long.clear({ expiredOnly: true })).toBe(1);
    expect(await long.get("d".repeat(64))).toBeUndefined();
    expect(await long.get("e".repeat(64))).toBeDefined();
    expect(await long.clear()).toBe(1);
    expect((await long.stats()).entries).toBe(0);
  });

  it("a directory that cannot be used is a CacheError before anything else happens", async () => {
    const file = join(dir, "not-a-dir");
    await writeFile(file, "x");
    await expect(ResponseCache.open(join(file, "cache"))).rejects.toBeInstanceOf(CacheError);
  });

  it("a failed write is reported, counted, and not thrown", async () => {
    const errors: string[] = [];
    const cache = await ResponseCache.open(join(dir, "ro"), {
      onError: (_e, op) => errors.push(op),
    });
    await rm(join(dir, "ro"), { recursive: true });
    await writeFile(join(dir, "ro"), "now a file"); // the directory is gone mid-run
    await cache.put("f".repeat(64), answer("lost"), details);
    expect(errors).toEqual(["put"]);
    expect(cache.counters.errors).toBe(1);
    expect((await stat(join(dir, "ro"))).isFile()).toBe(true);
    expect(await readFile(join(dir, "ro"), "utf8")).toBe("now a file");
  });
});

describe("ResponseCache file permissions", () => {
  it("stores 0600 files in 0700 directories even in a directory that already existed (0755)", async () => {
    const existing = join(dir, "shared");
    await mkdir(existing, { mode: 0o755 });
    await chmod(existing, 0o755);
    const cache = await ResponseCache.open(existing);
    for (const key of ["a", "b", "c"]) await cache.put(key.repeat(64), answer(key), details);
    const stored = await files(existing);
    expect(stored.length).toBeGreaterThanOrEqual(6); // content + index of each
    for (const file of stored) expect((await stat(file)).mode & 0o777, file).toBe(0o600);
    for (const entry of await readdir(existing, { withFileTypes: true }))
      if (entry.isDirectory())
        expect((await stat(join(existing, entry.name))).mode & 0o777, entry.name).toBe(0o700);
    expect((await cache.get("a".repeat(64)))?.answer).toEqual(answer("a"));
  });
});

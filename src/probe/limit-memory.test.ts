import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  endpointKey,
  LIMIT_MEMORY_FILE,
  limitMemoryPath,
  readRememberedLimit,
  rememberLimit,
} from "./limit-memory.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-limits-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const key = { endpoint: "https://api.example.com/v1", model: "gpt-4o-mini" };

describe("limit memory", () => {
  it("remembers a limit per endpoint and model, and reads it back", async () => {
    const path = join(dir, "out.jsonl.limits.json");
    expect(await readRememberedLimit(path, key)).toBeUndefined();
    const at = new Date("2026-11-24T10:00:00Z");
    await rememberLimit(path, key, { limit: 6, source: "previous-run", at });
    await rememberLimit(path, { ...key, model: "other" }, { limit: 40, source: "probe", at });
    const now = at.getTime() + 60_000;
    expect(await readRememberedLimit(path, key, { now })).toEqual({
      limit: 6,
      source: "previous-run",
      at: at.toISOString(),
    });
    expect((await readRememberedLimit(path, { ...key, model: "other" }, { now }))?.limit).toBe(40);
    expect(
      await readRememberedLimit(path, { ...key, endpoint: "http://localhost:8000" }, { now }),
    ).toBeUndefined();
  });

  it("the file is 0600, written whole (no temporary file left), its directory created", async () => {
    const path = join(dir, "cache", LIMIT_MEMORY_FILE);
    await rememberLimit(path, key, { limit: 3, source: "previous-run" });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, "cache"))).toEqual([LIMIT_MEMORY_FILE]);
    expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({ version: 1 });
  });

  it("no credentials, query or fragment of the endpoint reach the file", async () => {
    const path = join(dir, "limits.json");
    const secret = "sk-limit-memory-secret-123";
    const endpoint = `https://user:${secret}@api.example.com/v1/?api-key=${secret}#${secret}`;
    await rememberLimit(path, { endpoint, model: "m" }, { limit: 2, source: "previous-run" });
    expect(await readFile(path, "utf8")).not.toContain(secret);
    expect(endpointKey({ endpoint, model: "m" })).toBe("https://api.example.com/v1 m");
    // The same endpoint written another way is the same key.
    expect(
      (await readRememberedLimit(path, { endpoint: "https://api.example.com/v1", model: "m" }))
        ?.limit,
    ).toBe(2);
  });

  it("an old entry is not used: the endpoint may have changed since", async () => {
    const path = join(dir, "limits.json");
    const at = new Date("2026-01-01T00:00:00Z");
    await rememberLimit(path, key, { limit: 9, source: "probe", at });
    const later = at.getTime() + 31 * 86_400_000;
    expect(await readRememberedLimit(path, key, { now: later })).toBeUndefined();
    expect((await readRememberedLimit(path, key, { now: later, maxAgeMs: Infinity }))?.limit).toBe(
      9,
    );
  });

  it("a damaged file is no memory, never an error; writing replaces it", async () => {
    const path = join(dir, "limits.json");
    for (const text of ["{not json", "[]", '{"version":2,"limits":{}}', "null"]) {
      await writeFile(path, text);
      expect(await readRememberedLimit(path, key)).toBeUndefined();
    }
    // One bad entry among good ones: only it is dropped.
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        limits: {
          [endpointKey(key)]: { limit: 0, source: "previous-run", at: new Date().toISOString() },
          [endpointKey({ ...key, model: "b" })]: {
            limit: 4,
            source: "probe",
            at: new Date().toISOString(),
          },
        },
      }),
    );
    expect(await readRememberedLimit(path, key)).toBeUndefined();
    expect((await readRememberedLimit(path, { ...key, model: "b" }))?.limit).toBe(4);
    await rememberLimit(path, key, { limit: 5, source: "previous-run" });
    expect((await readRememberedLimit(path, key))?.limit).toBe(5);
  });

  it("refuses a limit that is not an integer >= 1", async () => {
    await expect(
      rememberLimit(join(dir, "l.json"), key, { limit: 0, source: "previous-run" }),
    ).rejects.toThrow(RangeError);
  });

  it("lives in the cache directory when there is one, else beside the output", () => {
    expect(limitMemoryPath({ cacheDir: "/c", output: "/o/out.jsonl" })).toBe("/c/limits.json");
    expect(limitMemoryPath({ output: "/o/out.jsonl" })).toBe("/o/out.jsonl.limits.json");
  });
});

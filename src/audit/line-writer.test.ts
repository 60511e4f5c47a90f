import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditWriteError, ConfigError } from "../errors.ts";
import { acquireLineWriter, LineWriter } from "./line-writer.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-writer-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("LineWriter", () => {
  it.each(["none", "interval", "always"] as const)(
    "fsync %s: batches whole lines in call order",
    async (fsync) => {
      const path = join(dir, "a.jsonl");
      const writer = acquireLineWriter(path, { fsync });
      await Promise.all(Array.from({ length: 500 }, (_, i) => writer.write(`{"i":${i}}\n`)));
      expect(writer.batches).toBeLessThan(10); // group commit: one write per batch, not per line
      await writer.close();
      const text = await readFile(path, "utf8");
      expect(
        text
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l).i),
      ).toEqual(Array.from({ length: 500 }, (_, i) => i));
    },
  );

  it("drains synchronously when the queue is full, so memory stays bounded", async () => {
    const path = join(dir, "b.jsonl");
    const writer = acquireLineWriter(path, { maxQueueBytes: 1000, fsync: "none" });
    for (let i = 0; i < 100; i++) void writer.write(`${"x".repeat(99)}\n`);
    expect(writer.bytesWritten).toBeGreaterThanOrEqual(9000); // written before any await
    await writer.close();
    expect((await readFile(path, "utf8")).length).toBe(10_000);
  });

  it("a failed write is fatal: the pending and later appends reject with AuditWriteError", async () => {
    const path = join(dir, "c.jsonl");
    await writeFile(path, "");
    const fd = openSync(path, "r"); // not writable
    const writer = new LineWriter(fd, path, {
      fsync: "none",
      fsyncIntervalMs: 100,
      maxBatchBytes: 1 << 20,
      maxQueueBytes: 1 << 23,
      mode: 0o600,
    });
    await expect(writer.write("x\n")).rejects.toBeInstanceOf(AuditWriteError);
    await expect(writer.write("y\n")).rejects.toBeInstanceOf(AuditWriteError);
    await expect(writer.close()).rejects.toBeInstanceOf(AuditWriteError);
    try {
      closeSync(fd);
    } catch {
      // already closed by the writer
    }
  });

  it("validates its options", () => {
    expect(() => acquireLineWriter(join(dir, "d"), { fsync: "sometimes" as never })).toThrow(
      ConfigError,
    );
    expect(() => acquireLineWriter(join(dir, "d"), { maxBatchBytes: 0 })).toThrow(ConfigError);
  });
});

describe("LineWriter: a log that cannot be opened", () => {
  it("is a ConfigError naming the path and why, not a raw ENOENT (it crashed salvo run --audit)", () => {
    const path = join(dir, "missing", "calls.jsonl");
    const error = (() => {
      try {
        acquireLineWriter(path);
      } catch (thrown) {
        return thrown;
      }
      throw new Error("expected a ConfigError");
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(
      new RegExp(`^${path}: audit log: expected a file Salvo can create and append to, .*ENOENT`),
    );
    expect(() => acquireLineWriter(dir)).toThrow(/EISDIR/);
  });
});

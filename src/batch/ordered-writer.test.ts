import { mkdtemp, open, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { OrderedWriter } from "./ordered-writer.ts";

async function tempFile(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), "salvo-writer-")), "out.jsonl");
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("OrderedWriter", () => {
  it("writes every index exactly once, in order, whatever the completion order, holding < window lines", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.nat(), { minLength: 60, maxLength: 60 }),
        fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
        async (total, window, choices, drains) => {
          const path = await tempFile();
          const writer = await OrderedWriter.open(path, { window });
          const put = new Set<number>();
          for (let step = 0; step < total; step++) {
            // Like a runner: only indices inside the window are in flight; one completes.
            const inFlight: number[] = [];
            for (let i = writer.nextIndex; i < Math.min(total, writer.nextIndex + window); i++)
              if (!put.has(i)) inFlight.push(i);
            const index = inFlight[(choices[step] ?? 0) % inFlight.length]!;
            writer.put(index, JSON.stringify({ index }));
            put.add(index);
            expect(writer.pending).toBeLessThan(window);
            if (drains[step]) await writer.drain();
          }
          expect(writer.pending).toBe(0);
          await writer.close();
          const lines = (await readFile(path, "utf8")).split("\n");
          expect(lines.pop()).toBe("");
          expect(lines.map((l) => (JSON.parse(l) as { index: number }).index)).toEqual(
            Array.from({ length: total }, (_, i) => i),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it("appends after startIndex, creates the file 0600, and refuses indices out of the window or repeated", async () => {
    const path = await tempFile();
    const writer = await OrderedWriter.open(path, { startIndex: 10, window: 3 });
    expect(() => writer.put(9, "x")).toThrow(RangeError);
    expect(() => writer.put(13, "x")).toThrow(/outside the window/);
    writer.put(12, '"c"');
    expect(() => writer.put(12, "x")).toThrow(/already put/);
    expect(writer.pending).toBe(1);
    writer.put(10, '"a"');
    expect(writer.nextIndex).toBe(11);
    writer.put(11, '"b"');
    expect([writer.nextIndex, writer.pending]).toEqual([13, 0]);
    await writer.close({ fsync: true });
    expect(writer.written).toBe(13);
    expect(await readFile(path, "utf8")).toBe('"a"\n"b"\n"c"\n');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("coalesces lines that become ready together into one write", async () => {
    const path = await tempFile();
    const probe = await open(path, "a");
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => unknown };
    await probe.close();
    const write = vi.spyOn(proto, "write");
    const writer = await OrderedWriter.open(path, { window: 100 });
    for (let i = 49; i >= 0; i--) writer.put(i, String(i));
    for (let i = 50; i < 100; i++) writer.put(i, String(i));
    await writer.close();
    expect(write).toHaveBeenCalledTimes(1);
    expect((await readFile(path, "utf8")).split("\n")).toHaveLength(101);
  });

  it("propagates a write error (ENOSPC) to drain, close and later puts", async () => {
    const writer = await OrderedWriter.open("/dev/full");
    writer.put(0, "x".repeat(100));
    await expect(writer.drain()).rejects.toMatchObject({ code: "ENOSPC" });
    expect(() => writer.put(1, "y")).toThrow(/ENOSPC/);
    await expect(writer.close()).rejects.toMatchObject({ code: "ENOSPC" });
  });
});

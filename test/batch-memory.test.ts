// The input reader's memory does not grow with the file: 200,000 lines, heap measured after full
// GCs in a child process started with --expose-gc.

import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const run = promisify(execFile);
const script = join(import.meta.dirname, "fixtures/batch/read-memory.ts");

it("reading a 200,000-line input keeps the heap flat", async () => {
  const dir = await mkdtemp(join(tmpdir(), "salvo-memory-"));
  const { stdout } = await run(process.execPath, [
    "--expose-gc",
    script,
    join(dir, "in.jsonl"),
    "200000",
  ]);
  const result = JSON.parse(stdout) as {
    items: number;
    baseline: number;
    peak: number;
    afterRead: number;
    afterScan: number;
    total: number;
  };
  expect(result.items).toBe(200_000);
  expect(result.total).toBe(200_000);
  const MB = 1024 * 1024;
  // The file is ~40 MB; holding it, or its items, would take far more than this.
  expect(result.peak - result.baseline).toBeLessThan(30 * MB);
  expect(result.afterRead - result.baseline).toBeLessThan(30 * MB);
  // The scan keeps the set of custom_ids (200,000 short strings): bounded, but not flat.
  expect(result.afterScan - result.baseline).toBeLessThan(60 * MB);
  console.log(
    `reader memory: +${((result.peak - result.baseline) / MB).toFixed(1)} MB peak over 200,000 lines`,
  );
}, 60_000);

// The streaming form runs a million items in flat memory and never reads more than its window
// ahead of the oldest item not yet yielded. Measures memory, not time: instant tasks, fake clock.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { FakeClock } from "./fake-clock.ts";
import { Scheduler } from "./scheduler.ts";

function collector(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("stream over 1,000,000 items", () => {
  it("keeps the heap flat and the read-ahead within the window", { timeout: 60_000 }, async () => {
    const gc = collector();
    const total = 1_000_000;
    const window = 256;
    const scheduler = new Scheduler({ clock: new FakeClock(), concurrency: 64, window });
    let read = 0;
    let yielded = 0;
    let maxAhead = 0;
    function* inputs() {
      for (let i = 0; i < total; i++) {
        read++;
        if (read - yielded > maxAhead) maxAhead = read - yielded;
        yield i;
      }
    }
    let baseline = 0;
    let peakGrowth = 0;
    let expected = 0;
    let failures = 0;
    for await (const outcome of scheduler.stream(inputs(), async (i) => i * 2)) {
      if (!outcome.ok || outcome.value !== expected * 2 || outcome.index !== expected) failures++;
      expected++;
      yielded++;
      if (yielded === 50_000) {
        gc();
        baseline = process.memoryUsage().heapUsed;
      } else if (yielded % 250_000 === 0) {
        gc();
        peakGrowth = Math.max(peakGrowth, process.memoryUsage().heapUsed - baseline);
      }
    }
    expect(failures).toBe(0);
    expect(yielded).toBe(total);
    expect(maxAhead).toBeLessThanOrEqual(window);
    expect(peakGrowth).toBeLessThan(50 * 1024 * 1024);
    expect(scheduler.pending).toBe(0);
    console.log(
      `1M stream: heap growth after warm-up ${(peakGrowth / 1024 / 1024).toFixed(1)} MB, max read-ahead ${maxAhead}`,
    );
  });
});

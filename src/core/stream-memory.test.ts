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

function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe("stream over 1,000,000 items", () => {
  // A per-item leak of even a few bytes shows as a slope between 250k and 1M items; a fixed
  // bound on total growth would let ~50 bytes per item through. The signal pass catches a
  // listener (or a closure holding one) left on a long-lived signal per item.
  it.each([
    { name: "without a signal", withSignal: false },
    { name: "with a shared AbortSignal", withSignal: true },
  ])(
    "keeps the heap flat and the read-ahead within the window, $name",
    {
      timeout: 120_000,
    },
    async ({ withSignal }) => {
      const gc = collector();
      const total = 1_000_000;
      const window = 256;
      const scheduler = new Scheduler({ clock: new FakeClock(), concurrency: 64, window });
      const controller = new AbortController();
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
      const heap = new Map<number, number>();
      let expected = 0;
      let failures = 0;
      const signal = withSignal ? controller.signal : undefined;
      for await (const outcome of scheduler.stream(inputs(), async (i) => i * 2, { signal })) {
        if (!outcome.ok || outcome.value !== expected * 2 || outcome.index !== expected) failures++;
        expected++;
        yielded++;
        if (yielded % 250_000 === 0) heap.set(yielded, heapAfterGc(gc));
      }
      expect(failures).toBe(0);
      expect(yielded).toBe(total);
      expect(maxAhead).toBeLessThanOrEqual(window);
      expect(scheduler.pending).toBe(0);
      const bytesPerItem = (heap.get(1_000_000)! - heap.get(250_000)!) / 750_000;
      expect(bytesPerItem).toBeLessThan(8);
      console.log(
        `1M stream ${withSignal ? "with" : "without"} a signal: ${bytesPerItem.toFixed(2)} B/item from 250k to 1M, max read-ahead ${maxAhead}`,
      );
    },
  );
});

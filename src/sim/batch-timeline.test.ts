import { describe, expect, it } from "vitest";
import { resolveBatchApiConfig } from "./batch-config.ts";
import { BatchTimeline } from "./batch-timeline.ts";

const config = resolveBatchApiConfig({
  validatingMs: 100,
  completionMs: 1000,
  finalizingMs: 50,
  cancellingMs: 200,
  expiryMs: 10_000,
});

function timeline(requests: number, overrides = {}) {
  return new BatchTimeline(
    { ...config, ...overrides },
    { createdMs: 1000, requests, salt: 3, seed: 1 },
  );
}

function processed(t: BatchTimeline, at: number): number {
  let n = 0;
  for (let i = 0; i < t.requests; i++) if (t.processedAt(i, at)) n += 1;
  return n;
}

describe("BatchTimeline", () => {
  it("goes validating, in progress, finalizing, completed, with requests finishing over the processing time", () => {
    const t = timeline(10);
    expect(t.phaseAt(1000)).toEqual({ phase: "validating" });
    expect(t.phaseAt(1099)).toEqual({ phase: "validating" });
    expect(t.phaseAt(1100)).toEqual({ phase: "in_progress", since: 1100 });
    expect(processed(t, 1100)).toBe(0);
    // Evenly spread: one request per 100 ms.
    expect(processed(t, 1600)).toBe(5);
    expect(t.phaseAt(2100)).toEqual({ phase: "finalizing", since: 2100 });
    expect(processed(t, 2100)).toBe(10);
    expect(t.phaseAt(2150)).toEqual({ phase: "ended", outcome: "completed", at: 2150 });
    expect(processed(t, 99_999)).toBe(10);
  });

  it("finishes requests in a seeded order that is not the input order", () => {
    const t = timeline(50);
    const order = Array.from({ length: 50 }, (_, i) => i).sort((a, b) => t.doneMs(a) - t.doneMs(b));
    expect(order).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const again = timeline(50);
    expect(Array.from({ length: 50 }, (_, i) => again.doneMs(i))).toEqual(
      Array.from({ length: 50 }, (_, i) => t.doneMs(i)),
    );
  });

  it("a bigger batch takes longer with msPerRequest", () => {
    const t = timeline(10, { msPerRequest: 100 });
    expect(t.lastMs).toBe(1100 + 1000 + 10 * 100);
  });

  it("expires at the end of the completion window: the requests not processed by then are not", () => {
    const t = timeline(10, { expiryMs: 700 });
    expect(t.phaseAt(1699)).toEqual({ phase: "in_progress", since: 1100 });
    expect(t.phaseAt(1700)).toEqual({ phase: "ended", outcome: "expired", at: 1700 });
    expect(processed(t, 1700)).toBe(6);
    // Nothing more is processed after the batch ended.
    expect(processed(t, 50_000)).toBe(6);
  });

  it("cancels: cancelling for cancellingMs, then cancelled with what was processed by then", () => {
    const t = timeline(10);
    expect(t.cancel(1300)).toBeUndefined();
    expect(t.phaseAt(1299)).toEqual({ phase: "in_progress", since: 1100 });
    expect(t.phaseAt(1300)).toEqual({ phase: "cancelling", since: 1300 });
    expect(t.phaseAt(1500)).toEqual({ phase: "ended", outcome: "cancelled", at: 1500 });
    expect(processed(t, 1500)).toBe(4);
    expect(processed(t, 9000)).toBe(4);
  });

  it("refuses to cancel a batch that is finalizing or has ended", () => {
    const t = timeline(10);
    expect(t.cancel(2120)).toEqual({ phase: "finalizing", since: 2100 });
    expect(t.cancel(3000)).toEqual({ phase: "ended", outcome: "completed", at: 2150 });
    expect(t.cancelMs).toBeUndefined();
  });

  it("a batch that failed validation fails when validation ends, with nothing processed", () => {
    const t = new BatchTimeline(config, {
      createdMs: 0,
      requests: 3,
      salt: 1,
      seed: 1,
      invalid: true,
    });
    expect(t.phaseAt(50)).toEqual({ phase: "validating" });
    expect(t.phaseAt(100)).toEqual({ phase: "ended", outcome: "failed", at: 100 });
    expect(processed(t, 10_000)).toBe(0);
  });
});

import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { Emitter } from "../core/emitter.ts";
import type { SchedulerEvents } from "../core/events.ts";
import { RunTimeline } from "./run-timeline.ts";

const counts = (at: number, inFlight: number, limit = 4, queued = 0) => ({
  at,
  inFlight,
  queued,
  limit,
});
const ref = (id: number) => ({ id, index: id, scope: undefined });

function timeline(startedAt = 0) {
  const events = new Emitter<SchedulerEvents>((error) => {
    throw error;
  });
  const line = new RunTimeline(startedAt);
  line.attach(events);
  return { events, line };
}

describe("RunTimeline", () => {
  it("counts each event in its bucket and averages the attempts in flight over time", () => {
    const { events, line } = timeline(1000);
    events.emit("started", { ...counts(1000, 1), ...ref(1), attempt: 1, waitedMs: 0 });
    events.emit("started", { ...counts(1050, 2), ...ref(2), attempt: 1, waitedMs: 0 });
    events.emit("rate-limited", {
      ...counts(1120, 2),
      ...ref(2),
      attempt: 1,
      error: 1,
      retryAfterMs: 5,
    });
    events.emit("retry-scheduled", {
      ...counts(1120, 1),
      ...ref(2),
      nextAttempt: 2,
      delayMs: 5,
      error: 1,
    });
    events.emit("cooldown", { ...counts(1120, 1), until: 1180, durationMs: 60 });
    events.emit("succeeded", {
      ...counts(1150, 0),
      ...ref(1),
      attempts: 1,
      latencyMs: 150,
      value: undefined,
    });
    const series = line.series(1200);
    expect(series.bucketMs).toBe(100);
    expect(series.buckets).toHaveLength(2);
    const [b0, b1] = series.buckets;
    expect(b0).toMatchObject({ t: 0, attempts: 2, succeeded: 0, inFlight: 1.5, limit: 4 });
    // 1100-1120 two in flight, 1120-1150 one, 1150-1200 none: (2*20 + 1*30) / 100.
    expect(b1).toMatchObject({ t: 100, rateLimited: 1, retries: 1, cooldowns: 1, succeeded: 1 });
    expect(b1!.inFlight).toBeCloseTo(0.7, 9);
    expect(series.pauses).toEqual([[120, 180]]);
    // The attempt took 150 ms: counted in the first bin whose upper edge is >= 150.
    const bin = series.latency.edgesMs.findIndex((edge) => edge >= 150);
    expect(series.latency.counts[bin]).toBe(1);
    expect(series.latency.counts.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it("doubles the bucket width past 240 buckets and keeps every count", () => {
    const { events, line } = timeline(0);
    for (let i = 0; i < 600; i++) {
      events.emit("started", { ...counts(i * 100, 1), ...ref(i), attempt: 1, waitedMs: 0 });
      events.emit("succeeded", {
        ...counts(i * 100 + 40, 0),
        ...ref(i),
        attempts: 1,
        latencyMs: 40,
        value: undefined,
      });
    }
    const series = line.series(60_000);
    expect(series.bucketMs).toBe(400);
    expect(series.buckets.length).toBeLessThanOrEqual(240);
    expect(series.buckets.reduce((n, b) => n + b.succeeded, 0)).toBe(600);
    expect(series.buckets.reduce((n, b) => n + b.attempts, 0)).toBe(600);
    // One in flight 40% of the time.
    for (const b of series.buckets) expect(b.inFlight).toBeCloseTo(0.4, 9);
  });

  it("crosses a bucket edge that floating point puts a hair early (it used to loop forever)", async () => {
    // (1234.567 + 7000) - 1234.567 is just under 7000: the edge's index came out one short, the
    // integration made no progress, and the process hung. Run in a worker, so a hang is a failure.
    const code = `
      import { parentPort } from "node:worker_threads";
      import { RunTimeline } from ${JSON.stringify(new URL("./run-timeline.ts", import.meta.url).href)};
      const listeners = {};
      const line = new RunTimeline(1234.567);
      line.attach({ on: (name, fn) => { listeners[name] = fn; return () => {}; } });
      listeners.started({ at: 1234.567, inFlight: 1, queued: 0, limit: 2, id: 1, index: 0, attempt: 1, waitedMs: 0 });
      listeners.succeeded({ at: 1234.567 + 7050, inFlight: 0, queued: 0, limit: 2, id: 1, index: 0, attempts: 1, latencyMs: 7050 });
      const series = line.series(1234.567 + 7100);
      parentPort.postMessage(series.buckets.reduce((n, b) => n + b.succeeded, 0));
    `;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
    try {
      const result = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("RunTimeline did not return")), 10_000);
        worker.once("message", (value) => {
          clearTimeout(timer);
          resolve(value);
        });
        worker.once("error", (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
      expect(result).toBe(1);
    } finally {
      await worker.terminate();
    }
  }, 20_000);
});

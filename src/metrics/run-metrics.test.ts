import { describe, expect, it } from "vitest";
import { Emitter } from "../core/emitter.ts";
import type { SchedulerEvents } from "../core/events.ts";
import { FakeClock } from "../core/fake-clock.ts";
import { Scheduler } from "../core/scheduler.ts";
import { AbortedError, RateLimitError } from "../errors.ts";
import { statusFields } from "../progress/status-fields.ts";
import { RunMetrics, rateLimitsInForce } from "./run-metrics.ts";

const counts = (at: number) => ({ at, inFlight: 1, queued: 0, limit: 4 });
const ref = (id: number) => ({ id, index: id, scope: undefined });

describe("RunMetrics", () => {
  it("derives counts, latency, tokens, pauses and the bound from events alone", () => {
    const events = new Emitter<SchedulerEvents>((error) => {
      throw error;
    });
    const metrics = new RunMetrics({
      startedAt: 0,
      total: 3,
      usageOf: (v) => v as { inputTokens: number; outputTokens: number },
      statusOf: (v) => (v as { status?: number }).status,
      limits: { concurrency: 1 },
    });
    metrics.attach(events);
    const value = { inputTokens: 10, outputTokens: 5, status: 200 };
    events.emit("started", { ...counts(0), ...ref(1), attempt: 1, waitedMs: 0 });
    events.emit("succeeded", { ...counts(100), ...ref(1), attempts: 1, latencyMs: 100, value });
    events.emit("started", { ...counts(100), ...ref(2), attempt: 1, waitedMs: 100 });
    const error = Object.assign(new Error("429"), { code: "SALVO_RATE_LIMITED", status: 429 });
    events.emit("attempt-failed", {
      ...counts(150),
      ...ref(2),
      attempt: 1,
      error,
      result: "rate_limit",
      latencyMs: 50,
      willRetry: true,
    });
    events.emit("rate-limited", {
      ...counts(150),
      ...ref(2),
      attempt: 1,
      error,
      retryAfterMs: 1000,
    });
    events.emit("cooldown", { ...counts(150), until: 1150, durationMs: 1000 });
    events.emit("cooldown", { ...counts(160), until: 1100, durationMs: 940 }); // inside the first: not added
    events.emit("retry-scheduled", {
      ...counts(150),
      ...ref(2),
      nextAttempt: 2,
      delayMs: 1000,
      error,
    });
    events.emit("started", { ...counts(1150), ...ref(2), attempt: 2, waitedMs: 1050 });
    events.emit("succeeded", { ...counts(1350), ...ref(2), attempts: 2, latencyMs: 1250, value });
    events.emit("failed", {
      ...counts(1400),
      ...ref(3),
      attempts: 1,
      latencyMs: 5,
      error: Object.assign(new Error("x"), { code: "SALVO_CLIENT_ERROR", status: 400 }),
      reason: "not-retryable",
    });

    const summary = metrics.summary(1400);
    expect(summary).toMatchObject({
      succeeded: 2,
      failed: 1,
      attempts: 3,
      retries: 1,
      rateLimited: 1,
      pausedMs: 1000,
      tokens: { input: 20, output: 10 },
      failedByCode: { SALVO_CLIENT_ERROR: 1 },
      byStatus: { "200": 2, "400": 1 },
      makespanMs: 1400,
    });
    expect(summary.latencyMs.count).toBe(2);
    expect(summary.latencyMs.max).toBeCloseTo(200, 0);
    // Two calls of 100 and 200 ms at concurrency 1: M* = 300 ms.
    expect(summary.bound?.boundMs).toBeCloseTo(300);
    expect(summary.ratioToBound).toBeCloseTo(1400 / 300);
    expect(summary.limit).toEqual({ initial: 4, final: 4, min: 4, max: 4 });
    const snapshot = metrics.snapshot(1400);
    expect(snapshot).toMatchObject({ succeeded: 2, failed: 1, total: 3, limit: 4, paused: false });
  });

  it("keeps a bounded timeline of the concurrency limit", () => {
    const events = new Emitter<SchedulerEvents>(() => {});
    const metrics = new RunMetrics({ startedAt: 0 });
    metrics.attach(events);
    const changed = (at: number, limit: number, previous: number) =>
      events.emit("limit-changed", { at, inFlight: 0, queued: 0, limit, previous });
    changed(0, 4, 4);
    changed(500, 8, 4);
    changed(550, 6, 8); // within 100 ms of the last point: replaces it
    changed(2000, 3, 6);
    expect(metrics.summary(2500).limitTimeline).toEqual([
      [0, 4],
      [500, 6],
      [2000, 3],
    ]);
    for (let i = 0; i < 3000; i++) changed(3000 + i * 200, 3 + (i % 5), 3);
    const summary = metrics.summary(700_000);
    expect(summary.limitTimeline.length).toBeLessThanOrEqual(1000);
    expect(summary.limitTimeline[0]).toEqual([0, 4]);
    expect(summary.limit).toMatchObject({ initial: 4, min: 3, max: 8 });
  });

  it("in flight is 0 once every item is done (a terminal event still holds its slot)", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ concurrency: 4, clock });
    const metrics = new RunMetrics({ startedAt: 0, total: 8 });
    metrics.attach(scheduler);
    const done = scheduler.map(Array.from({ length: 8 }), () => clock.sleep(100));
    await clock.advance(150);
    expect(metrics.snapshot(150)).toMatchObject({ inFlight: 4, limit: 4 });
    await clock.advance(100);
    await done;
    expect(metrics.snapshot(250)).toMatchObject({ succeeded: 8, inFlight: 0, limit: 4 });
  });

  it("a retry waiting out the provider's Retry-After is shown with how long it still waits, and goes when the wait ends", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ concurrency: 2, clock });
    const metrics = new RunMetrics({ startedAt: 0, total: 1 });
    metrics.attach(scheduler);
    const done = scheduler.map([0], async (_, task) => {
      await clock.sleep(100, task.signal);
      if (task.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs: 90_000 });
      return "ok";
    });
    await clock.advance(1_100);
    const waiting = metrics.snapshot(clock.now());
    expect(waiting).toMatchObject({ waitingToRetry: 1 });
    expect(waiting.retryWaitMs).toBeGreaterThanOrEqual(89_000);
    expect(waiting.retryWaitMs).toBeLessThanOrEqual(90_000);
    const texts = statusFields(waiting).map((f) => f.text);
    expect(
      texts.some((t) => /^1 waiting to retry \(up to (1m29s|1m30s|89s|90s)\)$/.test(t)),
      texts.join(" | "),
    ).toBe(true);
    await clock.advance(90_000);
    const after = metrics.snapshot(clock.now());
    expect(after).toMatchObject({ waitingToRetry: 0, retryWaitMs: 0 });
    expect(statusFields(after).some((f) => f.text.includes("waiting to retry"))).toBe(false);
    await clock.runAll();
    expect(await done).toMatchObject([{ ok: true }]);
  });

  it("items stopped by an interrupt are stopped, not failed, and not among the failures' codes", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ concurrency: 2, clock });
    const metrics = new RunMetrics({ startedAt: 0, total: 10 });
    metrics.attach(scheduler);
    const interrupt = new AbortController();
    const done = scheduler.map(
      Array.from({ length: 10 }),
      (_, task) => clock.sleep(1000, task.signal),
      { signal: interrupt.signal },
    );
    await clock.advance(1500);
    interrupt.abort(new AbortedError("received SIGINT"));
    await done;
    metrics.settledOutside({ ok: false, error: new AbortedError("left single-flight") });
    const summary = metrics.summary(1500);
    expect(summary).toMatchObject({ succeeded: 2, failed: 0, stopped: 9, failedByCode: {} });
    expect(metrics.snapshot(1500)).toMatchObject({ failed: 0, stopped: 9, inFlight: 0 });
  });

  it("latency percentiles count failed attempts: five 2-minute timeouts are in p99", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({
      concurrency: 100,
      clock,
      timeoutMs: 120_000,
      retry: { maxAttempts: 1 },
    });
    const metrics = new RunMetrics({ startedAt: 0 });
    metrics.attach(scheduler);
    const done = scheduler.map(
      Array.from({ length: 100 }, (_, i) => i),
      (i, task) => clock.sleep(i < 5 ? 600_000 : 500 + i, task.signal),
    );
    await clock.advance(130_000);
    await done;
    const summary = metrics.summary(130_000);
    expect(summary.failed).toBe(5);
    // The answered calls alone look fast; every attempt shows the timeouts.
    expect(summary.latencyMs.p99).toBeLessThan(1000);
    expect(summary.attemptLatencyMs.count).toBe(100);
    expect(summary.attemptLatencyMs.p99).toBeGreaterThanOrEqual(119_000);
    expect(summary.failedAttemptLatencyMs).toMatchObject({ count: 5 });
    expect(summary.failedAttemptLatencyMs.p50).toBeGreaterThanOrEqual(119_000);
  });

  it("M* uses the limits in force: learned from headers when none was set, lowered when less", () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ clock, tokensPerMinute: 100_000 });
    scheduler.reportRateLimits({ requests: { limit: 600 }, tokens: { limit: 60_000 } });
    const events = new Emitter<SchedulerEvents>(() => {});
    const metrics = new RunMetrics({
      startedAt: 0,
      usageOf: (v) => v as { inputTokens: number; outputTokens: number },
      limits: { tokensPerMinute: 100_000 },
      limitsInForce: () => rateLimitsInForce(scheduler),
    });
    metrics.attach(events);
    for (let i = 0; i < 60; i++) {
      events.emit("started", { ...counts(i * 10), ...ref(i), attempt: 1, waitedMs: 0 });
      const value = { inputTokens: 10, outputTokens: 10 };
      events.emit("succeeded", {
        ...counts(i * 10 + 5),
        ...ref(i),
        attempts: 1,
        latencyMs: 5,
        value,
      });
    }
    const summary = metrics.summary(6000);
    expect(summary.boundLimits).toMatchObject({
      requestsPerMinute: { value: 600, source: "learned" },
      tokensPerMinute: { value: 60_000, source: "lowered", set: 100_000 },
    });
    // 60 calls at 600/min: 6 s (and the shortest call).
    expect(summary.bound?.binding).toBe("requests");
    expect(summary.bound?.boundMs).toBeCloseTo(6005);
  });
});

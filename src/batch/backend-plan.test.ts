import { describe, expect, it } from "vitest";
import {
  lastCallAction,
  type PlanInput,
  planAuto,
  pollIntervalMs,
  realtimeBoundMs,
} from "./backend-plan.ts";

// Real time: 10 items a second (600 rpm); the batch API: 500 ms + 50 ms per request.
const base: PlanInput = {
  items: 40,
  remainingMs: undefined,
  realtimeMs: (n) => (n === 0 ? 0 : n * 100),
  batchMs: (n) => (n === 0 ? 0 : 500 + n * 50),
  realtimeCostUsd: 4,
  batchPriceFactor: 0.5,
  budgetUsd: undefined,
  sources: { realtime: "test", batch: "test" },
};

describe("planAuto", () => {
  it("without a run deadline, everything goes to the batch API", () => {
    const plan = planAuto(base);
    expect([plan.mode, plan.batch, plan.realtime]).toEqual(["batch", 40, 0]);
    expect(plan.reason).toMatch(/no --run-deadline/);
    expect(plan.estimates.plannedUsd).toBeCloseTo(2);
  });

  it("a deadline the batch API meets for every item: all batch", () => {
    const plan = planAuto({ ...base, remainingMs: 2500 });
    expect([plan.mode, plan.batch]).toEqual(["batch", 40]);
    expect(plan.late).toBe(false);
  });

  it("a deadline shorter than the batch API's turnaround: all real time", () => {
    const plan = planAuto({ ...base, remainingMs: 540 });
    expect([plan.mode, plan.batch, plan.realtime]).toEqual(["realtime", 0, 40]);
    expect(plan.reason).toMatch(/not expected back/);
    // Real time needs 4s: the deadline will be missed, and the plan says so.
    expect(plan.late).toBe(true);
    expect(plan.reason).toMatch(/after the deadline/);
  });

  it("a deadline between: the most the batch API returns in time to it, the rest in real time", () => {
    const plan = planAuto({ ...base, remainingMs: 1800 });
    // 500 + 50n <= 1800: n <= 26; real time does the other 14 in 1.4s.
    expect([plan.mode, plan.batch, plan.realtime]).toEqual(["split", 26, 14]);
    expect(plan.late).toBe(false);
    expect(plan.estimates.plannedMs).toBeLessThanOrEqual(1800);
    expect(plan.estimates.plannedUsd!).toBeLessThan(plan.estimates.realtimeAllUsd!);
    expect(plan.estimates.plannedUsd).toBeCloseTo((14 + 26 * 0.5) * 0.1);
  });

  it("when no placement meets the deadline, the batch still takes what it can return in time", () => {
    const plan = planAuto({ ...base, remainingMs: 1000 });
    expect([plan.mode, plan.batch, plan.realtime]).toEqual(["split", 10, 30]);
    expect(plan.late).toBe(true);
  });

  it("says when the budget will stop the plan", () => {
    const plan = planAuto({ ...base, budgetUsd: 1 });
    expect(plan.reason).toMatch(/over what --max-cost leaves/);
  });

  it("nothing to place is nothing to do", () => {
    expect(planAuto({ ...base, items: 0 }).batch).toBe(0);
  });
});

describe("realtimeBoundMs", () => {
  it("is M* under the tightest limit", () => {
    const model = {
      latencyMs: 100,
      latencySource: "test",
      concurrency: 4,
      requestsPerMinute: 600,
      burstSeconds: 1,
      inputTokensPerItem: 10,
      outputTokensPerItem: 20,
    };
    // 40 calls: concurrency 40*100/4 = 1000 ms; requests 60*(40-10)/600 s + 100 ms = 3100 ms.
    expect(realtimeBoundMs(model, 40)).toBeCloseTo(3100);
    // An output-token limit binds: 40*20 = 800 tokens at 600/min, 10 of burst.
    expect(realtimeBoundMs({ ...model, outputTokensPerMinute: 600 }, 40)).toBeCloseTo(
      (60_000 * (800 - 10)) / 600 + 100,
    );
    expect(realtimeBoundMs(model, 0)).toBe(0);
  });
});

describe("pollIntervalMs", () => {
  const bounds = { minMs: 1000, maxMs: 60_000 };
  it("backs off with the batch's age, within the bounds", () => {
    expect(pollIntervalMs({ ageMs: 0, expectedMs: 0, ...bounds })).toBe(1000);
    expect(pollIntervalMs({ ageMs: 20_000, expectedMs: 0, ...bounds })).toBe(4000);
    expect(pollIntervalMs({ ageMs: 3_600_000, expectedMs: 0, ...bounds })).toBe(60_000);
  });
  it("polls no later than the expected end", () => {
    expect(pollIntervalMs({ ageMs: 50_000, expectedMs: 52_500, ...bounds })).toBe(2500);
    expect(pollIntervalMs({ ageMs: 50_000, expectedMs: 50_200, ...bounds })).toBe(1000);
  });
});

describe("lastCallAction", () => {
  it("waits while real time could still take over, cancels at the last call, abandons when real time must start", () => {
    const at = (remainingMs: number, viable: boolean, cancelled: boolean) =>
      lastCallAction({ remainingMs, neededMs: 3000, marginMs: 2000, viable, cancelled });
    expect(at(10_000, false, false)).toEqual({ action: "wait", viable: true });
    expect(at(4_000, true, false)).toEqual({ action: "cancel", viable: true });
    expect(at(3_500, true, true)).toEqual({ action: "wait", viable: true });
    expect(at(3_000, true, true)).toEqual({ action: "abandon", viable: true });
  });
  it("never cancels a batch real time could not have replaced in time (a split's)", () => {
    expect(
      lastCallAction({
        remainingMs: 4000,
        neededMs: 3000,
        marginMs: 2000,
        viable: false,
        cancelled: false,
      }),
    ).toEqual({ action: "wait", viable: false });
  });
});

// Property-based tests over random workloads, outcomes and timings, on the fake clock.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OverloadedError, QuotaExceededError, RateLimitError, ServerError } from "../errors.ts";
import type { StaticConcurrency } from "./concurrency/static-concurrency.ts";
import { FakeClock } from "./fake-clock.ts";
import type { Outcome } from "./outcome.ts";
import { seededRandom } from "./random.ts";
import { Scheduler } from "./scheduler.ts";

type Behaviour = "ok" | "429" | "529" | "500" | "quota" | "bug" | "stubborn" | "slow";

const behaviour = fc.constantFrom<Behaviour>(
  "ok",
  "ok",
  "ok",
  "429",
  "529",
  "500",
  "quota",
  "bug",
  "stubborn",
  "slow",
);

const workload = fc.record({
  seed: fc.integer(),
  concurrency: fc.integer({ min: 1, max: 6 }),
  rpm: fc.option(fc.integer({ min: 60, max: 6_000 }), { nil: undefined }),
  tpm: fc.option(fc.integer({ min: 6_000, max: 600_000 }), { nil: undefined }),
  burstSeconds: fc.constantFrom(0.5, 1, 5),
  scopeCap: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  limitChanges: fc.array(fc.record({ at: fc.nat(3_000), limit: fc.integer({ min: 1, max: 6 }) }), {
    maxLength: 4,
  }),
  items: fc.array(
    fc.record({
      latency: fc.nat(400),
      tokens: fc.nat(5_000),
      priority: fc.integer({ min: 0, max: 2 }),
      scoped: fc.boolean(),
      attempts: fc.array(behaviour, { minLength: 1, maxLength: 4 }),
      abortAt: fc.option(fc.nat(5_000), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 25 },
  ),
});

describe("Scheduler properties", () => {
  it("limits hold, every item settles once, map keeps input order", async () => {
    await fc.assert(
      fc.asyncProperty(workload, async (w) => {
        const clock = new FakeClock();
        const scheduler = new Scheduler({
          clock,
          random: seededRandom(w.seed),
          concurrency: w.concurrency,
          requestsPerMinute: w.rpm,
          tokensPerMinute: w.tpm,
          burstSeconds: w.burstSeconds,
          timeoutMs: 300,
          retry: { maxAttempts: 4, baseDelayMs: 50, maxDelayMs: 500 },
          cooldownMs: 200,
        });
        const scope = scheduler.scope({ name: "job", concurrency: w.scopeCap });
        // Real in-flight: tasks whose promise has not settled (timed-out ones included).
        let running = 0;
        let runningInScope = 0;
        const violations: string[] = [];
        const terminal = new Map<string | number, number>();
        const requestStarts: number[] = [];
        const tokenStarts: Array<{ at: number; cost: number }> = [];
        scheduler.on("succeeded", (e) => terminal.set(e.id, (terminal.get(e.id) ?? 0) + 1));
        scheduler.on("failed", (e) => terminal.set(e.id, (terminal.get(e.id) ?? 0) + 1));
        scheduler.on("started", (e) => {
          if (e.inFlight > e.limit) violations.push(`inFlight ${e.inFlight} > limit ${e.limit}`);
          requestStarts.push(e.at);
        });
        for (const change of w.limitChanges) {
          clock.setTimeout(
            () => (scheduler.controller as StaticConcurrency).setLimit(change.limit),
            change.at,
          );
        }

        const controllers = w.items.map(() => new AbortController());
        w.items.forEach((item, i) => {
          if (item.abortAt !== undefined) {
            clock.setTimeout(() => controllers[i]!.abort(), item.abortAt);
          }
        });

        const run =
          (i: number, inScope: boolean) =>
          async (_: unknown, ctx: { attempt: number; signal: AbortSignal }) => {
            const item = w.items[i]!;
            running++;
            if (inScope) runningInScope++;
            if (running > scheduler.limit)
              violations.push(`running ${running} > ${scheduler.limit}`);
            if (inScope && w.scopeCap !== undefined && runningInScope > w.scopeCap) {
              violations.push(`scope running ${runningInScope} > ${w.scopeCap}`);
            }
            tokenStarts.push({ at: clock.now(), cost: costOf(i) });
            try {
              const kind = item.attempts[Math.min(ctx.attempt, item.attempts.length) - 1]!;
              if (kind === "stubborn") {
                await clock.sleep(1_000); // ignores its signal, outlives its timeout
                return i;
              }
              await clock.sleep(kind === "slow" ? 1_000 : item.latency, ctx.signal);
              switch (kind) {
                case "429":
                  throw new RateLimitError(undefined, { retryAfterMs: 100 + item.latency });
                case "529":
                  throw new OverloadedError(undefined, { status: 529 });
                case "500":
                  throw new ServerError(undefined, { status: 500 });
                case "quota":
                  throw new QuotaExceededError();
                case "bug":
                  throw new TypeError("task bug");
                default:
                  return i;
              }
            } finally {
              running--;
              if (inScope) runningInScope--;
            }
          };
        const tpmLimit = w.tpm;
        const costOf = (i: number) =>
          Math.min(w.items[i]!.tokens, tpmLimit ?? Number.POSITIVE_INFINITY);

        // Half the items through a root-level map, the rest one by one through the scope.
        const mapped = w.items.map((_, i) => i).filter((i) => !w.items[i]!.scoped);
        const scoped = w.items.map((_, i) => i).filter((i) => w.items[i]!.scoped);
        const mapResult = scheduler.map(mapped, (i, ctx) => run(i, false)(i, ctx), {
          cost: (i) => ({ tokens: costOf(i) }),
        });
        const scopedResults = scoped.map((i) =>
          scope.settle((ctx) => run(i, true)(i, ctx), {
            priority: w.items[i]!.priority,
            cost: { tokens: costOf(i) },
            signal: controllers[i]!.signal,
          }),
        );
        await clock.runAll();
        const outcomes: Array<Outcome<number>> = await mapResult;
        await Promise.all(scopedResults);

        expect(violations).toEqual([]);
        // map: one outcome per input, in input order.
        expect(outcomes.map((o) => o.index)).toEqual(mapped.map((_, k) => k));
        for (const [k, o] of outcomes.entries()) if (o.ok) expect(o.value).toBe(mapped[k]);
        // Exactly one terminal event per item.
        expect(terminal.size).toBe(w.items.length);
        for (const count of terminal.values()) expect(count).toBe(1);
        expect(scheduler.pending).toBe(0);
        expect(scheduler.inFlight).toBe(0);
        expect(clock.pendingTimers).toBe(0);
        // Buckets: admissions over any window <= rate x window + burst (+ the largest cost).
        if (w.rpm !== undefined)
          checkWindows(
            requestStarts.map((at) => ({ at, cost: 1 })),
            w.rpm,
            w.burstSeconds,
          );
        if (w.tpm !== undefined) checkWindows(tokenStarts, w.tpm, w.burstSeconds);
      }),
      { numRuns: 150 },
    );
  });
});

function checkWindows(
  starts: Array<{ at: number; cost: number }>,
  perMinute: number,
  burstSeconds: number,
) {
  const rate = perMinute / 60_000;
  const burst = Math.max((perMinute * burstSeconds) / 60, ...starts.map((s) => s.cost));
  const sorted = [...starts].sort((a, b) => a.at - b.at);
  for (let i = 0; i < sorted.length; i++) {
    let sum = 0;
    for (let j = i; j < sorted.length; j++) {
      sum += sorted[j]!.cost;
      expect(sum).toBeLessThanOrEqual(rate * (sorted[j]!.at - sorted[i]!.at) + burst + 1e-6);
    }
  }
}

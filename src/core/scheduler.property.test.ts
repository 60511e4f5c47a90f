// Property-based tests over random workloads, outcomes and timings, on the fake clock.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OverloadedError, QuotaExceededError, RateLimitError, ServerError } from "../errors.ts";
import type { StaticConcurrency } from "./concurrency/static-concurrency.ts";
import { SCHEDULER_EVENT_NAMES, type SchedulerEvents } from "./events.ts";
import { FakeClock } from "./fake-clock.ts";
import type { Outcome } from "./outcome.ts";
import { seededRandom } from "./random.ts";
import { Scheduler } from "./scheduler.ts";
import type { TaskContext } from "./task-context.ts";

type Behaviour = "ok" | "429" | "529" | "500" | "quota" | "bug" | "stubborn" | "slow" | "nest";

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
  "nest",
);

/** Where an item is submitted from. */
type Entry = "map" | "scope" | "stream";

/**
 * Events a listener may act on, and what it does (calling back into the scheduler): every event
 * but the scheduler-wide `limit-changed` and `idle`.
 */
const listenerEvents = SCHEDULER_EVENT_NAMES.filter((n) => n !== "limit-changed" && n !== "idle");

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
  mapAbortAt: fc.option(fc.nat(3_000), { nil: undefined }),
  mapDeadlineMs: fc.option(fc.integer({ min: 1, max: 5_000 }), { nil: undefined }),
  streamWindow: fc.integer({ min: 1, max: 4 }),
  closeAt: fc.option(fc.nat(4_000), { nil: undefined }),
  listeners: fc.array(
    fc.record({
      event: fc.constantFrom(...listenerEvents),
      nth: fc.nat(20),
      action: fc.constantFrom("abort-item", "abort-map", "close", "submit"),
    }),
    { maxLength: 3 },
  ),
  items: fc.array(
    fc.record({
      latency: fc.nat(400),
      tokens: fc.nat(5_000),
      // Reported usage as a fraction of the estimate (a refund); never more (an under-estimate
      // the scheduler cannot know about would break the bound on real usage by design).
      usage: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
      // A header snapshot: what the provider says remains (only ever lowers a level).
      remaining: fc.option(fc.nat(5_000), { nil: undefined }),
      learnLimit: fc.boolean(),
      priority: fc.integer({ min: 0, max: 2 }),
      entry: fc.constantFrom<Entry>("map", "scope", "stream"),
      attempts: fc.array(behaviour, { minLength: 1, maxLength: 4 }),
      abortAt: fc.option(fc.nat(5_000), { nil: undefined }),
      deadlineMs: fc.option(fc.integer({ min: 1, max: 5_000 }), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 25 },
  ),
});

type Debit = { at: number; requests: number; tokens: number };

describe("Scheduler properties", () => {
  it("limits hold, every item settles once, map and stream keep input order, pending returns to 0", async () => {
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
        // Real in-flight: tasks whose promise has not settled (timed-out ones included), minus
        // orchestrators, which hold no slot once they nest.
        let running = 0;
        let runningInScope = 0;
        const violations: string[] = [];
        const submitted = new Set<string | number>();
        const terminal = new Map<string | number, number>();
        // What each call really cost, at its start (a nesting orchestrator's estimate is
        // given back, so it is zeroed; reported usage replaces the estimate).
        const debits: Debit[] = [];
        let maxTokenCost = 0;
        scheduler.on("queued", (e) => {
          if (e.attempt === 1) submitted.add(e.id);
        });
        scheduler.on("succeeded", (e) => terminal.set(e.id, (terminal.get(e.id) ?? 0) + 1));
        scheduler.on("failed", (e) => terminal.set(e.id, (terminal.get(e.id) ?? 0) + 1));
        scheduler.on("started", (e) => {
          if (e.inFlight > e.limit) violations.push(`inFlight ${e.inFlight} > limit ${e.limit}`);
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
        const mapController = new AbortController();
        if (w.mapAbortAt !== undefined) clock.setTimeout(() => mapController.abort(), w.mapAbortAt);
        let closed: Promise<void> | undefined;
        const close = () => {
          closed ??= scheduler.close();
        };
        if (w.closeAt !== undefined) clock.setTimeout(close, w.closeAt);
        const extra: Array<Promise<unknown>> = [];
        // Listeners that call back into the scheduler from inside its events.
        const itemOf = new Map<string | number, number>();
        for (const l of w.listeners) {
          let seen = 0;
          scheduler.on(l.event, (e: SchedulerEvents[typeof l.event]) => {
            if (seen++ !== l.nth) return;
            const i = "id" in e ? itemOf.get(e.id) : undefined;
            if (l.action === "close") close();
            else if (l.action === "abort-map") mapController.abort();
            else if (l.action === "submit") extra.push(scheduler.settle(async () => 1));
            else if (i !== undefined) controllers[i]!.abort();
          });
        }

        const costOf = (i: number) =>
          Math.min(w.items[i]!.tokens, w.tpm ?? Number.POSITIVE_INFINITY);
        const run = (i: number, inScope: boolean) => async (ctx: TaskContext) => {
          const item = w.items[i]!;
          itemOf.set(ctx.id, i);
          running++;
          let holds = true;
          if (inScope) runningInScope++;
          if (running > scheduler.limit) violations.push(`running ${running} > ${scheduler.limit}`);
          if (inScope && w.scopeCap !== undefined && runningInScope > w.scopeCap) {
            violations.push(`scope running ${runningInScope} > ${w.scopeCap}`);
          }
          const debit: Debit = { at: clock.now(), requests: 1, tokens: costOf(i) };
          maxTokenCost = Math.max(maxTokenCost, debit.tokens);
          debits.push(debit);
          try {
            const kind = item.attempts[Math.min(ctx.attempt, item.attempts.length) - 1]!;
            if (item.usage !== undefined) {
              const tokens = Math.floor(debit.tokens * item.usage);
              ctx.reportUsage({ tokens });
              debit.tokens = tokens;
            }
            if (item.remaining !== undefined || item.learnLimit) {
              ctx.reportRateLimits({
                tokens: item.remaining === undefined ? undefined : { remaining: item.remaining },
                requests: item.learnLimit && w.rpm !== undefined ? { limit: w.rpm / 2 } : undefined,
              });
            }
            if (kind === "nest") {
              // An orchestrator: its slot goes back, and its estimate unless it reported usage.
              running--;
              if (inScope) runningInScope--;
              holds = false;
              debit.requests = 0;
              if (item.usage === undefined) debit.tokens = 0;
              const inner = await scheduler.map([1, 2], async (n, c) => {
                running++;
                if (running > scheduler.limit) {
                  violations.push(`running ${running} > ${scheduler.limit}`);
                }
                debits.push({ at: clock.now(), requests: 1, tokens: 0 });
                try {
                  await clock.sleep(item.latency / n, c.signal);
                  return n;
                } finally {
                  running--;
                }
              });
              return inner.length === 2 ? i : -1;
            }
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
            if (holds) {
              running--;
              if (inScope) runningInScope--;
            }
          }
        };

        const indexes = (entry: Entry) =>
          w.items.map((_, i) => i).filter((i) => w.items[i]!.entry === entry);
        const mapped = indexes("map");
        const streamed = indexes("stream");
        const mapResult = scheduler.map(mapped, (i, ctx) => run(i, false)(ctx), {
          cost: (i) => ({ tokens: costOf(i) }),
          signal: mapController.signal,
          deadlineMs: w.mapDeadlineMs,
        });
        const scopedResults = indexes("scope").map((i) =>
          scope.settle(run(i, true), {
            priority: w.items[i]!.priority,
            cost: { tokens: costOf(i) },
            signal: controllers[i]!.signal,
            deadlineMs: w.items[i]!.deadlineMs,
          }),
        );
        const streamedOutcomes: Array<Outcome<number>> = [];
        const streamDone = (async () => {
          for await (const o of scheduler.stream(streamed, (i, ctx) => run(i, false)(ctx), {
            cost: (i) => ({ tokens: costOf(i) }),
            window: w.streamWindow,
          })) {
            streamedOutcomes.push(o);
          }
        })();
        await clock.runAll();
        const outcomes: Array<Outcome<number>> = await mapResult;
        await Promise.all(scopedResults);
        await streamDone;
        await Promise.all(extra);
        if (closed !== undefined) await closed;
        await scheduler.onIdle();

        expect(violations).toEqual([]);
        // map: one outcome per input read, in input order; all of them unless reading stopped.
        expect(outcomes.map((o) => o.index)).toEqual(outcomes.map((_, k) => k));
        if (closed === undefined && !mapController.signal.aborted) {
          expect(outcomes).toHaveLength(mapped.length);
        }
        for (const [k, o] of outcomes.entries()) if (o.ok) expect(o.value).toBe(mapped[k]);
        // stream: a prefix of its inputs (close stops reading), in input order.
        expect(streamedOutcomes.map((o) => o.index)).toEqual(streamedOutcomes.map((_, k) => k));
        if (closed === undefined) expect(streamedOutcomes).toHaveLength(streamed.length);
        // Exactly one terminal event per item submitted (nested ones included).
        expect([...terminal.keys()].sort()).toEqual([...submitted].sort());
        for (const count of terminal.values()) expect(count).toBe(1);
        expect(scheduler.pending).toBe(0);
        expect(scheduler.inFlight).toBe(0);
        expect(clock.pendingTimers).toBe(0);
        // Buckets: real usage over any window <= rate x window + burst (see `checkWindows`).
        if (w.rpm !== undefined) {
          checkWindows(
            debits.map((d) => ({ at: d.at, cost: d.requests })),
            w.rpm,
            w.burstSeconds,
            1,
          );
        }
        if (w.tpm !== undefined) {
          checkWindows(
            debits.map((d) => ({ at: d.at, cost: d.tokens })),
            w.tpm,
            w.burstSeconds,
            maxTokenCost,
          );
        }
      }),
      { numRuns: 150 },
    );
  });
});

/**
 * Over every window [a, b] of starts: the costs started <= rate * (b - a) + max(capacity,
 * largest cost). The bucket holds `capacity` (the burst) and refills at `rate`; a cost above
 * capacity is admitted only when the bucket is full (then drives it negative, paid back by
 * refill before anything else starts), so such a cost replaces the burst rather than adding to
 * it: the allowance is the larger of the two, not their sum.
 */
function checkWindows(
  starts: Array<{ at: number; cost: number }>,
  perMinute: number,
  burstSeconds: number,
  largestCost: number,
) {
  const rate = perMinute / 60_000;
  const burst = Math.max((perMinute * burstSeconds) / 60, largestCost);
  const sorted = [...starts].sort((a, b) => a.at - b.at);
  for (let i = 0; i < sorted.length; i++) {
    let sum = 0;
    for (let j = i; j < sorted.length; j++) {
      sum += sorted[j]!.cost;
      expect(sum).toBeLessThanOrEqual(rate * (sorted[j]!.at - sorted[i]!.at) + burst + 1e-6);
    }
  }
}

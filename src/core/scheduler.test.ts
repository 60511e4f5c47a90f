import { describe, expect, it } from "vitest";
import {
  AbortedError,
  DeadlineExceededError,
  QuotaExceededError,
  RateLimitError,
  RequestTooLargeError,
  SchedulerClosedError,
  ServerError,
  TimeoutError,
} from "../errors.ts";
import type { StaticConcurrency } from "./concurrency/static-concurrency.ts";
import type { SchedulerEvents } from "./events.ts";
import { FakeClock } from "./fake-clock.ts";
import { seededRandom } from "./random.ts";
import { Scheduler } from "./scheduler.ts";
import type { SchedulerOptions } from "./scheduler-options.ts";

function setup(options: SchedulerOptions = {}) {
  const clock = new FakeClock();
  const scheduler = new Scheduler({ clock, random: seededRandom(7), ...options });
  const events: Array<{
    type: keyof SchedulerEvents;
    payload: SchedulerEvents[keyof SchedulerEvents];
  }> = [];
  for (const type of [
    "queued",
    "started",
    "attempt-failed",
    "retry-scheduled",
    "rate-limited",
    "cooldown",
    "succeeded",
    "failed",
    "limit-changed",
    "idle",
  ] as const) {
    scheduler.on(type, (payload) => events.push({ type, payload }));
  }
  const of = <K extends keyof SchedulerEvents>(type: K) =>
    events.filter((e) => e.type === type).map((e) => e.payload as SchedulerEvents[K]);
  return { clock, scheduler, events, of };
}

/** Settles a promise into a value/error record without unhandled rejections. */
function capture<T>(promise: Promise<T>) {
  const box: { value?: T; error?: unknown; done: boolean } = { done: false };
  promise.then(
    (value) => Object.assign(box, { value, done: true }),
    (error) => Object.assign(box, { error, done: true }),
  );
  return box;
}

describe("Scheduler: basics", () => {
  it("run resolves with the value; map keeps input order with settled outcomes", async () => {
    const { clock, scheduler } = setup({ concurrency: 3 });
    const delays = [50, 10, 30, 20, 40];
    const result = scheduler.map(delays, async (ms, ctx) => {
      await clock.sleep(ms, ctx.signal);
      if (ms === 30) throw new Error("bad item");
      return ms * 2;
    });
    await clock.runAll();
    const outcomes = await result;
    expect(outcomes.map((o) => o.index)).toEqual([0, 1, 2, 3, 4]);
    expect(outcomes.map((o) => (o.ok ? o.value : "x"))).toEqual([100, 20, "x", 40, 80]);
    const failed = outcomes[2]!;
    expect(failed.ok === false && failed.reason).toBe("not-retryable");
    expect(await scheduler.run(async () => 5)).toBe(5);
  });

  it("higher priority runs first, FIFO within a priority", async () => {
    const { clock, scheduler } = setup({ concurrency: 1 });
    const order: string[] = [];
    const task = (name: string) => async () => {
      order.push(name);
      await clock.sleep(10);
    };
    void scheduler.run(task("first"));
    void scheduler.run(task("low-a"), { priority: 0 });
    void scheduler.run(task("high"), { priority: 5 });
    void scheduler.run(task("low-b"), { priority: 0 });
    await clock.runAll();
    expect(order).toEqual(["first", "high", "low-a", "low-b"]);
  });

  it("a fallback is attached to a failed outcome, which stays ok: false", async () => {
    const { scheduler } = setup();
    const [outcome] = await scheduler.map(
      ["claim-1"],
      async () => {
        throw new Error("parse failed");
      },
      { fallback: () => "REVIEW_NEEDED" },
    );
    expect(outcome).toMatchObject({
      ok: false,
      fallback: "REVIEW_NEEDED",
      reason: "not-retryable",
    });
    const settled = await scheduler.settle(
      async () => {
        throw new Error("x");
      },
      { fallback: () => 0 },
    );
    expect(settled).toMatchObject({ ok: false, fallback: 0 });
  });

  it("a lowered limit stops new starts until in-flight falls under it", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 4 });
    const running = scheduler.map(
      Array.from({ length: 12 }, (_, i) => i),
      () => clock.sleep(100),
    );
    await clock.advance(50);
    expect(scheduler.inFlight).toBe(4);
    (scheduler.controller as StaticConcurrency).setLimit(2);
    expect(of("limit-changed")).toMatchObject([{ limit: 2, previous: 4 }]);
    await clock.runAll();
    await running;
    for (const started of of("started")) {
      expect(started.inFlight).toBeLessThanOrEqual(started.limit);
    }
    expect(
      of("started")
        .filter((s) => s.at > 50)
        .every((s) => s.inFlight <= 2),
    ).toBe(true);
  });

  it("a throwing listener does not break the scheduler", async () => {
    const errors: unknown[] = [];
    const clock = new FakeClock();
    const scheduler = new Scheduler({ clock, onListenerError: (e) => errors.push(e) });
    scheduler.on("started", () => {
      throw new Error("listener bug");
    });
    expect(await scheduler.run(async () => "fine")).toBe("fine");
    expect(errors).toHaveLength(1);
  });
});

describe("Scheduler: the shared cooldown", () => {
  it("N concurrent 429s pause the key once, and pauses do not stack", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 5, cooldownJitter: 0.1 });
    const result = scheduler.map([0, 1, 2, 3, 4], async (_i, ctx) => {
      await clock.sleep(100);
      if (ctx.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs: 1_000 });
      return ctx.attempt;
    });
    await clock.runAll();
    const outcomes = await result;
    expect(outcomes.every((o) => o.ok && o.value === 2)).toBe(true);
    expect(of("rate-limited")).toHaveLength(5);
    // One pause of ~1 s (plus at most 10% jitter) from t=100, not 5 s.
    expect(scheduler.cooldownUntil).toBeGreaterThanOrEqual(1_100);
    expect(scheduler.cooldownUntil).toBeLessThanOrEqual(1_200);
    const retries = of("started").filter((s) => s.attempt === 2);
    expect(retries).toHaveLength(5);
    for (const r of retries) expect(r.at).toBeGreaterThanOrEqual(scheduler.cooldownUntil);
    expect(Math.max(...retries.map((r) => r.at))).toBeLessThanOrEqual(1_200);
  });

  it("without jitter, simultaneous 429s produce exactly one cooldown event", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 3, cooldownJitter: 0 });
    const result = scheduler.map([0, 1, 2], async (_i, ctx) => {
      await clock.sleep(100);
      if (ctx.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs: 2_000 });
      return 1;
    });
    await clock.runAll();
    await result;
    expect(of("cooldown")).toMatchObject([{ until: 2_100, durationMs: 2_000 }]);
  });

  it("a 429 while cooling down extends to max(end, new end), never adds", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 2, cooldownJitter: 0 });
    void scheduler.settle(
      async () => {
        await clock.sleep(100);
        throw new RateLimitError(undefined, { retryAfterMs: 5_000 });
      },
      { deadlineMs: 1_000 },
    );
    void scheduler.settle(
      async () => {
        await clock.sleep(200);
        throw new RateLimitError(undefined, { retryAfterMs: 1_000 });
      },
      { deadlineMs: 1_000 },
    );
    await clock.runAll();
    expect(of("cooldown").map((c) => c.until)).toEqual([5_100]);
  });

  it("quota errors are not retried and do not pause the key", async () => {
    const { scheduler, of } = setup();
    const outcome = await scheduler.settle(async () => {
      throw new QuotaExceededError(undefined, { status: 429 });
    });
    expect(outcome).toMatchObject({ ok: false, reason: "not-retryable", attempts: 1 });
    expect(of("cooldown")).toHaveLength(0);
  });
});

describe("Scheduler: retries", () => {
  it("backs off with jitter and respects Retry-After as a minimum", async () => {
    const { clock, scheduler, of } = setup({
      retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1_000, budget: false },
    });
    const result = scheduler.settle(async (ctx) => {
      if (ctx.attempt === 2) throw new ServerError(undefined, { status: 503, retryAfterMs: 7_000 });
      if (ctx.attempt < 4) throw new ServerError(undefined, { status: 500 });
      return "done";
    });
    await clock.runAll();
    expect(await result).toMatchObject({ ok: true, value: "done", attempts: 4 });
    const scheduled = of("retry-scheduled");
    expect(scheduled.map((r) => r.nextAttempt)).toEqual([2, 3, 4]);
    expect(scheduled[0]!.delayMs).toBeLessThanOrEqual(100);
    expect(scheduled[1]!.delayMs).toBe(7_000); // the hint wins over a 200 ms backoff
    expect(scheduled[2]!.delayMs).toBeLessThanOrEqual(400);
    const starts = of("started");
    for (let i = 1; i < starts.length; i++) {
      expect(starts[i]!.at - starts[i - 1]!.at).toBeCloseTo(scheduled[i - 1]!.delayMs, 6);
    }
  });

  it("a retry re-enters admission: it waits for a slot and never holds one while sleeping", async () => {
    const { clock, scheduler } = setup({
      concurrency: 1,
      retry: { baseDelayMs: 1_000, maxDelayMs: 1_000, jitter: "decorrelated", budget: false },
    });
    const order: string[] = [];
    void scheduler.settle(async (ctx) => {
      order.push(`a${ctx.attempt}@${clock.now()}`);
      if (ctx.attempt === 1) throw new ServerError();
      await clock.sleep(10);
    });
    void scheduler.run(async () => {
      order.push(`b@${clock.now()}`);
      await clock.sleep(5_000);
    });
    await clock.runAll();
    // b ran while a slept; a's retry waited for b's slot.
    expect(order).toEqual(["a1@0", "b@0", "a2@5000"]);
  });

  it("the retry budget stops retries; the item fails with its last error, marked", async () => {
    const { clock, scheduler, of } = setup({
      concurrency: 10,
      retry: {
        maxAttempts: 10,
        baseDelayMs: 10,
        budget: { ratio: 0, minRetries: 3, windowMs: 60_000 },
      },
    });
    const result = scheduler.map(
      Array.from({ length: 5 }, (_, i) => i),
      async () => {
        throw new ServerError(undefined, { status: 500 });
      },
    );
    await clock.runAll();
    const outcomes = await result;
    expect(of("retry-scheduled")).toHaveLength(3);
    const exhausted = outcomes.filter((o) => !o.ok && o.reason === "retry-budget-exhausted");
    expect(exhausted).toHaveLength(5);
    for (const o of exhausted) expect(!o.ok && o.error).toBeInstanceOf(ServerError);
  });

  it("errors that are not ProviderErrors are retried only when retryOn says so", async () => {
    const { clock, scheduler } = setup({
      retry: { retryOn: (e) => (e instanceof TypeError ? true : undefined), baseDelayMs: 1 },
    });
    let calls = 0;
    const result = scheduler.run(async () => {
      if (++calls < 3) throw new TypeError("flaky");
      return calls;
    });
    await clock.runAll();
    expect(await result).toBe(3);
  });
});

describe("Scheduler: time", () => {
  it("a timeout aborts the attempt; its slot is freed only when the task really ends", async () => {
    const { clock, scheduler } = setup({
      concurrency: 1,
      timeoutMs: 1_000,
      retry: { maxAttempts: 1 },
    });
    let signal: AbortSignal | undefined;
    const stubborn = capture(
      scheduler.run(async (ctx) => {
        signal = ctx.signal;
        await clock.sleep(10_000); // ignores its signal
        return "late";
      }),
    );
    let secondStartedAt = -1;
    const second = scheduler.run(async () => {
      secondStartedAt = clock.now();
    });
    await clock.advance(1_000);
    expect(stubborn.error).toBeInstanceOf(TimeoutError);
    expect(signal?.aborted).toBe(true);
    expect(scheduler.inFlight).toBe(1); // still held by the stubborn task
    await clock.advance(8_999);
    expect(secondStartedAt).toBe(-1);
    await clock.advance(1);
    await second;
    expect(secondStartedAt).toBe(10_000);
  });

  it("a timed-out attempt is retried while the old one still holds its slot", async () => {
    const { clock, scheduler, of } = setup({
      concurrency: 2,
      timeoutMs: 100,
      retry: { baseDelayMs: 0, budget: false },
    });
    const result = scheduler.run(async (ctx) => {
      if (ctx.attempt === 1) await clock.sleep(1_000); // ignores its signal
      return ctx.attempt;
    });
    await clock.runAll();
    expect(await result).toBe(2);
    expect(of("started").map((s) => [s.attempt, s.inFlight])).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  it("the deadline spans attempts and backoff, and names the last error", async () => {
    const { clock, scheduler } = setup({
      deadlineMs: 5_000,
      retry: { baseDelayMs: 2_000, maxDelayMs: 2_000, jitter: "decorrelated", budget: false },
    });
    const result = scheduler.settle(async (ctx) => {
      await clock.sleep(1_000, ctx.signal);
      throw new ServerError(undefined, { status: 500 });
    });
    await clock.runAll();
    const outcome = await result;
    expect(outcome).toMatchObject({ ok: false, reason: "deadline-exceeded" });
    expect(!outcome.ok && outcome.error).toBeInstanceOf(DeadlineExceededError);
    expect(((!outcome.ok && outcome.error) as Error).cause).toBeInstanceOf(ServerError);
    expect(outcome.latencyMs).toBeLessThanOrEqual(5_000);
  });

  it("aborting settles queued work at once, and aborts running and sleeping work", async () => {
    const { clock, scheduler } = setup({
      concurrency: 1,
      retry: { baseDelayMs: 60_000, budget: false },
    });
    const controller = new AbortController();
    let runningSignal: AbortSignal | undefined;
    const running = capture(
      scheduler.run(
        async (ctx) => {
          runningSignal = ctx.signal;
          await clock.sleep(10_000); // ignores its signal
        },
        { signal: controller.signal },
      ),
    );
    const queued = capture(scheduler.run(async () => 1, { signal: controller.signal }));
    const sleeper = new AbortController();
    const sleeping = capture(
      scheduler.run(
        async () => {
          throw new ServerError();
        },
        { signal: sleeper.signal },
      ),
    );
    await clock.advance(10);
    expect(scheduler.queued).toBe(2);
    controller.abort(new Error("user pressed ctrl-c"));
    await clock.flush();
    expect(queued.error).toBeInstanceOf(AbortedError);
    expect(running.error).toBeInstanceOf(AbortedError);
    expect(runningSignal?.aborted).toBe(true);
    expect(scheduler.queued).toBe(1);
    expect(scheduler.inFlight).toBe(1); // honest: the running task has not ended
    await clock.advance(10_000);
    // The third item ran, failed, and now sleeps in backoff for up to 60 s.
    expect(scheduler.pending).toBe(1);
    sleeper.abort();
    await clock.flush();
    expect(sleeping.error).toBeInstanceOf(AbortedError);
    expect(scheduler.pending).toBe(0);
    await scheduler.onIdle();
  });

  it("an already-aborted signal settles at once", async () => {
    const { scheduler } = setup();
    await expect(
      scheduler.run(async () => 1, { signal: AbortSignal.abort() }),
    ).rejects.toBeInstanceOf(AbortedError);
  });
});

describe("Scheduler: rate limits", () => {
  it("paces requests to the RPM limit after the burst", async () => {
    const { clock, scheduler, of } = setup({
      concurrency: 100,
      requestsPerMinute: 600,
      burstSeconds: 1,
    });
    const result = scheduler.map(
      Array.from({ length: 30 }, (_, i) => i),
      async () => 1,
    );
    await clock.runAll();
    await result;
    const starts = of("started").map((s) => s.at);
    expect(starts.slice(0, 10).every((t) => t === 0)).toBe(true); // the burst: 1 s of 600/min
    expect(starts[29]).toBe(2_000); // then 10 per second
  });

  it("reconciles the estimate with the reported usage", async () => {
    const { clock, scheduler } = setup({ tokensPerMinute: 60_000 }); // capacity 1000 tokens
    await scheduler.run(
      async (ctx) => {
        ctx.reportUsage({ inputTokens: 150, outputTokens: 50 });
      },
      { cost: { tokens: 800 } },
    );
    expect(scheduler.bucket("tokens")!.level).toBe(800);
    await scheduler.run(
      async (ctx) => {
        ctx.reportUsage({ tokens: 1_000 });
      },
      { cost: { tokens: 300 } },
    );
    expect(scheduler.bucket("tokens")!.level).toBe(-200); // 800 - 300 reserved - 700 extra
    expect(clock.now()).toBe(0);
  });

  it("header snapshots lower levels (minus other in-flight reservations) and teach limits", async () => {
    const { clock, scheduler } = setup({ requestsPerMinute: 600 });
    const other = scheduler.run(() => clock.sleep(100));
    await scheduler.run(async (ctx) => {
      ctx.reportRateLimits({ requests: { remaining: 5 }, tokens: { limit: 6_000, remaining: 40 } });
    });
    // 5 remaining, minus the other call in flight that the provider may not have counted yet.
    expect(scheduler.bucket("requests")!.level).toBe(4);
    expect(scheduler.bucket("tokens")).toMatchObject({
      limitPerMinute: 6_000,
      capacity: 100,
      level: 40,
    });
    await clock.runAll();
    await other;
  });

  it("rejects a request larger than a whole per-minute limit at once, without stalling others", async () => {
    const { scheduler } = setup({ tokensPerMinute: 1_000 });
    const tooBig = scheduler.run(async () => 1, { cost: { tokens: 1_500 } });
    await expect(tooBig).rejects.toBeInstanceOf(RequestTooLargeError);
    await expect(tooBig).rejects.toMatchObject({ dimension: "tokens", limit: 1_000, cost: 1_500 });
    expect(await scheduler.run(async () => 2, { cost: { tokens: 10 } })).toBe(2);
  });

  it("a request above a bucket's capacity waits for a full bucket, then drives it negative", async () => {
    const { clock, scheduler, of } = setup({ tokensPerMinute: 60_000 }); // capacity 1000
    const result = scheduler.map([300, 5_000, 10], async () => 1, {
      cost: (tokens) => ({ tokens }),
    });
    await clock.runAll();
    await result;
    // 300 leaves 700; 5000 waits for a full bucket (1000) at 300 and leaves -4000; 10 waits
    // until the level is back to 10: 4010 ms later.
    expect(of("started").map((s) => s.at)).toEqual([0, 300, 4_310]);
  });

  it("a 429 without readings empties the buckets", async () => {
    const { clock, scheduler } = setup({ requestsPerMinute: 600, cooldownMs: 500 });
    void scheduler.settle(
      async () => {
        throw new RateLimitError();
      },
      { deadlineMs: 100 },
    );
    await clock.flush();
    expect(scheduler.bucket("requests")!.level).toBeLessThanOrEqual(0);
    expect(scheduler.isCoolingDown).toBe(true);
    await clock.runAll();
  });
});

describe("Scheduler: nesting and scopes", () => {
  it("nested maps with concurrency 2 finish and never exceed 2 calls in flight", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 2 });
    let calls = 0;
    let maxCalls = 0;
    const claims = [
      ["a1", "a2", "a3"],
      ["b1", "b2"],
      ["c1", "c2", "c3", "c4"],
    ];
    const result = scheduler.map(claims, async (items) => {
      const lineItems = await scheduler.map(items, async (item) => {
        maxCalls = Math.max(maxCalls, ++calls);
        await clock.sleep(100);
        calls--;
        return item.toUpperCase();
      });
      return lineItems.map((o) => (o.ok ? o.value : "?")).join(",");
    });
    await clock.runAll();
    const outcomes = await result;
    expect(outcomes.map((o) => o.ok && o.value)).toEqual(["A1,A2,A3", "B1,B2", "C1,C2,C3,C4"]);
    expect(maxCalls).toBe(2);
    for (const s of of("started")) expect(s.inFlight).toBeLessThanOrEqual(2);
    expect(clock.now()).toBe(500); // 9 calls, 2 at a time, 100 ms each
    expect(scheduler.inFlight).toBe(0);
  });

  it("nested run inherits the outer item's cancellation", async () => {
    const { clock, scheduler } = setup({ concurrency: 1 });
    const controller = new AbortController();
    let innerSignal: AbortSignal | undefined;
    const outer = capture(
      scheduler.run(
        () =>
          scheduler.run(async (ctx) => {
            innerSignal = ctx.signal;
            await clock.sleep(1_000, ctx.signal);
          }),
        { signal: controller.signal },
      ),
    );
    await clock.advance(10);
    controller.abort();
    await clock.flush();
    expect(outer.error).toBeInstanceOf(AbortedError);
    expect(innerSignal?.aborted).toBe(true);
  });

  it("a scope caps its own job while drawing on the shared limit", async () => {
    const { clock, scheduler, of, events } = setup({ concurrency: 4 });
    const capped = scheduler.scope({ name: "capped", concurrency: 1 });
    const free = scheduler.scope({ name: "free" });
    const a = capped.map(
      Array.from({ length: 6 }, (_, i) => i),
      () => clock.sleep(100),
    );
    const b = free.map(
      Array.from({ length: 6 }, (_, i) => i),
      () => clock.sleep(100),
    );
    await clock.advance(1);
    expect(capped.inFlight).toBe(1);
    expect(free.inFlight).toBe(3);
    await clock.runAll();
    await Promise.all([a, b]);
    let cappedInFlight = 0;
    for (const e of of("started")) expect(e.inFlight).toBeLessThanOrEqual(4);
    for (const { type, payload } of events) {
      if (!("scope" in payload) || payload.scope !== "capped") continue;
      if (type === "started") cappedInFlight++;
      if (type === "succeeded") cappedInFlight--;
      expect(cappedInFlight).toBeLessThanOrEqual(1);
    }
  });

  it("scopes at equal priority share the scheduler round-robin", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 1 });
    const jobA = scheduler.scope({ name: "A" });
    const jobB = scheduler.scope({ name: "B" });
    const first = jobA.map([1, 2, 3, 4], () => clock.sleep(10));
    const second = jobB.map([1, 2, 3, 4], () => clock.sleep(10));
    await clock.runAll();
    await Promise.all([first, second]);
    expect(of("started").map((s) => s.scope)).toEqual(["A", "B", "A", "B", "A", "B", "A", "B"]);
  });
});

describe("Scheduler: streaming", () => {
  it("yields outcomes in input order and never reads more than the window ahead", async () => {
    const { clock, scheduler } = setup({ concurrency: 4 });
    const window = 5;
    let read = 0;
    let yielded = 0;
    let maxAhead = 0;
    function* inputs() {
      for (let i = 0; i < 50; i++) {
        read++;
        maxAhead = Math.max(maxAhead, read - yielded);
        yield i;
      }
    }
    const seen: number[] = [];
    const consumer = (async () => {
      for await (const outcome of scheduler.stream(
        inputs(),
        async (i, ctx) => {
          await clock.sleep((i * 37) % 100, ctx.signal);
          return i;
        },
        { window },
      )) {
        yielded++;
        if (outcome.ok) seen.push(outcome.value);
      }
    })();
    await clock.runAll();
    await consumer;
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(maxAhead).toBeLessThanOrEqual(window);
  });

  it("breaking out of a stream aborts its unfinished items", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 2 });
    const consumer = (async () => {
      for await (const outcome of scheduler.stream(
        [0, 1, 2, 3],
        (i) => clock.sleep(i * 100).then(() => i),
        {
          window: 4,
        },
      )) {
        if (outcome.ok) break;
      }
    })();
    await clock.runAll();
    await consumer;
    expect(of("failed").map((f) => f.reason)).toEqual(["aborted", "aborted", "aborted"]);
    expect(scheduler.pending).toBe(0);
  });
});

describe("Scheduler: lifecycle", () => {
  it("close settles waiting work, refuses new work and resolves when attempts end", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 1 });
    const running = capture(scheduler.run(() => clock.sleep(1_000)));
    const waiting = capture(scheduler.run(async () => 1));
    const closed = capture(scheduler.close());
    await clock.flush();
    expect(waiting.error).toBeInstanceOf(SchedulerClosedError);
    expect(running.error).toBeInstanceOf(SchedulerClosedError);
    expect(closed.done).toBe(false);
    await expect(scheduler.run(async () => 1)).rejects.toBeInstanceOf(SchedulerClosedError);
    await clock.runAll();
    expect(closed.done).toBe(true);
    expect(of("idle")).toHaveLength(1);
  });

  it("every item ends in exactly one terminal event, and idle holds no timer", async () => {
    const { clock, scheduler, of } = setup({
      concurrency: 3,
      timeoutMs: 500,
      requestsPerMinute: 120,
    });
    const result = scheduler.map(
      Array.from({ length: 20 }, (_, i) => i),
      async (i, ctx) => {
        await clock.sleep(i * 50, ctx.signal);
        if (i % 3 === 0) throw new ServerError();
        return i;
      },
    );
    await clock.runAll();
    await result;
    const terminal = [...of("succeeded"), ...of("failed")];
    expect(terminal).toHaveLength(20);
    expect(new Set(terminal.map((t) => t.id)).size).toBe(20);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe("Scheduler: nesting detection", () => {
  it("a listener that submits work is not mistaken for a task nesting work", async () => {
    const { clock, scheduler } = setup({ concurrency: 2 });
    const extra: Array<Promise<number>> = [];
    scheduler.on("succeeded", (e) => {
      if (e.id === "first") extra.push(scheduler.run(async () => 42));
    });
    let longSignal: AbortSignal | undefined;
    const long = scheduler.run(
      async (ctx) => {
        longSignal = ctx.signal;
        await clock.sleep(1_000);
        return 1;
      },
      { id: "long", timeoutMs: 500, deadlineMs: 10_000 },
    );
    void long.catch(() => {});
    await scheduler.run(async () => 0, { id: "first" });
    expect(await Promise.all(extra)).toEqual([42]);
    // "long" kept its slot and its timeout: it was not turned into an orchestrator.
    expect(scheduler.inFlight).toBe(1);
    await clock.advance(500);
    expect(longSignal?.aborted).toBe(true);
    await clock.runAll();
  });
});

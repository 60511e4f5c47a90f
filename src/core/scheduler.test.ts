import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import {
  AbortedError,
  ClientError,
  DeadlineExceededError,
  OverloadedError,
  QuotaExceededError,
  RateLimitError,
  RequestTooLargeError,
  RetryAfterTooLongError,
  SchedulerClosedError,
  ServerError,
  TimeoutError,
} from "../errors.ts";
import type { StaticConcurrency } from "./concurrency/static-concurrency.ts";
import { SCHEDULER_EVENT_NAMES, type SchedulerEvents } from "./events.ts";
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
  for (const type of SCHEDULER_EVENT_NAMES) {
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

  it("a dry retry budget delays retries but never fails an item with attempts to spare", async () => {
    // Regression: the budget used to refuse retries past 20% of first attempts, failing items
    // after 1-2 of their 10 attempts in a fault storm.
    const { clock, scheduler, of } = setup({
      concurrency: 10,
      retry: { maxAttempts: 4, baseDelayMs: 10, budget: { perSecond: 2, burst: 3 } },
    });
    const result = scheduler.map(
      Array.from({ length: 5 }, (_, i) => i),
      async () => {
        throw new ServerError(undefined, { status: 500 });
      },
    );
    await clock.runAll();
    const outcomes = await result;
    // Every item used all its attempts: 5 x 3 retries, none refused.
    expect(of("retry-scheduled")).toHaveLength(15);
    for (const o of outcomes) {
      expect(o.ok).toBe(false);
      expect(!o.ok && o.reason).toBe("attempts-exhausted");
      expect(o.attempts).toBe(4);
    }
    // The budget paced them: 15 retries from a bucket of 3 refilled at 2/s take about 6 s.
    expect(clock.now()).toBeGreaterThanOrEqual(5_500);
  });

  it("a storm of transient faults: items retry at full speed while most calls succeed", async () => {
    const { clock, scheduler } = setup({
      concurrency: 20,
      retry: { maxAttempts: 10, baseDelayMs: 10, maxDelayMs: 10 },
    });
    const random = seededRandom(3);
    const result = scheduler.map(
      Array.from({ length: 400 }, (_, i) => i),
      async () => {
        await clock.sleep(100);
        // 30% of attempts fail (seeded: every run the same).
        if (random() < 0.3) throw new ServerError(undefined, { status: 503 });
        return "ok";
      },
    );
    await clock.runAll();
    const outcomes = await result;
    expect(outcomes.filter((o) => o.ok)).toHaveLength(400);
    // 400 items + ~43% retries at 20 in flight and 100 ms each: about 2.9 s, not paced down.
    expect(clock.now()).toBeLessThan(3_500);
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

  it("the deadline does not fail an attempt the provider has answered: it settles with its answer (writing it down may pass the deadline, within a grace); a retry it then needs is refused; a write that hangs still ends the item", async () => {
    const { clock, scheduler, of } = setup({
      concurrency: 4,
      deadlineMs: 1_000,
      retry: { baseDelayMs: 10, maxDelayMs: 10, budget: false },
    });
    const kept = scheduler.settle(async (ctx) => {
      await clock.sleep(900, ctx.signal); // the provider answers in time
      ctx.answered();
      await clock.sleep(500, ctx.signal); // the answer's journal line, past the deadline
      return "answer";
    });
    const lost = scheduler.settle(async (ctx) => {
      await clock.sleep(900, ctx.signal);
      ctx.answered();
      await clock.sleep(500, ctx.signal);
      throw new ServerError(undefined, { status: 500 }); // retryable, but past the deadline
    });
    const unanswered = scheduler.settle(async (ctx) => {
      await clock.sleep(1_400, ctx.signal);
      return "too late";
    });
    let hungSettledAt = -1;
    const hung = scheduler.settle(async (ctx) => {
      await clock.sleep(900, ctx.signal);
      ctx.answered();
      await new Promise(() => {}); // a journal write that never ends
    });
    void hung.then(() => {
      hungSettledAt = clock.now();
    });
    await clock.runAll();
    expect(await kept).toMatchObject({ ok: true, value: "answer" });
    const failed = await lost;
    expect(failed).toMatchObject({ ok: false, reason: "deadline-exceeded" });
    expect(((!failed.ok && failed.error) as Error).cause).toBeInstanceOf(ServerError);
    expect(await unanswered).toMatchObject({ ok: false, reason: "deadline-exceeded" });
    // The grace is the attempt's timeout, at most the deadline again: 1 000 ms past it.
    expect(await hung).toMatchObject({ ok: false, reason: "deadline-exceeded" });
    expect(hungSettledAt).toBe(2_000);
    expect(of("succeeded")).toHaveLength(1);
    expect(of("started")).toHaveLength(4); // no retry was started past the deadline
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

describe("Scheduler: Retry-After", () => {
  it("a Retry-After beyond maxRetryAfterMs fails the item at once, with the hint in the message", async () => {
    // Regression: Retry-After: 3600 used to be honoured without a cap, an hour per retry.
    const { clock, scheduler, of } = setup({ concurrency: 2, maxRetryAfterMs: 120_000 });
    let calls = 0;
    const outcome = scheduler.settle(async () => {
      calls++;
      throw new RateLimitError("slow down", { status: 429, retryAfterMs: 3_600_000 });
    });
    await clock.advance(0);
    const result = await outcome;
    expect(clock.now()).toBe(0);
    expect(calls).toBe(1);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toBe("retry-after-too-long");
    const error = !result.ok ? (result.error as RetryAfterTooLongError) : undefined;
    expect(error).toBeInstanceOf(RetryAfterTooLongError);
    expect(error?.message).toMatch(/3600 s .*Retry-After.*120 s/);
    expect(error?.cause).toBeInstanceOf(RateLimitError);
    // The key pauses only the usual cooldown, not an hour.
    expect(scheduler.cooldownUntil).toBeLessThanOrEqual(1_100);
    expect(of("attempt-failed")[0]?.willRetry).toBe(false);
    // Other work goes on after the short pause.
    const next = scheduler.run(async () => "ok");
    await clock.runAll();
    expect(await next).toBe("ok");
  });

  it("a Retry-After past the item's deadline fails it at once, naming the hint", async () => {
    const { clock, scheduler } = setup({ concurrency: 1, deadlineMs: 10_000 });
    const outcome = scheduler.settle(async () => {
      throw new OverloadedError(undefined, { status: 503, retryAfterMs: 60_000 });
    });
    await clock.advance(0);
    const result = await outcome;
    expect(clock.now()).toBe(0);
    expect(!result.ok && result.reason).toBe("deadline-exceeded");
    expect(!result.ok && (result.error as Error).message).toMatch(/wait 60 s before a retry/);
  });

  it("a retry's wait and its end are in the retry-scheduled event (for progress)", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 1, cooldownJitter: 0 });
    const outcome = scheduler.settle(async (ctx) => {
      if (ctx.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs: 30_000 });
      return "ok";
    });
    await clock.runAll();
    expect((await outcome).ok).toBe(true);
    const scheduled = of("retry-scheduled")[0]!;
    expect(scheduled.retryAfterMs).toBe(30_000);
    expect(scheduled.retryAt).toBe(scheduled.at + scheduled.delayMs);
    expect(scheduled.delayMs).toBeGreaterThanOrEqual(30_000);
  });
});

describe("Scheduler: rate limits", () => {
  it("paces requests to the RPM limit after the burst", async () => {
    const { clock, scheduler, of } = setup({
      concurrency: 100,
      requestsPerMinute: 600,
      burstSeconds: 1,
      rateMarginMs: 0,
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

  it("keeps a margin of refill, so a call that reaches the provider early finds its token", async () => {
    // Regression: with the limit known and correct, a burst that emptied both buckets drew a
    // 429 whenever a call arrived a few ms sooner than its turn. 600/min with a 100 ms margin:
    // every call waits for its token plus one call's worth of refill (never more than the bucket
    // holds, so a full bucket always admits).
    const { clock, scheduler, of } = setup({
      concurrency: 100,
      requestsPerMinute: 600,
      burstSeconds: 1,
      rateMarginMs: 100,
    });
    const result = scheduler.map(
      Array.from({ length: 30 }, (_, i) => i),
      async () => 1,
    );
    await clock.runAll();
    await result;
    const starts = of("started").map((s) => s.at);
    expect(starts.filter((t) => t === 0)).toHaveLength(9); // a call's refill short of the burst
    expect(starts[29]).toBe(2_100); // the same 10 per second, 100 ms behind
    // What the provider's bucket (full at 0, 10 per second) holds at each arrival, up to 100 ms
    // early: never less than the call.
    for (let i = 0; i < starts.length; i++) {
      const early = starts[i]! - 100;
      const providerLevel = Math.min(10, 10 + Math.max(0, early) / 100 - i);
      expect(providerLevel).toBeGreaterThanOrEqual(1 - 1e-9);
    }
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

  it("a rate below one request per minute runs every request, one per interval", async () => {
    // Regression: requestsPerMinute 0.5 failed every item with SALVO_REQUEST_TOO_LARGE.
    const { clock, scheduler, of } = setup({ concurrency: 4, requestsPerMinute: 0.5 });
    const result = scheduler.map([1, 2, 3], async (x) => x);
    await clock.runAll();
    expect((await result).map((o) => o.ok)).toEqual([true, true, true]);
    const starts = of("started").map((s) => s.at);
    expect(starts[0]).toBe(0);
    expect(starts[1]).toBeGreaterThan(119_000);
    expect(starts[2]! - starts[1]!).toBeGreaterThan(119_000);
  });

  it("rejects a request larger than a whole per-minute limit at once, without stalling others", async () => {
    const { scheduler } = setup({ tokensPerMinute: 1_000 });
    const tooBig = scheduler.run(async () => 1, { cost: { tokens: 1_500 } });
    await expect(tooBig).rejects.toBeInstanceOf(RequestTooLargeError);
    await expect(tooBig).rejects.toMatchObject({ dimension: "tokens", limit: 1_000, cost: 1_500 });
    expect(await scheduler.run(async () => 2, { cost: { tokens: 10 } })).toBe(2);
  });

  it("a request above a bucket's capacity waits for a full bucket, then drives it negative", async () => {
    const { clock, scheduler, of } = setup({ tokensPerMinute: 60_000, rateMarginMs: 0 }); // capacity 1000
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

describe("Scheduler: shared signals", () => {
  it("calls sharing one signal: one listener while any is live, none after; an abort settles them all", async () => {
    const { clock, scheduler } = setup({ concurrency: 2 });
    const shared = new AbortController();
    const calls = Array.from({ length: 5 }, (_, i) =>
      scheduler.settle(() => clock.sleep(100 * (i + 1)), { signal: shared.signal }),
    );
    expect(getEventListeners(shared.signal, "abort")).toHaveLength(1);
    await clock.runAll();
    await Promise.all(calls);
    expect(getEventListeners(shared.signal, "abort")).toHaveLength(0);

    const more = Array.from({ length: 4 }, () =>
      scheduler.settle(() => clock.sleep(1_000), { signal: shared.signal }),
    );
    shared.abort(new Error("stop"));
    const outcomes = await Promise.all(more);
    expect(outcomes.map((o) => o.ok)).toEqual([false, false, false, false]);
    expect(getEventListeners(shared.signal, "abort")).toHaveLength(0);
    await clock.runAll();
  });

  it("a task that is not a request (requests: 0) does not teach the concurrency controller", async () => {
    const samples: number[] = [];
    const controller = {
      limit: 2,
      onStart() {},
      onOutcome(sample: { latencyMs: number }) {
        samples.push(sample.latencyMs);
      },
      subscribe: () => () => {},
    };
    const { clock, scheduler } = setup({ concurrency: controller });
    const work = Promise.all([
      scheduler.run(() => clock.sleep(10), { cost: { requests: 0 } }),
      scheduler.run(() => clock.sleep(20)),
    ]);
    await clock.runAll();
    await work;
    expect(samples).toEqual([20]);
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
    expect(of("idle")).toHaveLength(1);
    expect(scheduler.pending + scheduler.inFlight + scheduler.queued).toBe(0);
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

describe("Scheduler: listeners that call back", () => {
  it("an abort from an attempt-failed listener settles the item once", async () => {
    const clock = new FakeClock();
    const s = new Scheduler({
      clock,
      random: seededRandom(1),
      retry: { baseDelayMs: 100, budget: false },
    });
    const ac = new AbortController();
    s.on("attempt-failed", () => ac.abort());
    let calls = 0;
    let terminal = 0;
    s.on("failed", () => terminal++);
    s.on("succeeded", () => terminal++);
    const result = capture(
      s.run(
        async () => {
          calls++;
          throw new ServerError(undefined, { status: 500 });
        },
        { signal: ac.signal },
      ),
    );
    await clock.runAll();
    expect([calls, terminal, s.pending]).toEqual([1, 1, 0]);
    expect(result.error).toBeInstanceOf(AbortedError);
    await s.onIdle();
  });

  it("close() from an attempt-failed listener settles once, resolves, and reaches other items", async () => {
    const clock = new FakeClock();
    const s = new Scheduler({ clock, random: seededRandom(1), concurrency: 2 });
    s.on("attempt-failed", (e) => {
      if (e.result === "quota") void s.close();
    });
    const terminal = new Map<unknown, number>();
    s.on("failed", (e) => terminal.set(e.id, (terminal.get(e.id) ?? 0) + 1));
    s.on("succeeded", (e) => terminal.set(e.id, (terminal.get(e.id) ?? 0) + 1));
    const other = capture(s.run((ctx) => clock.sleep(1_000, ctx.signal), { id: "other" }));
    const quota = capture(
      s.run(
        async () => {
          throw new QuotaExceededError();
        },
        { id: "quota" },
      ),
    );
    const waiting = capture(s.run(async () => 1, { id: "waiting" }));
    await clock.flush();
    const closed = capture(s.close());
    await clock.runAll();
    expect(quota.done && other.done && waiting.done).toBe(true);
    expect(other.error).toBeInstanceOf(SchedulerClosedError);
    expect([...terminal.values()]).toEqual([1, 1, 1]);
    expect(s.pending).toBe(0);
    expect(closed.done).toBe(true);
  });

  it("an abort from a queued listener on a retry re-entering admission settles once", async () => {
    const clock = new FakeClock();
    const s = new Scheduler({
      clock,
      random: seededRandom(1),
      retry: { baseDelayMs: 100, budget: false },
    });
    const ac = new AbortController();
    s.on("queued", (e) => {
      if (e.attempt === 2) ac.abort();
    });
    let calls = 0;
    let terminal = 0;
    s.on("failed", () => terminal++);
    s.on("succeeded", () => terminal++);
    void s
      .run(
        async () => {
          calls++;
          throw new ServerError(undefined, { status: 500 });
        },
        { signal: ac.signal },
      )
      .catch(() => {});
    await clock.runAll();
    expect([calls, terminal, s.pending, s.queued]).toEqual([1, 1, 0, 0]);
  });

  it("an abort from a started listener keeps the task from running", async () => {
    const { clock, scheduler } = setup();
    const ac = new AbortController();
    scheduler.on("started", () => ac.abort());
    let ran = false;
    const result = capture(
      scheduler.run(
        async () => {
          ran = true;
        },
        { signal: ac.signal },
      ),
    );
    await clock.runAll();
    expect(ran).toBe(false);
    expect(result.error).toBeInstanceOf(AbortedError);
    expect([scheduler.pending, scheduler.inFlight]).toEqual([0, 0]);
  });
});

describe("Scheduler: orchestrators", () => {
  it("an orchestrator's own call stays charged", async () => {
    const s = new Scheduler({ clock: new FakeClock(), tokensPerMinute: 60_000 });
    await s.run(
      async (ctx) => {
        ctx.reportUsage({ tokens: 900 });
        await s.run(async () => 1, { cost: { tokens: 0 } });
      },
      { cost: { tokens: 500 } },
    );
    expect(s.bucket("tokens")!.level).toBeCloseTo(100);
  });

  it("an orchestrator that said answered() still fails at its deadline: its own work is not an answer being written down", async () => {
    const clock = new FakeClock();
    const s = new Scheduler({ clock, concurrency: 2, deadlineMs: 1_000 });
    const parent = s.settle(async (ctx) => {
      await clock.sleep(100, ctx.signal);
      ctx.answered(); // its own call answered; then it fans out
      await s.run(async (child) => {
        await clock.sleep(1_500, child.signal);
        return 1;
      });
      return "done";
    });
    let settledAt = -1;
    void parent.then(() => {
      settledAt = clock.now();
    });
    await clock.runAll();
    expect(await parent).toMatchObject({ ok: false, reason: "deadline-exceeded" });
    expect(settledAt).toBe(1_000);
  });

  it("usage an orchestrator reports after nesting is charged too", async () => {
    const s = new Scheduler({ clock: new FakeClock(), tokensPerMinute: 60_000 });
    await s.run(
      async (ctx) => {
        await s.run(async () => 1, { cost: { tokens: 0 } });
        ctx.reportUsage({ tokens: 300 });
      },
      { cost: { tokens: 500 } },
    );
    expect(s.bucket("tokens")!.level).toBeCloseTo(700);
  });

  it("the controller sees one outcome per start, orchestrators included", async () => {
    const clock = new FakeClock();
    let starts = 0;
    let outcomes = 0;
    const s = new Scheduler({
      clock,
      concurrency: {
        limit: 2,
        onStart: () => starts++,
        onOutcome: () => outcomes++,
        subscribe: () => () => {},
      },
    });
    const result = s.map([1, 2, 3], async (n) => {
      await clock.sleep(5);
      return s.map([n, n], async (m) => {
        await clock.sleep(10);
        return m;
      });
    });
    await clock.runAll();
    await result;
    expect(starts).toBe(9);
    expect(outcomes).toBe(starts);
  });

  it("nested work runs depth-first: the first claim finishes before the last claim starts", async () => {
    const { clock, scheduler } = setup({ concurrency: 2 });
    const log: string[] = [];
    const claims = [0, 1, 2, 3, 4, 5];
    const result = scheduler.map(claims, async (claim) => {
      log.push(`claim ${claim} call`);
      await clock.sleep(10);
      return scheduler.map([0, 1, 2], async (line) => {
        await clock.sleep(10);
        log.push(`claim ${claim} line ${line} done`);
      });
    });
    await clock.runAll();
    await result;
    const lastClaimStart = log.indexOf("claim 5 call");
    for (const line of [0, 1, 2]) {
      expect(log.indexOf(`claim 0 line ${line} done`)).toBeLessThan(lastClaimStart);
    }
  });

  it("an invalid option throws without turning the caller into an orchestrator", async () => {
    const { clock, scheduler } = setup({ concurrency: 1 });
    let inFlightAfter = -1;
    const outer = scheduler.run(async () => {
      await expect(
        (async () => scheduler.run(async () => 1, { timeoutMs: -1 }))(),
      ).rejects.toThrow();
      await expect(scheduler.map([1], async () => 1, { priority: Number.NaN })).rejects.toThrow();
      inFlightAfter = scheduler.inFlight;
    });
    await clock.runAll();
    await outer;
    expect(inFlightAfter).toBe(1);
  });

  it("a scope's priority is validated", () => {
    const { scheduler } = setup();
    expect(() => scheduler.scope({ priority: Number.NaN })).toThrow(/priority/);
  });
});

describe("Scheduler: reading input", () => {
  async function* stalled() {
    yield 1;
    await new Promise(() => {});
  }

  it("map settles after an abort while the async input is stalled", async () => {
    const { clock, scheduler } = setup();
    const ac = new AbortController();
    const result = capture(scheduler.map(stalled(), async (i) => i, { signal: ac.signal }));
    await clock.flush();
    ac.abort();
    await clock.runAll();
    expect(result.done).toBe(true);
    expect((result.value ?? []).map((o) => o.ok)).toEqual([true]);
  });

  it("stream ends after an abort while the async input is stalled", async () => {
    const { clock, scheduler } = setup();
    const ac = new AbortController();
    const seen: boolean[] = [];
    const consumer = capture(
      (async () => {
        for await (const o of scheduler.stream(stalled(), async (i) => i, { signal: ac.signal })) {
          seen.push(o.ok);
        }
      })(),
    );
    await clock.flush();
    ac.abort();
    await clock.runAll();
    expect(consumer.done).toBe(true);
    expect(seen).toEqual([true]);
  });

  it("close() stops map and stream reading their input", async () => {
    const { clock, scheduler } = setup({ concurrency: 1 });
    let read = 0;
    function* endless() {
      for (let i = 0; ; i++) {
        read++;
        if (i === 3) void scheduler.close();
        yield i;
      }
    }
    const mapped = capture(scheduler.map(endless(), async (i) => i));
    await clock.runAll();
    expect(mapped.done).toBe(true);
    expect(read).toBe(4);
    expect(mapped.value).toHaveLength(4);
    const { clock: clock2, scheduler: s2 } = setup({ concurrency: 1 });
    let read2 = 0;
    async function* endlessAsync() {
      for (let i = 0; ; i++) {
        read2++;
        if (i === 3) void s2.close();
        yield i;
      }
    }
    const outcomes: unknown[] = [];
    const consumer = capture(
      (async () => {
        for await (const o of s2.stream(endlessAsync(), async (i) => i)) outcomes.push(o);
      })(),
    );
    await clock2.runAll();
    expect(consumer.done).toBe(true);
    expect(read2).toBe(4);
    // The read that was pending when close() came is abandoned: inputs 0-2 get an outcome each.
    expect(outcomes).toHaveLength(3);
  });

  it("an abort stops a sync input being read", async () => {
    const { clock, scheduler } = setup();
    const ac = new AbortController();
    let read = 0;
    function* endless() {
      for (let i = 0; ; i++) {
        read++;
        if (i === 2) ac.abort();
        yield i;
      }
    }
    const mapped = capture(scheduler.map(endless(), async (i) => i, { signal: ac.signal }));
    await clock.runAll();
    expect(mapped.done).toBe(true);
    expect(read).toBe(3);
  });

  it("failing maps leave no listener on a long-lived signal", async () => {
    const { EventEmitter } = await import("node:events");
    const { scheduler } = setup();
    const ac = new AbortController();
    function* broken() {
      yield 1;
      throw new Error("bad input");
    }
    for (let k = 0; k < 3; k++) {
      await expect(scheduler.map(broken(), async (i) => i, { signal: ac.signal })).rejects.toThrow(
        "bad input",
      );
    }
    await scheduler.map([1, 2], async (i) => i, { signal: ac.signal });
    expect(EventEmitter.getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });
});

describe("Scheduler: cooldown bursts", () => {
  it("a burst of 429s from calls already in flight pauses the key once", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 5, cooldownJitter: 0 });
    const result = scheduler.map([0, 1, 2, 3, 4], async (i, ctx) => {
      await clock.sleep(100 + i * 100);
      if (ctx.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs: 1_000 });
      return 1;
    });
    await clock.runAll();
    await result;
    expect(of("cooldown").map((c) => c.until)).toEqual([1_100]);
  });

  it("a longer Retry-After in the same burst extends the pause to the max, not the sum", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 2, cooldownJitter: 0 });
    const result = scheduler.map([1_000, 5_000], async (retryAfterMs, ctx) => {
      await clock.sleep(retryAfterMs === 1_000 ? 100 : 200);
      if (ctx.attempt === 1) throw new RateLimitError(undefined, { retryAfterMs });
      return 1;
    });
    await clock.runAll();
    await result;
    // The burst began at 100: its pause is the longest answer from then, 5 s; not 1 s + 5 s.
    expect(of("cooldown").map((c) => c.until)).toEqual([1_100, 5_100]);
  });

  it("a 429 from a call started after the cooldown ended starts a new one", async () => {
    const { clock, scheduler, of } = setup({ concurrency: 1, cooldownJitter: 0 });
    const result = scheduler.settle(async (ctx) => {
      await clock.sleep(100);
      if (ctx.attempt <= 2) throw new RateLimitError(undefined, { retryAfterMs: 1_000 });
      return 1;
    });
    await clock.runAll();
    await result;
    expect(of("cooldown").map((c) => c.until)).toEqual([1_100, 2_200]);
  });
});

describe("Scheduler: review gaps", () => {
  it("an item queued before a learned lower limit is refused as too large", async () => {
    const { clock, scheduler } = setup({ concurrency: 1, tokensPerMinute: 10_000 });
    const first = scheduler.run(async (ctx) => {
      await clock.sleep(10);
      ctx.reportRateLimits({ tokens: { limit: 1_000 } });
    });
    const big = capture(scheduler.run(async () => 1, { cost: { tokens: 5_000 } }));
    const small = scheduler.run(async () => 2, { cost: { tokens: 10 } });
    await clock.runAll();
    await first;
    expect(big.error).toBeInstanceOf(RequestTooLargeError);
    expect(await small).toBe(2);
  });

  it("x-should-retry and 408/409 decide retries through the scheduler", async () => {
    const { clock, scheduler } = setup({ retry: { baseDelayMs: 10, budget: false } });
    const attemptsFor = (error: () => Error) =>
      scheduler.settle(async (ctx) => {
        if (ctx.attempt === 1) throw error();
        return ctx.attempt;
      });
    const results = Promise.all([
      attemptsFor(() => new ServerError(undefined, { status: 500, shouldRetry: false })),
      attemptsFor(() => new ClientError(undefined, { status: 400, shouldRetry: true })),
      attemptsFor(() => new ClientError(undefined, { status: 408 })),
      attemptsFor(() => new ClientError(undefined, { status: 409 })),
      attemptsFor(() => new ClientError(undefined, { status: 400 })),
    ]);
    await clock.runAll();
    expect((await results).map((o) => [o.ok, o.attempts])).toEqual([
      [false, 1],
      [true, 2],
      [true, 2],
      [true, 2],
      [false, 1],
    ]);
  });

  it("close() while items sleep before a retry settles them and leaves no timer", async () => {
    const { clock, scheduler, of } = setup({ retry: { baseDelayMs: 1_000, budget: false } });
    let calls = 0;
    const result = scheduler.map([1, 2], async () => {
      calls++;
      throw new ServerError(undefined, { status: 500 });
    });
    await clock.advance(10);
    expect(scheduler.pending).toBe(2);
    await scheduler.close();
    const outcomes = await result;
    expect(outcomes.map((o) => !o.ok && o.reason)).toEqual(["closed", "closed"]);
    expect(calls).toBe(2);
    expect(of("failed")).toHaveLength(2);
    expect(clock.pendingTimers).toBe(0);
  });

  it("a fixed-window reset holds the bucket at remaining until the reset", async () => {
    const { clock, scheduler, of } = setup({ requestsPerMinute: 600, rateMarginMs: 0 });
    await scheduler.run(async (ctx) => {
      ctx.reportRateLimits({
        requests: { limit: 600, remaining: 0, resetMs: 40_000, fixedWindow: true },
      });
    });
    const next = scheduler.run(async () => 1);
    await clock.runAll();
    await next;
    expect(of("started").map((s) => s.at)).toEqual([0, 40_100]);
  });

  it("a continuous provider's short reset does not hold the bucket", async () => {
    const { clock, scheduler, of } = setup({ requestsPerMinute: 600, rateMarginMs: 0 });
    await scheduler.run(async (ctx) => {
      ctx.reportRateLimits({ requests: { limit: 600, remaining: 0, resetMs: 1_000 } });
    });
    const next = scheduler.run(async () => 1);
    await clock.runAll();
    await next;
    expect(of("started").map((s) => s.at)).toEqual([0, 100]);
  });

  it("header sync subtracts only reservations the provider cannot have seen", async () => {
    const { clock, scheduler } = setup({ requestsPerMinute: 600 }); // 10 per second, burst 10
    const early = scheduler.run(async () => clock.sleep(50)); // starts at 0: the provider saw it
    await clock.advance(5);
    const reporter = scheduler.run(async (ctx) => {
      await clock.sleep(10);
      ctx.reportRateLimits({ requests: { remaining: 6 } }); // at t = 15
    });
    await clock.advance(2);
    const late = scheduler.run(async () => clock.sleep(50)); // starts at 7: after the reporter
    await clock.advance(8);
    // At t = 15: 6 remaining when the reporter arrived (t = 5), plus 10 ms of refill at 10/s
    // until its answer (0.1), minus the one call the provider cannot have counted (late, started
    // at 7), not minus early (started at 0): 6 + 0.1 - 1.
    expect(scheduler.bucket("requests")?.level).toBeCloseTo(5.1, 3);
    await clock.runAll();
    await Promise.all([early, reporter, late]);
  });
});

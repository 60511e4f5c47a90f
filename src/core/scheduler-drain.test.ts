import { describe, expect, it } from "vitest";
import { AbortedError, ServerError } from "../errors.ts";
import { FakeClock } from "./fake-clock.ts";
import { seededRandom } from "./random.ts";
import { Scheduler } from "./scheduler.ts";

function capture<T>(promise: Promise<T>) {
  const box: { value?: T; error?: unknown; done: boolean } = { done: false };
  promise.then(
    (value) => Object.assign(box, { value, done: true }),
    (error) => Object.assign(box, { error, done: true }),
  );
  return box;
}

describe("Scheduler.drain: a graceful stop", () => {
  it("answers that arrive while draining are kept; queued work settles at once as aborted", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ clock, random: seededRandom(1), concurrency: 2 });
    const running = [0, 1].map(() =>
      capture(scheduler.run(() => clock.sleep(1_000).then(() => "answer"))),
    );
    const queued = capture(scheduler.run(async () => "never"));
    await clock.advance(100);
    const reason = new Error("received SIGINT");
    const drained = capture(scheduler.drain(reason));
    await clock.flush();
    expect(queued.error).toBeInstanceOf(AbortedError);
    expect((queued.error as AbortedError).cause).toBe(reason);
    expect(scheduler.draining).toBe(true);
    // New work is refused the same way, without running.
    let ran = false;
    await expect(
      scheduler.run(async () => {
        ran = true;
      }),
    ).rejects.toBeInstanceOf(AbortedError);
    expect(ran).toBe(false);
    expect(drained.done).toBe(false);
    await clock.runAll();
    expect(running.map((r) => r.value)).toEqual(["answer", "answer"]);
    expect(drained.done).toBe(true);
  });

  it("an attempt that fails while draining is not retried, and an item asleep before its retry stops", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({
      clock,
      random: seededRandom(1),
      concurrency: 2,
      retry: { maxAttempts: 5, baseDelayMs: 1_000, budget: false },
    });
    let attemptsOfFailing = 0;
    const failing = scheduler.settle(async () => {
      attemptsOfFailing++;
      await clock.sleep(500);
      throw new ServerError(undefined, { status: 503 });
    });
    let attemptsOfSleeping = 0;
    const sleeping = scheduler.settle(async () => {
      attemptsOfSleeping++;
      throw new ServerError(undefined, { status: 500 });
    });
    await clock.advance(100); // the second item failed at once and sleeps before its retry
    void scheduler.drain();
    await clock.runAll();
    const [a, b] = await Promise.all([failing, sleeping]);
    expect(attemptsOfFailing).toBe(1);
    expect(attemptsOfSleeping).toBe(1);
    expect(a.ok === false && a.error).toBeInstanceOf(AbortedError);
    expect(a.ok === false && a.reason).toBe("aborted");
    expect(b.ok === false && b.error).toBeInstanceOf(AbortedError);
    expect(clock.pendingTimers).toBe(0);
  });

  it("close() after drain still aborts what runs", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ clock, random: seededRandom(1), concurrency: 1 });
    const running = capture(
      scheduler.run((ctx) => clock.sleep(10_000, ctx.signal).then(() => "late")),
    );
    void scheduler.drain();
    await clock.advance(10);
    await scheduler.close();
    await clock.flush();
    expect(running.error).toBeDefined();
    expect(running.value).toBeUndefined();
  });
});

import { describe, expect, it } from "vitest";
import { FakeClock } from "./fake-clock.ts";
import { Deadline, TimerHeap } from "./timer-heap.ts";

describe("FakeClock", () => {
  it("fires timers in time order, then setting order, only when advanced", async () => {
    const clock = new FakeClock(100);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("b"), 20);
    clock.setTimeout(() => fired.push("a"), 10);
    clock.setTimeout(() => fired.push("c"), 20);
    const cleared = clock.setTimeout(() => fired.push("x"), 5);
    clock.clearTimeout(cleared);
    await clock.advance(15);
    expect(fired).toEqual(["a"]);
    expect(clock.now()).toBe(115);
    await clock.advance(5);
    expect(fired).toEqual(["a", "b", "c"]);
  });

  it("drains promise callbacks between timers", async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    void (async () => {
      await clock.sleep(10);
      seen.push(clock.now());
      await clock.sleep(10);
      seen.push(clock.now());
    })();
    await clock.runAll();
    expect(seen).toEqual([10, 20]);
  });

  it("sleep rejects on abort", async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    const sleeping = clock.sleep(1000, controller.signal);
    controller.abort(new Error("stop"));
    await expect(sleeping).rejects.toThrow("stop");
    expect(clock.pendingTimers).toBe(0);
  });
});

describe("TimerHeap", () => {
  it("multiplexes many deadlines on one clock timer and clears it when empty", async () => {
    const clock = new FakeClock();
    const timers = new TimerHeap(clock);
    const fired: number[] = [];
    const deadlines = [30, 10, 20].map((at) => {
      const d = new Deadline((n: number) => fired.push(n), at);
      timers.schedule(d, at);
      return d;
    });
    expect(clock.pendingTimers).toBe(1);
    timers.cancel(deadlines[2]!);
    await clock.runAll();
    expect(fired).toEqual([10, 30]);
    timers.schedule(deadlines[0]!, 100);
    timers.cancel(deadlines[0]!);
    expect(clock.pendingTimers).toBe(0);
  });
});

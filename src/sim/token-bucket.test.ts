import { describe, expect, it } from "vitest";
import { TokenBucket } from "./token-bucket.ts";

function fakeClock(start = 1000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

describe("TokenBucket", () => {
  it("starts full with capacity = limit x burst seconds / 60", () => {
    const clock = fakeClock();
    expect(new TokenBucket(600, 1, clock.now).level()).toBe(10);
    expect(new TokenBucket(600, 60, clock.now).level()).toBe(600);
    expect(new TokenBucket(30, 1, clock.now).capacity).toBe(0.5);
  });

  it("admits while the level covers the cost, then refuses until refilled", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(600, 1, clock.now); // 10 per second, 0.01 per ms
    let admitted = 0;
    for (let i = 0; i < 50; i++) {
      if (bucket.canTake(1)) {
        bucket.take(1);
        admitted++;
      }
    }
    expect(admitted).toBe(10);
    expect(bucket.level()).toBe(0);
    expect(bucket.waitMs(1)).toBeCloseTo(100, 6);
    clock.t += 99;
    expect(bucket.canTake(1)).toBe(false);
    clock.t += 1;
    expect(bucket.canTake(1)).toBe(true);
    expect(bucket.level()).toBeCloseTo(1, 9);
  });

  it("refills continuously and never above capacity", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(6000, 1, clock.now); // capacity 100, 0.1 per ms
    bucket.take(100);
    clock.t += 250;
    expect(bucket.level()).toBeCloseTo(25, 9);
    clock.t += 10_000;
    expect(bucket.level()).toBe(100);
    expect(bucket.msUntilFull()).toBe(0);
  });

  it("admits a cost above capacity only when full, and carries the debt", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(6000, 1, clock.now); // capacity 100, 0.1 per ms
    bucket.take(1);
    expect(bucket.canTake(250)).toBe(false);
    expect(bucket.waitMs(250)).toBeCloseTo(10, 6); // 1 token short of full
    clock.t += 10;
    expect(bucket.canTake(250)).toBe(true);
    bucket.take(250);
    expect(bucket.level()).toBeCloseTo(-150, 9);
    // Back to full after repaying 250 tokens at 0.1 per ms.
    expect(bucket.msUntilFull()).toBeCloseTo(2500, 6);
    expect(bucket.canTake(1)).toBe(false);
    expect(bucket.waitMs(1)).toBeCloseTo(1510, 6);
  });

  it("flags costs above the whole per-minute limit", () => {
    const bucket = new TokenBucket(1000, 1, () => 0);
    expect(bucket.exceedsLimit(1000)).toBe(false);
    expect(bucket.exceedsLimit(1001)).toBe(true);
  });

  it("keeps the long-run rate for a capacity below one request", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(30, 1, clock.now); // 0.5 capacity, one request per 2 s
    let admitted = 0;
    for (let step = 0; step < 60_000; step += 10) {
      clock.t += 10;
      if (bucket.canTake(1)) {
        bucket.take(1);
        admitted++;
      }
    }
    expect(admitted).toBe(30);
  });

  it("reset refills to capacity", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(60, 1, clock.now);
    bucket.take(5);
    bucket.reset();
    expect(bucket.level()).toBe(1);
  });
});

// The shared admission on a real redis-server: several `SharedAdmission`s (each its own Redis
// connections, as separate processes have) share one upstream's limits. Assertions read Redis's
// own state (lease expiries, reservations, levels, the cooldown) rather than the wall clock.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GatePass, GateReport } from "../src/core/admission-gate.ts";
import { type Clock, realClock } from "../src/core/clock.ts";
import type { Charge } from "../src/core/limits/limit.ts";
import { Scheduler } from "../src/core/scheduler.ts";
import { admissionKeys } from "../src/distributed/admission-scripts.ts";
import { RedisConnection } from "../src/distributed/redis-connection.ts";
import {
  SharedAdmission,
  type SharedAdmissionOptions,
} from "../src/distributed/shared-admission.ts";
import { SharedConcurrency } from "../src/distributed/shared-concurrency.ts";
import { RedisUnavailableError, RequestTooLargeError } from "../src/errors.ts";
import {
  REDIS_MISSING,
  type RedisServer,
  redisServerPath,
  startRedisServer,
} from "./support/redis-server.ts";

const ONE: Charge = { requests: 1, tokens: 0, inputTokens: 0, outputTokens: 0 };

function report(over: Partial<GateReport> = {}): GateReport {
  return {
    started: true,
    result: "success",
    latencyMs: 10,
    reserved: ONE,
    charged: ONE,
    usageReported: false,
    snapshot: undefined,
    retryAfterMs: undefined,
    ...over,
  };
}

describe.skipIf(redisServerPath === undefined)(
  `shared admission on Redis${redisServerPath ? "" : ` (${REDIS_MISSING})`}`,
  () => {
    let server: RedisServer;
    const opened: Array<{ close(): Promise<void> }> = [];
    let keySeq = 0;
    let key = "";

    beforeAll(async () => {
      server = await startRedisServer();
    });
    afterAll(async () => {
      await server?.close();
    });
    afterEach(async () => {
      for (const resource of opened.splice(0).reverse()) await resource.close();
    });

    /** A "process": its own connection and admission, for the test's upstream key. */
    async function processFor(options: Partial<SharedAdmissionOptions> = {}) {
      const redis = await RedisConnection.open(server.url);
      opened.push(redis);
      const admission = await SharedAdmission.open({ redis, key, ...options });
      opened.push(admission);
      return { redis, admission };
    }

    async function state(redis: RedisConnection) {
      const [s, leases, charges] = admissionKeys(`salvo:admission:{${key}}:`);
      const read = {
        state: await redis.client.hgetall(s!),
        leases: await redis.client.zrange(leases!, 0, -1, "WITHSCORES"),
        charges: await redis.client.hgetall(charges!),
      };
      // Redis's clock, read after the state: every time in that state is at or before it.
      const [seconds, micros] = (await redis.client.time()) as unknown as [string, string];
      return { ...read, nowMs: Number(seconds) * 1000 + Number(micros) / 1000 };
    }

    function freshKey() {
      key = `test-${process.pid}-${keySeq++}`;
    }

    it("refuses to start, clearly, when Redis is not there", async () => {
      const error = await RedisConnection.open("redis://127.0.0.1:1").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RedisUnavailableError);
      expect((error as Error).message).toMatch(
        /cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/,
      );
      const withPassword = await RedisConnection.open("redis://user:hunter2@127.0.0.1:1").catch(
        (e: unknown) => e,
      );
      expect((withPassword as Error).message).not.toContain("hunter2");
    });

    it("one request budget across processes: reservations beyond the burst are spaced by 60 000 / RPM", async () => {
      freshKey();
      const a = await processFor({
        requestsPerMinute: 600,
        concurrency: 100,
        jitterAllowanceMs: 100,
      });
      const b = await processFor({
        requestsPerMinute: 600,
        concurrency: 100,
        jitterAllowanceMs: 100,
      });
      const signal = new AbortController().signal;
      // 30 attempts at once from two processes; nothing is ended, so every one holds its lease.
      const passes = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          (i % 2 === 0 ? a : b).admission.admit({ charge: ONE, id: i, attempt: 1, signal }),
        ),
      );
      const { charges } = await state(a.redis);
      const starts = Object.values(charges)
        .map((v) => Number(v.split(" ")[4]))
        .sort((x, y) => x - y);
      expect(starts).toHaveLength(30);
      // The bucket holds 9 (one second of 600/min less the 100 ms jitter allowance): from the
      // tenth on, requests are reserved ahead, each 100 ms after the one before.
      expect(starts[8]! - starts[0]!).toBeLessThan(99.9);
      for (let k = 10; k < 30; k++)
        expect(starts[k]! - starts[k - 1]!).toBeGreaterThanOrEqual(99.9);
      expect(starts[29]! - starts[10]!).toBeGreaterThanOrEqual(1_900 - 0.1);
      for (const pass of passes) pass.end(report());
    });

    it("takes every dimension at once, weighted by the estimate, and reconciles with the real usage", async () => {
      freshKey();
      const { redis, admission } = await processFor({
        requestsPerMinute: 60_000,
        tokensPerMinute: 6_000, // a bucket of 100 tokens, 0.1 per ms
        concurrency: 10,
        jitterAllowanceMs: 0,
      });
      const signal = new AbortController().signal;
      const charge: Charge = { requests: 1, tokens: 100, inputTokens: 60, outputTokens: 40 };
      const pass = await admission.admit({ charge, id: 1, attempt: 1, signal });
      const before = await state(redis);
      expect(Number(before.state["t:lvl"])).toBeLessThanOrEqual(0 + 1e-9);
      expect(Number(before.state["inf:t"])).toBe(100);
      pass.end(
        report({ reserved: charge, charged: { ...charge, tokens: 40 }, usageReported: true }),
      );
      await admission.close();
      const after = await state(redis);
      // 60 tokens came back (plus what refilled meanwhile, at most 0.1 per ms).
      const refill = (after.nowMs - Number(before.state["t:ts"])) * 0.1;
      expect(Number(after.state["t:lvl"])).toBeGreaterThanOrEqual(60 - 1e-6);
      expect(Number(after.state["t:lvl"])).toBeLessThanOrEqual(60 + refill + 1e-6);
      expect(Number(after.state["inf:t"])).toBe(0);
      // A request bigger than a whole minute's budget is refused, not queued for ever.
      const { admission: other } = await processFor({
        tokensPerMinute: 6_000,
        concurrency: 10,
        jitterAllowanceMs: 0,
      });
      const refused = await other
        .admit({ charge: { ...charge, tokens: 7_000 }, id: 2, attempt: 1, signal })
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RequestTooLargeError);
    });

    it("a shared slot freed in one process is handed to the first waiter of another, with no extra round trip", async () => {
      freshKey();
      const a = await processFor({ concurrency: 2 });
      const b = await processFor({ concurrency: 2 });
      const signal = new AbortController().signal;
      const first = await a.admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      await b.admission.admit({ charge: ONE, id: 2, attempt: 1, signal });
      let granted = false;
      const third = b.admission.admit({ charge: ONE, id: 3, attempt: 1, signal }).then((pass) => {
        granted = true;
        return pass;
      });
      // Queued in Redis: two leases, one waiter.
      await expect.poll(async () => (await state(a.redis)).state.conc).toBe("2");
      await expect.poll(() => b.admission.stats().queued).toBe(1);
      expect(granted).toBe(false);
      first.end(report());
      const pass = await third;
      expect(granted).toBe(true);
      expect(b.admission.stats().roundTrips.check).toBe(0);
      expect(b.admission.stats().roundTrips.admit).toBe(2);
      pass.end(report());
    });

    it("a dead process's leases expire within the TTL and its slot goes to a waiter; nothing else waits longer", async () => {
      freshKey();
      const ttl = 900;
      const dead = await processFor({ concurrency: 1, leaseTtlMs: ttl });
      const alive = await processFor({ concurrency: 1, leaseTtlMs: ttl, checkAfterMs: 200 });
      const signal = new AbortController().signal;
      await dead.admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      const waiting = alive.admission.admit({ charge: ONE, id: 2, attempt: 1, signal });
      await expect.poll(() => alive.admission.stats().queued).toBe(1);
      // The holder dies: no reconcile, no more renewals (its sockets just close).
      dead.redis.client.disconnect();
      (dead.admission as unknown as { close(t: number): Promise<void> }).close(0);
      const { leases, nowMs } = await state(alive.redis);
      expect(leases).toHaveLength(2); // [id, expiry]
      expect(Number(leases[1])).toBeLessThanOrEqual(nowMs + ttl + 1);
      const pass = await waiting;
      const after = await state(alive.redis);
      expect(after.leases[0]).not.toBe(leases[0]); // the dead lease is gone, the waiter holds one
      pass.end(report());
    });

    it("a 429 anywhere pauses every process: one shared cooldown, and the buckets are emptied", async () => {
      freshKey();
      const a = await processFor({ requestsPerMinute: 6_000, concurrency: 10, cooldownJitter: 0 });
      const b = await processFor({ requestsPerMinute: 6_000, concurrency: 10, cooldownJitter: 0 });
      const signal = new AbortController().signal;
      const pass = await a.admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      pass.end(report({ result: "rate_limit", retryAfterMs: 400, latencyMs: 5 }));
      await a.admission.close();
      const cooled = await state(a.redis);
      const coolUntil = Number(cooled.state.cool_until);
      expect(coolUntil - cooled.nowMs).toBeGreaterThan(300);
      expect(Number(cooled.state["r:lvl"])).toBeLessThanOrEqual(1e-6);
      const next = await b.admission.admit({ charge: ONE, id: 2, attempt: 1, signal });
      const { charges } = await state(b.redis);
      const start = Number(Object.values(charges)[0]!.split(" ")[4]);
      expect(start).toBeGreaterThanOrEqual(coolUntil);
      next.end(report());
    });

    it("rate-limit headers seen by one process correct the shared level and teach the limit to all", async () => {
      freshKey();
      const a = await processFor({ concurrency: 10 });
      const signal = new AbortController().signal;
      const pass = await a.admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      pass.end(report({ snapshot: { requests: { limit: 120, remaining: 0 } }, latencyMs: 0 }));
      await a.admission.close();
      const { state: s } = await state(a.redis);
      expect(s["r:lim"]).toBe("120");
      expect(Number(s["r:lvl"])).toBeLessThanOrEqual(0.01);
    });

    it("auto: one limit for every process, moved by all their outcomes (slow start up, x0.7 on a 429)", async () => {
      freshKey();
      const a = await processFor({ concurrency: "auto", initialConcurrency: 4 });
      const b = await processFor({ concurrency: "auto", initialConcurrency: 4 });
      const signal = new AbortController().signal;
      const passes: GatePass[] = [];
      for (let i = 0; i < 4; i++)
        passes.push(
          await (i % 2 ? a : b).admission.admit({ charge: ONE, id: i, attempt: 1, signal }),
        );
      // The pipe stays full (4 in flight): each success in slow start adds one, from either process.
      for (let i = 4; i < 8; i++) {
        passes.shift()!.end(report({ latencyMs: 50 }));
        passes.push(
          await (i % 2 ? a : b).admission.admit({ charge: ONE, id: i, attempt: 1, signal }),
        );
      }
      await expect.poll(async () => (await state(a.redis)).state.conc).toBe("8");
      // With the last calls ending the pipe empties: growth stops once fewer than half are busy.
      for (const pass of passes) pass.end(report({ latencyMs: 50 }));
      const more = await a.admission.admit({ charge: ONE, id: 9, attempt: 1, signal });
      const before = Number((await state(a.redis)).state.conc);
      expect(before).toBe(9);
      more.end(report({ result: "rate_limit", latencyMs: 60, retryAfterMs: 1 }));
      await expect.poll(async () => (await state(a.redis)).state.conc).toBe("6"); // floor(9 x 0.7)
      // b hears the agreed limit on its next reply.
      const last = await b.admission.admit({ charge: ONE, id: 10, attempt: 1, signal });
      expect(b.admission.limit).toBe(6);
      last.end(report());
    });

    it("two schedulers (two processes) behind one Redis never have more calls in flight than the shared limit", async () => {
      freshKey();
      let inFlight = 0;
      let peak = 0;
      const task = async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 10));
        inFlight--;
        return "ok";
      };
      const schedulers: Scheduler[] = [];
      for (let p = 0; p < 3; p++) {
        const { admission } = await processFor({ concurrency: 3, requestsPerMinute: 60_000 });
        schedulers.push(
          new Scheduler({
            gate: admission,
            concurrency: new SharedConcurrency(admission),
            requestsPerMinute: 60_000,
          }),
        );
      }
      const outcomes = await Promise.all(
        schedulers.map((s) =>
          s.map(
            Array.from({ length: 30 }, (_, i) => i),
            () => task(),
          ),
        ),
      );
      expect(outcomes.flat().every((o) => o.ok)).toBe(true);
      expect(peak).toBeLessThanOrEqual(3);
      expect(peak).toBe(3);
      for (const s of schedulers) await s.close();
    });

    it("Redis going away pauses admission, which resumes when it returns; nothing is lost", async () => {
      freshKey();
      const { redis, admission } = await processFor({ concurrency: 4 });
      const signal = new AbortController().signal;
      const before = await admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      await server.stop();
      await expect.poll(() => redis.available).toBe(false);
      let admitted = false;
      const during = admission.admit({ charge: ONE, id: 2, attempt: 1, signal }).then((pass) => {
        admitted = true;
        return pass;
      });
      before.end(report()); // a reconcile while Redis is down is sent when it returns
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(admitted).toBe(false);
      await server.start();
      const pass = await during;
      expect(admission.unavailableMs).toBeGreaterThan(250);
      pass.end(report());
      await admission.close();
      const { state: s, leases } = await state(redis);
      expect(leases).toEqual([]);
      expect(Number(s["inf:r"])).toBe(0);
    });

    it("a Redis that restarts without its data gets the limits back before it admits anything", async () => {
      freshKey();
      const bare = await startRedisServer({ appendOnly: false });
      try {
        const redis = await RedisConnection.open(bare.url);
        const admission = await SharedAdmission.open({
          redis,
          key,
          requestsPerMinute: 600,
          concurrency: 2,
        });
        const signal = new AbortController().signal;
        (await admission.admit({ charge: ONE, id: 1, attempt: 1, signal })).end(report());
        await bare.stop();
        await bare.start(); // empty: no append-only file, no snapshot
        await expect.poll(() => redis.available).toBe(true);
        const [s] = admissionKeys(`salvo:admission:{${key}}:`);
        await redis.client.del(s!); // whatever the reconnection restored, the state is gone now
        const pass = await admission.admit({ charge: ONE, id: 2, attempt: 1, signal });
        const state = await redis.client.hgetall(s!);
        expect(state["r:lim"]).toBe("600");
        expect(state.conc).toBe("2");
        pass.end(report());
        await admission.close();
        await redis.close();
      } finally {
        await bare.close();
      }
    });

    it("a process that wakes too late to send a reserved start in step gives the pass back and asks again (twice at most); one that wakes in time keeps it", async () => {
      // A clock whose short timers fire at once but move its time on by their delay plus `stall`:
      // a process whose event loop was stalled that long past each timer (a busy machine). Redis
      // keeps its own (real) time for the buckets.
      let stall = 0;
      let now = 0;
      const stalling: Clock = {
        now: () => now,
        setTimeout(callback, delayMs) {
          if (delayMs >= 30_000) return realClock.setTimeout(callback, delayMs); // renewals
          const handle = { cleared: false };
          setImmediate(() => {
            if (handle.cleared) return;
            now += delayMs + stall;
            callback();
          });
          return handle;
        },
        clearTimeout(handle) {
          if (handle !== null && typeof handle === "object" && "cleared" in handle)
            (handle as { cleared: boolean }).cleared = true;
          else realClock.clearTimeout(handle);
        },
      };
      const options = {
        // 6 a minute: the first request starts now, the second is reserved 10 s on; the bucket
        // refills 0.0001 a millisecond, nothing over the test's real time.
        requestsPerMinute: 6,
        concurrency: 100,
        jitterAllowanceMs: 100, // a pass started more than 50 ms late is given back
        leaseTtlMs: 120_000,
        clock: stalling,
      };
      const signal = new AbortController().signal;
      const admitTwo = async (admission: SharedAdmission) => [
        await admission.admit({ charge: ONE, id: 1, attempt: 1, signal }),
        await admission.admit({ charge: ONE, id: 2, attempt: 1, signal }),
      ];

      freshKey();
      stall = 40;
      const inTime = await processFor(options);
      const kept = await admitTwo(inTime.admission);
      expect(inTime.admission.stats()).toMatchObject({ admitted: 2, late: 0 });
      expect(inTime.admission.stats().roundTrips).toMatchObject({ admit: 2, reconcile: 0 });
      // Two requests taken from a bucket of 0.09.
      expect(Number((await state(inTime.redis)).state["r:lvl"])).toBeCloseTo(0.09 - 2, 1);
      for (const pass of kept) pass.end(report());

      freshKey();
      stall = 400;
      const starved = await processFor(options);
      const passes = await admitTwo(starved.admission);
      // The second overslept its start by 400 ms twice: both passes went back (their slot freed,
      // their charge still spent, so each new ask is reserved after it: 10 s, then 20 s, then
      // 30 s on); the third is used however late, so a starved process still gets on.
      expect(starved.admission.stats()).toMatchObject({ admissions: 2, admitted: 2, late: 2 });
      expect(starved.admission.stats().roundTrips).toMatchObject({ admit: 4, reconcile: 2 });
      const { charges, state: s, nowMs } = await state(starved.redis);
      expect(Object.keys(charges)).toHaveLength(2);
      expect(Number(s["r:lvl"])).toBeCloseTo(0.09 - 4, 1);
      const starts = Object.values(charges).map((v) => Number(v.split(" ")[4]) - nowMs);
      expect(Math.max(...starts)).toBeGreaterThan(29_000);
      for (const pass of passes) pass.end(report());
    });

    it("passes a stalled process wakes late for together go back and are reserved apart again, not sent together", async () => {
      // Time moves only when the test says; `stallTo` jumps it without firing anything first (an
      // event loop blocked that long), then fires what fell due, every one late. The renewals
      // (every 40 s) are left to the real clock: they do not come during the test.
      let now = 0;
      const timers: Array<{ at: number; callback: () => void; cleared: boolean }> = [];
      const hop = () => new Promise<void>((resolve) => setImmediate(resolve));
      const fire = async (until: number, onTime: boolean) => {
        for (;;) {
          await hop();
          timers.sort((x, y) => x.at - y.at);
          const next = timers.find((t) => !t.cleared && t.at <= until);
          if (next === undefined) return;
          next.cleared = true;
          if (onTime) now = Math.max(now, next.at);
          next.callback();
        }
      };
      const clock: Clock = {
        now: () => now,
        setTimeout(callback, delayMs) {
          if (delayMs >= 39_000) return realClock.setTimeout(callback, delayMs);
          const timer = { at: now + delayMs, callback, cleared: false };
          timers.push(timer);
          return timer;
        },
        clearTimeout(handle) {
          if (timers.includes(handle as never)) (handle as { cleared: boolean }).cleared = true;
          else realClock.clearTimeout(handle);
        },
      };
      freshKey();
      // 12 a minute: one request every 5 s, a bucket of 0.18 (nothing refills in the test's
      // real time that matters: 0.0002 a millisecond).
      const { redis, admission } = await processFor({
        requestsPerMinute: 12,
        concurrency: 100,
        jitterAllowanceMs: 100,
        leaseTtlMs: 120_000,
        clock,
      });
      const signal = new AbortController().signal;
      const admitted: number[] = [];
      const passes = Promise.all(
        [0, 1, 2, 3].map((i) =>
          admission.admit({ charge: ONE, id: i, attempt: 1, signal }).then((pass) => {
            admitted.push(i);
            return pass;
          }),
        ),
      );
      // Reserved at 0, 5, 10 and 15 s; the first starts now.
      await expect.poll(() => timers.filter((t) => !t.cleared).length).toBe(3);
      expect(admitted).toEqual([0]);
      // The process stalls until 12 s: the passes due at 5 s and 10 s wake 7 s and 2 s late.
      now = 12_000;
      await fire(12_000, false);
      // Both went back and were asked again; then time runs on, every timer on time.
      await expect.poll(() => admission.stats().late).toBe(2);
      await expect.poll(() => timers.filter((t) => !t.cleared).length).toBe(3);
      await fire(Number.POSITIVE_INFINITY, true);
      const all = await passes;
      expect(admission.stats()).toMatchObject({ admissions: 4, admitted: 4, late: 2 });
      // What Redis booked for the four that start: 5 s apart, as reserved, none together (the
      // two given back are reserved after the one still due at 15 s: at 20 s and 25 s).
      const { charges } = await state(redis);
      const starts = Object.values(charges)
        .map((v) => Number(v.split(" ")[4]))
        .sort((x, y) => x - y);
      expect(starts).toHaveLength(4);
      for (let k = 1; k < 4; k++) expect(starts[k]! - starts[k - 1]!).toBeGreaterThan(4_990);
      expect(starts[3]! - starts[0]!).toBeGreaterThan(24_900);
      for (const pass of all) pass.end(report());
    });

    it("a reply the process read late counts as late too: a start due at once, read 300 ms after the fastest round trip, is asked again", async () => {
      let now = 0;
      const clock: Clock = {
        now: () => now,
        setTimeout: (callback, delayMs) => realClock.setTimeout(callback, delayMs),
        clearTimeout: (handle) => realClock.clearTimeout(handle),
      };
      freshKey();
      const { admission } = await processFor({
        requestsPerMinute: 60_000,
        concurrency: 100,
        jitterAllowanceMs: 100,
        leaseTtlMs: 120_000,
        clock,
      });
      const signal = new AbortController().signal;
      const first = await admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      const asking = admission.admit({ charge: ONE, id: 2, attempt: 1, signal });
      now += 300; // the event loop is busy elsewhere before it reads the reply
      const second = await asking;
      expect(admission.stats()).toMatchObject({ admitted: 2, late: 1 });
      expect(admission.stats().roundTrips.admit).toBe(3);
      first.end(report());
      second.end(report());
    });

    it("an attempt aborted while it waits for a slot leaves the queue and takes nothing", async () => {
      freshKey();
      const { redis, admission } = await processFor({ concurrency: 1 });
      const signal = new AbortController().signal;
      const held = await admission.admit({ charge: ONE, id: 1, attempt: 1, signal });
      const stop = new AbortController();
      const waiting = admission.admit({ charge: ONE, id: 2, attempt: 1, signal: stop.signal });
      await expect.poll(() => admission.stats().queued).toBe(1);
      stop.abort(new Error("user"));
      await expect(waiting).rejects.toThrow("user");
      held.end(report());
      await admission.close();
      const [, , , waiters, waitingKey] = admissionKeys(`salvo:admission:{${key}}:`);
      expect(await redis.client.llen(waiters!)).toBe(0);
      expect(await redis.client.hlen(waitingKey!)).toBe(0);
      expect((await state(redis)).leases).toEqual([]);
    });
  },
);

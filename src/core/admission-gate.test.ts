// The scheduler with an admission gate (a shared limiter of other processes), on the fake clock:
// an attempt holds its local slot while it waits, starts (timeout, `started`, latency) at the
// grant, and its pass is ended exactly once, with how it ended, when it gives its slot back.
import { describe, expect, it } from "vitest";
import { AbortedError, RateLimitError, RequestTooLargeError } from "../errors.ts";
import type { AdmissionGate, GatePass, GateReport, GateRequest } from "./admission-gate.ts";
import { FakeClock } from "./fake-clock.ts";
import { seededRandom } from "./random.ts";
import { Scheduler } from "./scheduler.ts";

/** A gate the test opens by hand: `grant(i)` admits the i-th request, `refuse(i, e)` rejects it. */
class HandGate implements AdmissionGate {
  readonly requests: Array<{
    request: GateRequest;
    grant: () => void;
    refuse: (error: unknown) => void;
  }> = [];
  readonly reports: GateReport[] = [];
  admit(request: GateRequest): Promise<GatePass> {
    return new Promise((resolve, reject) => {
      const pass: GatePass = { end: (report) => this.reports.push(report) };
      const onAbort = () => reject(request.signal.reason);
      request.signal.addEventListener("abort", onAbort, { once: true });
      this.requests.push({
        request,
        grant: () => {
          request.signal.removeEventListener("abort", onAbort);
          resolve(pass);
        },
        refuse: reject,
      });
    });
  }
}

function setup(timeoutMs = 1_000) {
  const clock = new FakeClock();
  const gate = new HandGate();
  const scheduler = new Scheduler({
    clock,
    gate,
    concurrency: 2,
    timeoutMs,
    random: seededRandom(3),
    retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 },
  });
  return { clock, gate, scheduler };
}

describe("Scheduler with an admission gate", () => {
  it("starts an attempt at the grant: a gate wait longer than the timeout is no timeout, latency counts from the grant", async () => {
    const { clock, gate, scheduler } = setup(1_000);
    const started: number[] = [];
    scheduler.on("started", (e) => started.push(e.at));
    let ran = 0;
    const result = scheduler.run(async (context) => {
      ran++;
      context.reportUsage({ tokens: 7 });
      await clock.sleep(100, context.signal);
      return "ok";
    });
    await clock.flush();
    expect(gate.requests).toHaveLength(1);
    expect(scheduler.inFlight).toBe(1); // the local slot is held while it waits
    await clock.advance(5_000); // five timeouts' worth of waiting
    expect(ran).toBe(0);
    expect(started).toEqual([]);
    gate.requests[0]!.grant();
    await clock.flush();
    expect(started).toEqual([5_000]);
    await clock.advance(100);
    expect(await result).toBe("ok");
    expect(gate.reports).toHaveLength(1);
    expect(gate.reports[0]).toMatchObject({
      started: true,
      result: "success",
      latencyMs: 100,
      usageReported: true,
    });
    expect(gate.reports[0]!.charged.tokens).toBe(7);
    expect(scheduler.inFlight).toBe(0);
  });

  it("an item aborted while it waits for the gate never runs, ends aborted, and gives its slot back", async () => {
    const { clock, gate, scheduler } = setup();
    const stop = new AbortController();
    let ran = false;
    const outcome = scheduler.settle(
      async () => {
        ran = true;
      },
      { signal: stop.signal },
    );
    await clock.flush();
    expect(gate.requests[0]!.request.signal.aborted).toBe(false);
    stop.abort(new Error("user"));
    const settled = await outcome;
    expect(settled.ok).toBe(false);
    expect(!settled.ok && settled.error).toBeInstanceOf(AbortedError);
    expect(gate.requests[0]!.request.signal.aborted).toBe(true);
    await clock.flush();
    expect(ran).toBe(false);
    expect(scheduler.inFlight).toBe(0);
    expect(gate.reports).toEqual([]); // no pass was granted, none is ended
  });

  it("a 429 reaches the gate's report with its hint and readings; the retry asks the gate again", async () => {
    const { clock, gate, scheduler } = setup();
    let attempt = 0;
    const result = scheduler.run(async () => {
      attempt++;
      if (attempt === 1)
        throw new RateLimitError("429", {
          status: 429,
          retryAfterMs: 50,
          rateLimits: { requests: { remaining: 0, limit: 60 } },
        });
      return "second";
    });
    await clock.flush();
    gate.requests[0]!.grant();
    await clock.flush();
    expect(gate.reports[0]).toMatchObject({
      started: true,
      result: "rate_limit",
      retryAfterMs: 50,
      snapshot: { requests: { remaining: 0, limit: 60 } },
    });
    await clock.runAll();
    expect(gate.requests).toHaveLength(2);
    expect(gate.requests[1]!.request.attempt).toBe(2);
    gate.requests[1]!.grant();
    expect(await result).toBe("second");
    expect(gate.reports.map((r) => r.result)).toEqual(["rate_limit", "success"]);
  });

  it("drain stops the attempts that wait for the gate, and lets those it admitted finish", async () => {
    const { clock, gate, scheduler } = setup();
    const a = scheduler.settle(async (context) => clock.sleep(100, context.signal).then(() => "a"));
    const b = scheduler.settle(async () => "b");
    await clock.flush();
    gate.requests[0]!.grant();
    await clock.flush();
    const drained = scheduler.drain(new Error("stop"));
    await clock.advance(100);
    await drained;
    const [first, second] = await Promise.all([a, b]);
    expect(first.ok && first.value).toBe("a");
    expect(second.ok).toBe(false);
    expect(!second.ok && second.error).toBeInstanceOf(AbortedError);
  });

  it("a gate's refusal (a request larger than the shared limit) fails the item with that error, not retried", async () => {
    const { clock, gate, scheduler } = setup();
    const outcome = scheduler.settle(async () => "never");
    await clock.flush();
    gate.requests[0]!.refuse(
      new RequestTooLargeError({ dimension: "tokens", limit: 10, cost: 99 }),
    );
    const settled = await outcome;
    expect(!settled.ok && settled.error).toBeInstanceOf(RequestTooLargeError);
    expect(settled.attempts).toBe(1);
    expect(gate.requests).toHaveLength(1);
    expect(scheduler.inFlight).toBe(0);
  });

  it("an attempt stopped between its grant and its start reports that it never started", async () => {
    const { clock, gate, scheduler } = setup();
    const stop = new AbortController();
    const outcome = scheduler.settle(async () => "x", { signal: stop.signal });
    await clock.flush();
    // Granted and aborted in the same turn: the grant's continuation sees the attempt decided.
    gate.requests[0]!.grant();
    stop.abort(new Error("user"));
    await outcome;
    await clock.flush();
    expect(gate.reports).toHaveLength(1);
    expect(gate.reports[0]).toMatchObject({ started: false, result: "cancelled" });
  });
});

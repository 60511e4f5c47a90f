import { describe, expect, it } from "vitest";
import { SingleFlight } from "./single-flight.ts";

/** A call the test finishes by hand, recording the signal it was given. */
function manualCall() {
  const calls: Array<{
    signal: AbortSignal;
    resolve: (v: string) => void;
    reject: (e: unknown) => void;
  }> = [];
  const start = (signal: AbortSignal) =>
    new Promise<string>((resolve, reject) => calls.push({ signal, resolve, reject }));
  return { calls, start };
}
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("SingleFlight", () => {
  it("identical keys in flight share one call and its value; other keys get their own", async () => {
    const flights = new SingleFlight<string>();
    const { calls, start } = manualCall();
    const roles: string[] = [];
    const a = flights.run("k", start, undefined, (r) => roles.push(r));
    const b = flights.run("k", start, undefined, (r) => roles.push(r));
    const c = flights.run("other", start);
    await tick();
    expect(calls).toHaveLength(2);
    expect(roles).toEqual(["leader", "follower"]);
    calls[0]!.resolve("answer");
    calls[1]!.resolve("other answer");
    expect(await a).toBe("answer");
    expect(await b).toBe("answer");
    expect(await c).toBe("other answer");
    expect(flights.size).toBe(0);
  });

  it("shares a failure too, and forgets the key once settled", async () => {
    const flights = new SingleFlight<string>();
    const { calls, start } = manualCall();
    const a = flights.run("k", start);
    const b = flights.run("k", start);
    await tick();
    calls[0]!.reject(new Error("boom"));
    await expect(a).rejects.toThrow("boom");
    await expect(b).rejects.toThrow("boom");
    const c = flights.run("k", start);
    await tick();
    expect(calls).toHaveLength(2);
    calls[1]!.resolve("again");
    expect(await c).toBe("again");
  });

  it("one caller's abort leaves only that caller: the shared call goes on for the others", async () => {
    const flights = new SingleFlight<string>();
    const { calls, start } = manualCall();
    const leaver = new AbortController();
    const a = flights.run("k", start, leaver.signal);
    const b = flights.run("k", start, new AbortController().signal);
    await tick();
    leaver.abort(new Error("caller A gave up"));
    await expect(a).rejects.toThrow("caller A gave up");
    expect(calls[0]!.signal.aborted).toBe(false);
    calls[0]!.resolve("answer");
    expect(await b).toBe("answer");
  });

  it("aborts the shared call when every caller has left, and a new caller starts afresh", async () => {
    const flights = new SingleFlight<string>();
    const { calls, start } = manualCall();
    const one = new AbortController();
    const two = new AbortController();
    const a = flights.run("k", start, one.signal);
    const b = flights.run("k", start, two.signal);
    await tick();
    one.abort(new Error("one"));
    expect(calls[0]!.signal.aborted).toBe(false);
    two.abort(new Error("two"));
    expect(calls[0]!.signal.aborted).toBe(true);
    await expect(a).rejects.toThrow("one");
    await expect(b).rejects.toThrow("two");
    const c = flights.run("k", start);
    await tick();
    expect(calls).toHaveLength(2);
    calls[0]!.reject(calls[0]!.signal.reason);
    calls[1]!.resolve("fresh");
    expect(await c).toBe("fresh");
  });

  it("refuses at once a caller whose signal has already aborted, without starting a call", async () => {
    const flights = new SingleFlight<string>();
    const { calls, start } = manualCall();
    await expect(flights.run("k", start, AbortSignal.abort(new Error("late")))).rejects.toThrow(
      "late",
    );
    await tick();
    expect(calls).toHaveLength(0);
  });
});

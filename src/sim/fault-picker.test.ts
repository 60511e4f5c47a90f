import { describe, expect, it } from "vitest";
import { FAULT_KINDS, type FaultKind, FaultPicker } from "./fault-picker.ts";
import { seededRandom } from "./seeded-random.ts";

const none = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;

describe("FaultPicker", () => {
  it("never faults when every probability is 0, and draws nothing", () => {
    let draws = 0;
    const picker = new FaultPicker(none, () => {
      draws++;
      return 0;
    });
    for (let i = 0; i < 100; i++) expect(picker.pick()).toBeUndefined();
    expect(draws).toBe(0);
  });

  it("maps one draw onto the cumulative probabilities in a fixed order", () => {
    const draws = [0.05, 0.15, 0.25, 0.95];
    const picker = new FaultPicker(
      { ...none, server_error: 0.1, overloaded: 0.1, hang: 0.1 },
      () => draws.shift()!,
    );
    expect([picker.pick(), picker.pick(), picker.pick(), picker.pick()]).toEqual([
      "server_error",
      "overloaded",
      "hang",
      undefined,
    ]);
  });

  it("gives the same sequence for the same seed, near the configured rates", () => {
    const probabilities = { ...none, server_error: 0.2, reset: 0.1 };
    const a = new FaultPicker(probabilities, seededRandom(3));
    const b = new FaultPicker(probabilities, seededRandom(3));
    const seqA = Array.from({ length: 5000 }, () => a.pick());
    const seqB = Array.from({ length: 5000 }, () => b.pick());
    expect(seqA).toEqual(seqB);
    const count = (k: FaultKind) => seqA.filter((f) => f === k).length;
    expect(count("server_error")).toBeGreaterThan(900);
    expect(count("server_error")).toBeLessThan(1100);
    expect(count("reset")).toBeGreaterThan(420);
    expect(count("reset")).toBeLessThan(580);
  });
});

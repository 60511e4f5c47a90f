import { describe, expect, it } from "vitest";
import { BudgetExceededError } from "../errors.ts";
import { Budget, type Reservation } from "./budget.ts";

const usd = (n: number) => ({ usd: n, tokens: 0 });
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("Budget", () => {
  it("admits while the bounds fit, and counts what was really spent", async () => {
    const budget = new Budget({ maxCostUsd: 1 });
    const a = await budget.reserve(usd(0.4));
    const b = await budget.reserve(usd(0.4));
    expect(budget.reserved.usd).toBeCloseTo(0.8);
    a.settle(usd(0.1));
    b.settle(usd(0.2));
    expect(budget.spent.usd).toBeCloseTo(0.3);
    expect(budget.reserved.usd).toBeCloseTo(0);
    expect(budget.exhausted).toBeUndefined();
  });

  it("a call that does not fit waits for outstanding reservations, which usually settle lower", async () => {
    const budget = new Budget({ maxCostUsd: 1 });
    const first = await budget.reserve(usd(0.6));
    let admitted: Reservation | undefined;
    void budget.reserve(usd(0.6)).then((r) => {
      admitted = r;
    });
    await tick();
    expect(admitted).toBeUndefined();
    first.settle(usd(0.3)); // bound 0.6, really 0.3: now 0.3 + 0.6 fits in 1
    await tick();
    expect(admitted).toBeDefined();
  });

  it("exhausts when nothing is outstanding and the head still does not fit: it and all later calls are refused", async () => {
    const budget = new Budget({ maxCostUsd: 1 });
    const first = await budget.reserve(usd(0.6));
    const waiting = [budget.reserve(usd(0.6)), budget.reserve(usd(0.01))];
    first.settle(usd(0.5));
    for (const refused of waiting)
      await expect(refused).rejects.toBeInstanceOf(BudgetExceededError);
    // FIFO: the small one behind the big one is not slipped in ahead of it.
    await expect(budget.reserve(usd(0.0001))).rejects.toBeInstanceOf(BudgetExceededError);
    expect(budget.refused).toBe(3);
    const error = budget.exhausted!;
    expect([error.dimension, error.limit, error.spent, error.cost]).toEqual(["cost", 1, 0.5, 0.6]);
    expect(error.message).toContain("--max-cost");
    // Stopped within one call's bound of the limit, and not past it.
    expect(budget.spent.usd).toBeLessThanOrEqual(1);
    expect(1 - budget.spent.usd).toBeLessThan(0.6);
  });

  it("a single call larger than the whole budget exhausts it at once", async () => {
    const budget = new Budget({ maxTokens: 100 });
    await expect(budget.reserve({ usd: 0, tokens: 101 })).rejects.toMatchObject({
      code: "SALVO_BUDGET_EXCEEDED",
      dimension: "tokens",
    });
  });

  it("checks both dimensions", async () => {
    const budget = new Budget({ maxCostUsd: 10, maxTokens: 1000 });
    const r = await budget.reserve({ usd: 1, tokens: 900 });
    r.settle({ usd: 1, tokens: 900 });
    await expect(budget.reserve({ usd: 1, tokens: 200 })).rejects.toMatchObject({
      dimension: "tokens",
    });
  });

  it("a waiting call whose signal aborts leaves the queue, and the next one is considered", async () => {
    const budget = new Budget({ maxCostUsd: 1 });
    const first = await budget.reserve(usd(0.9));
    const controller = new AbortController();
    const gone = budget.reserve(usd(0.5), controller.signal);
    const next = budget.reserve(usd(0.05));
    controller.abort();
    // Rejected with the signal's own reason (the budget layer turns it into an AbortedError).
    await expect(gone).rejects.toMatchObject({ name: "AbortError" });
    await expect(next).resolves.toBeDefined();
    first.settle(usd(0.9));
  });

  it("settling twice counts once", async () => {
    const budget = new Budget({ maxCostUsd: 1 });
    const r = await budget.reserve(usd(0.5));
    r.settle(usd(0.4));
    r.settle(usd(0.4));
    expect(budget.spent.usd).toBeCloseTo(0.4);
    expect(budget.reserved.usd).toBeCloseTo(0);
  });

  it("refuses a limit that is not > 0", () => {
    expect(() => new Budget({ maxCostUsd: 0 })).toThrow(RangeError);
  });

  it("available, charge and refuse: what a batch submitted whole needs", async () => {
    const budget = new Budget({ maxCostUsd: 1, maxTokens: 1000 });
    const held = await budget.reserve({ usd: 0.25, tokens: 100 });
    budget.charge({ usd: 0.25, tokens: 100 });
    expect(budget.available).toEqual({ usd: 0.5, tokens: 800 });
    const waiting = budget.reserve(usd(0.6));
    const error = budget.refuse({ usd: 0.7, tokens: 10 });
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error.dimension).toBe("cost");
    expect(budget.exhausted).toBe(error);
    // A waiting call is refused too, and so is every later one; the refusals are counted.
    await expect(waiting).rejects.toBe(error);
    await expect(budget.reserve(usd(0.01))).rejects.toBe(error);
    expect(budget.refused).toBe(3);
    held.settle({ usd: 0.2, tokens: 90 });
    expect(budget.spent.usd).toBeCloseTo(0.45);
  });
});

// The Salvo client's call chain (single-flight, cache, budget, scheduler) through its public
// entry points, with a custom provider that counts its calls: `map`/`stream` keep their order,
// window and abort semantics; the budget refuses before the provider is reached.
import { describe, expect, it } from "vitest";
import { Budget } from "../src/cost/budget.ts";
import { BudgetExceededError } from "../src/errors.ts";
import { CustomProvider } from "../src/providers/custom-provider.ts";
import type { ProviderRequest } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import { until } from "./support/until.ts";

const request = (i: number, temperature = 0): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    temperature,
    max_tokens: 10,
    messages: [{ role: "user", content: `q${i}` }],
  },
});

/** A provider that answers after `ms`, honours its signal, and records what it saw. */
function counting(ms = 5) {
  const seen: { calls: string[]; aborted: number } = { calls: [], aborted: 0 };
  const provider = new CustomProvider(async (req, { signal }) => {
    const content = (req.body.messages as Array<{ content: string }>)[0]!.content;
    seen.calls.push(content);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        seen.aborted += 1;
        reject(signal.reason);
      });
    });
    return {
      body: { model: "gpt-4o-mini", answer: content },
      usage: { inputTokens: 10, outputTokens: 5 },
    };
  });
  return { provider, seen };
}

describe("Salvo's call chain", () => {
  it("stream: in input order, at most `window` read ahead, break aborts the rest", async () => {
    const { provider, seen } = counting(20);
    const salvo = new Salvo({ provider, concurrency: 2 });
    let read = 0;
    function* inputs() {
      for (let i = 0; i < 50; i++) {
        read += 1;
        yield request(i);
      }
    }
    const got: number[] = [];
    for await (const outcome of salvo.stream(inputs(), { window: 4 })) {
      got.push(outcome.index);
      expect(read - got.length).toBeLessThanOrEqual(4);
      if (got.length === 10) break;
    }
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await salvo.close();
    expect(seen.aborted).toBeGreaterThan(0);
    expect(seen.calls.length).toBeLessThanOrEqual(14);
  });

  it("map: an abort stops reading; what was read gets exactly one outcome each", async () => {
    const { provider } = counting(30);
    const salvo = new Salvo({ provider, concurrency: 2 });
    const controller = new AbortController();
    let read = 0;
    async function* inputs() {
      for (let i = 0; ; i++) {
        read += 1;
        if (i === 6) controller.abort(new Error("enough"));
        yield request(i, 1);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
    const outcomes = await salvo.map(inputs(), { signal: controller.signal });
    expect(outcomes.length).toBeLessThanOrEqual(read);
    expect(outcomes.length).toBeGreaterThanOrEqual(6);
    expect(outcomes.map((o) => o.index)).toEqual(outcomes.map((_, i) => i));
    expect(
      outcomes.some((o) => !o.ok && (o.error as { code?: string }).code === "SALVO_ABORTED"),
    ).toBe(true);
    await salvo.close();
  });

  it("map: an input that throws rejects the map and aborts the calls it started", async () => {
    // Calls that only end when aborted, and an input that throws once both are in flight (a
    // fixed sleep raced the calls' own end on a busy machine).
    const { provider, seen } = counting(3_600_000);
    const salvo = new Salvo({ provider, concurrency: 4 });
    async function* inputs() {
      yield request(1, 1);
      yield request(2, 1);
      await until(() => seen.calls.length === 2);
      throw new Error("bad input file");
    }
    await expect(salvo.map(inputs())).rejects.toThrow("bad input file");
    expect(seen.aborted).toBe(2);
    await salvo.close();
  });

  it("a budget refuses before the provider: BudgetExceededError, no call made", async () => {
    const { provider, seen } = counting(1);
    // Each call's bound: 10 max_tokens + the prompt by tokenizer; 20 tokens is less than two.
    const budget = new Budget({ maxTokens: 30 });
    const salvo = new Salvo({ provider, concurrency: 1, budget });
    const outcomes = await salvo.map([request(1, 1), request(2, 1), request(3, 1)]);
    expect(outcomes[0]!.ok).toBe(true);
    const refused = outcomes.filter((o) => !o.ok);
    expect(refused.length).toBeGreaterThan(0);
    for (const o of refused) {
      expect(!o.ok && o.error).toBeInstanceOf(BudgetExceededError);
      expect(o.attempts).toBe(0);
    }
    expect(seen.calls).toHaveLength(3 - refused.length);
    expect(budget.spent.tokens).toBe(15 * seen.calls.length);
    await salvo.close();
  });

  it("call rejects with the typed error; a cost is attached to what the provider answered", async () => {
    const { provider } = counting(1);
    const salvo = new Salvo({ provider, budget: new Budget({ maxTokens: 1 }) });
    await expect(salvo.call(request(1))).rejects.toBeInstanceOf(BudgetExceededError);
    const open = new Salvo({ provider });
    const result = await open.call(request(2));
    expect(result.cost?.usd).toBeCloseTo((10 * 0.15 + 5 * 0.6) / 1e6, 15);
    await salvo.close();
    await open.close();
  });
});

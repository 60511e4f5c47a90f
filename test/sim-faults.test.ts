// Each injected fault as a real client sees it, and determinism: the same seed gives the same
// answers and the same fault sequence.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  expectedMarker,
  loadScenario,
  type SimConfigInput,
  type SimHandle,
  startSimulator,
} from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";

const KEY = "sk-test-not-a-real-key";

async function withSim<T>(
  config: SimConfigInput,
  fn: (sim: SimHandle, client: OpenAI) => Promise<T>,
) {
  const sim = await startSimulator(config);
  try {
    return await fn(
      sim,
      new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY, maxRetries: 0, timeout: 2000 }),
    );
  } finally {
    await sim.close();
  }
}

const messages = [{ role: "user" as const, content: "fault me" }];
const ask = (client: OpenAI, options: OpenAI.RequestOptions = {}) =>
  client.chat.completions.create({ model: "m", messages }, options);

describe("simulator faults", () => {
  it("reset: the connection drops and the SDK reports a connection error", async () => {
    await withSim({ faults: { pReset: 1 } }, async (sim, client) => {
      const error = await rejection(ask(client));
      expect(error).toBeInstanceOf(OpenAI.APIConnectionError);
      expect(error).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
      const stats = sim.stats();
      expect(stats.byFault.reset).toBe(1);
      expect(stats.byStatus).toEqual({ 0: 1 });
      expect(stats.inService).toBe(0);
    });
  });

  it("malformed and truncated: status 200 with a body the SDK cannot parse", async () => {
    for (const faults of [{ pMalformed: 1 }, { pTruncated: 1 }]) {
      await withSim({ faults }, async (sim, client) => {
        const error = await rejection(ask(client));
        expect(error).toBeInstanceOf(SyntaxError);
        const raw = await fetch(`${sim.baseUrl}/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: "m", messages }),
        });
        expect(raw.status).toBe(200);
        const text = await raw.text();
        expect(() => JSON.parse(text)).toThrow(SyntaxError);
        expect(sim.stats().byStatus).toEqual({ 200: 2 });
        expect(sim.stats().completions).toBe(0);
      });
    }
  });

  it("malformed and truncated streams: a parse failure or a stream without its terminator", async () => {
    await withSim({ faults: { pMalformed: 1 }, output: { tokens: 4 } }, async (_sim, client) => {
      const stream = await client.chat.completions.create({ model: "m", messages, stream: true });
      const error = await rejection(
        (async () => {
          for await (const _ of stream) {
            // consume
          }
        })(),
      );
      expect(error).toBeInstanceOf(SyntaxError);
    });
    await withSim({ faults: { pTruncated: 1 }, output: { tokens: 10 } }, async (sim) => {
      const raw = await fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "m", messages, stream: true }),
      });
      const text = await raw.text();
      expect(text).not.toContain("[DONE]");
      expect(text).not.toContain('finish_reason":"stop');
      expect(sim.stats().timeline[0]).toMatchObject({ fault: "truncated", outputTokens: 5 });
    });
  });

  it("hang: the client times out, the slot is freed, and close() does not wait for hangers", async () => {
    await withSim({ faults: { pHang: 1 }, capacity: { slots: 1 } }, async (sim, client) => {
      const error = await rejection(ask(client, { timeout: 80 }));
      expect(error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
      await new Promise((r) => setTimeout(r, 20));
      const stats = sim.stats();
      expect(stats.byFault.hang).toBe(1);
      expect(stats.byStatus).toEqual({ 499: 1 });
      expect(stats.inService).toBe(0);
      // Another hanging request with no client timeout: close() must cut it.
      const pending = fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "m", messages }),
      });
      await new Promise((r) => setTimeout(r, 20));
      const started = performance.now();
      await sim.close();
      expect(performance.now() - started).toBeLessThan(500);
      await expect(pending).rejects.toThrow();
      expect(sim.stats().byStatus).toEqual({ 0: 1, 499: 1 });
    });
  });

  it("slow first byte: a normal answer, late", async () => {
    await withSim({ faults: { pSlow: 1, slowMs: 120 } }, async (sim, client) => {
      const started = performance.now();
      const answer = await ask(client);
      expect(performance.now() - started).toBeGreaterThanOrEqual(115);
      expect(answer.choices[0]?.message.content?.startsWith(expectedMarker(messages))).toBe(true);
      expect(sim.stats().byFault.slow_first_byte).toBe(1);
      expect(sim.stats().completions).toBe(1);
    });
  });

  it("the fault-storm scenario injects every kind and every request still ends once", async () => {
    const scenario = await loadScenario("scenarios/fault-storm.yaml");
    await withSim(
      { ...scenario, faults: { ...scenario.faults, slowMs: 30 }, latency: { ttftMs: 1 } },
      async (sim, client) => {
        const results = await Promise.allSettled(
          Array.from({ length: 200 }, (_, i) =>
            client.chat.completions.create(
              { model: "m", messages: [{ role: "user", content: `storm ${i}` }] },
              { timeout: 1000 },
            ),
          ),
        );
        await new Promise((r) => setTimeout(r, 30));
        const stats = sim.stats();
        expect(stats.arrivals).toBe(200);
        expect(stats.ended).toBe(200);
        for (const kind of Object.keys(stats.byFault) as (keyof typeof stats.byFault)[]) {
          expect(stats.byFault[kind], kind).toBeGreaterThan(0);
        }
        const ok = results.filter((r) => r.status === "fulfilled").length;
        expect(ok).toBe(stats.completions);
      },
    );
  });
});

describe("simulator determinism", () => {
  const config: SimConfigInput = {
    seed: 42,
    output: { tokens: { min: 3, max: 40 } },
    latency: { ttftMs: 1, jitter: 0.5 },
    faults: { p500: 0.2, p503: 0.1, pMalformed: 0.1 },
  };

  async function run(seed: number) {
    return withSim({ ...config, seed }, async (sim) => {
      const outcomes: string[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await fetch(`${sim.baseUrl}/chat/completions`, {
          method: "POST",
          body: JSON.stringify({
            model: "m",
            messages: [{ role: "user", content: `question ${i}` }],
          }),
        });
        outcomes.push(
          `${r.status} ${await r.text().then((t) => t.replace(/"(created|id)":("[^"]*"|\d+),/g, ""))}`,
        );
      }
      return { outcomes, faults: sim.stats().timeline.map((e) => e.fault) };
    });
  }

  it("the same seed gives the same answers and the same fault sequence; another seed does not", async () => {
    const a = await run(42);
    const b = await run(42);
    const c = await run(43);
    expect(b.outcomes).toEqual(a.outcomes);
    expect(b.faults).toEqual(a.faults);
    expect(a.faults.filter((f) => f !== null).length).toBeGreaterThan(3);
    expect(c.faults).not.toEqual(a.faults);
  });

  it("the answer is a function of the prompt: the same prompt gets the same answer in any order", async () => {
    await withSim({ output: { tokens: { min: 3, max: 40 } } }, async (_sim, client) => {
      const prompts = Array.from({ length: 10 }, (_, i) => `p${i}`);
      const askAll = (order: string[]) =>
        Promise.all(
          order.map((content) =>
            client.chat.completions.create({ model: "m", messages: [{ role: "user", content }] }),
          ),
        );
      const forward = await askAll(prompts);
      const backward = (await askAll([...prompts].reverse())).reverse();
      expect(backward.map((a) => a.choices[0]?.message.content)).toEqual(
        forward.map((a) => a.choices[0]?.message.content),
      );
      forward.forEach((answer, i) => {
        expect(
          answer.choices[0]?.message.content?.startsWith(
            expectedMarker([{ role: "user", content: prompts[i]! }]),
          ),
        ).toBe(true);
      });
      expect(new Set(forward.map((a) => a.usage?.completion_tokens)).size).toBeGreaterThan(1);
    });
  });
});

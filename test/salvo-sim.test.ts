// The Salvo client end to end: the official SDKs behind the scheduler, against the simulator over
// HTTP. Assertions are on the simulator's own statistics as well as on the results.
import { afterEach, describe, expect, it } from "vitest";
import { AnthropicProvider } from "../src/providers/anthropic-provider.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { ProviderRequest } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import { expectedMarker, type SimHandle, startSimulator } from "../src/sim/index.ts";

const FAKE_KEY = "sk-test-salvo-not-a-real-key";
let sim: SimHandle | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

const chat = (i: number): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    max_tokens: 20,
    messages: [{ role: "user", content: `line item ${i}` }],
  },
});
const answer = (body: unknown) =>
  (body as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? "";

describe("Salvo against the simulator", () => {
  it("a request that cannot be estimated is its own failed outcome; the others are answered", async () => {
    sim = await startSimulator({ latency: { ttftMs: 5 }, output: { tokens: 4 } });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
      concurrency: 2,
    });
    // The estimate skips what is not a message (`messages: [null]` is estimable now): a body
    // whose messages cannot even be read is not.
    const broken: ProviderRequest = {
      path: "/chat/completions",
      body: {
        model: "gpt-4o-mini",
        get messages(): unknown {
          throw new Error("unreadable");
        },
      },
    };
    const outcomes = await salvo.map([chat(0), broken, chat(2)]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(outcomes.map((o) => o.index)).toEqual([0, 1, 2]);
    const alone = await salvo.settle(broken);
    expect(alone.ok).toBe(false);
    expect(sim.stats().arrivals).toBe(2);
  });

  it("with the simulator's limits: zero 429s, slots never exceeded, every answer with its item", async () => {
    sim = await startSimulator({
      latency: { ttftMs: 20, msPerToken: 1 },
      capacity: { slots: 8 },
      limits: { rpm: 6000, tpm: 600_000, burstSeconds: 1 },
      output: { tokens: 10 },
    });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
      concurrency: 8,
      requestsPerMinute: 6000,
      tokensPerMinute: 600_000,
    });
    const requests = Array.from({ length: 200 }, (_, i) => chat(i));
    const outcomes = await salvo.map(requests);
    const stats = sim.stats();
    expect(stats.byStatus["429"] ?? 0).toBe(0);
    expect(stats.maxInService).toBeLessThanOrEqual(8);
    expect(stats.completions).toBe(200);
    outcomes.forEach((outcome, i) => {
      expect(outcome.ok).toBe(true);
      if (!outcome.ok) return;
      expect(
        answer(outcome.value.body).startsWith(
          expectedMarker([{ role: "user", content: `line item ${i}` }]),
        ),
      ).toBe(true);
      expect(outcome.index).toBe(i);
    });
  });

  it("retries through admission: 429s from an unannounced limit are absorbed, nothing is lost", async () => {
    sim = await startSimulator({
      latency: { ttftMs: 5 },
      limits: { rpm: 1200 },
      output: { tokens: 4 },
    });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
      concurrency: 16,
      retry: { maxAttempts: 10 },
    });
    const outcomes = await salvo.map(Array.from({ length: 60 }, (_, i) => chat(i)));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(60);
    const stats = sim.stats();
    expect(stats.completions).toBe(60);
    // The shared cooldown and learned limits keep the 429s to a small fraction of the calls.
    expect(stats.byStatus["429"] ?? 0).toBeLessThan(30);
  });

  it("Anthropic: separate input and output token limits, zero 429s when they match", async () => {
    sim = await startSimulator({
      latency: { ttftMs: 10 },
      limits: { rpm: 3000, itpm: 200_000, otpm: 40_000 },
      output: { tokens: 10 },
    });
    const salvo = new Salvo({
      provider: new AnthropicProvider({ baseURL: sim.origin, apiKey: FAKE_KEY }),
      concurrency: 8,
      requestsPerMinute: 3000,
      inputTokensPerMinute: 200_000,
      outputTokensPerMinute: 40_000,
    });
    const outcomes = await salvo.map(
      Array.from({ length: 80 }, (_, i) => ({
        path: "/v1/messages",
        body: {
          model: "claude-sonnet-4-5",
          max_tokens: 10,
          messages: [{ role: "user", content: `part ${i}` }],
        },
      })),
    );
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(sim.stats().byStatus["429"] ?? 0).toBe(0);
  });
});

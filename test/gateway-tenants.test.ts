// Tenants over one upstream: priority keeps a high tenant's latency while a bulk tenant saturates
// the upstream; a tenant's budget stops that tenant only; no key, no call; one tenant cannot see
// another's figures.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { Pricing } from "../src/cost/pricing.ts";
import { useGatewayWorld } from "./support/gateway-world.ts";
import { rejection } from "./support/rejection.ts";

const world = useGatewayWorld("salvo-gateway-tenants-");
const HIGH = "gw-high-tenant-key-0123456789abcdef";
const BULK = "gw-bulk-tenant-key-0123456789abcdef";

function client(origin: string, key: string): OpenAI {
  return new OpenAI({ baseURL: `${origin}/v1`, apiKey: key, maxRetries: 0, fetch: world.fetch });
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length * 0.95) - 1]!;
}

describe("tenants", () => {
  it("priority: a bulk tenant saturating the upstream does not push the high tenant's p95 past 2x its unloaded p95", async () => {
    // Answers take 140-260 ms (varied, as real ones are, so slots free at different times).
    const sim = await world.simulator({
      capacity: { slots: 8 },
      latency: { ttftMs: 200, jitter: 0.3 },
    });
    const { server, gateway } = await world.serve(
      sim,
      {
        tenants: [
          { name: "high", keys: [HIGH], priority: 10 },
          { name: "bulk", keys: [BULK], priority: 0 },
        ],
      },
      { concurrency: 8 },
    );
    const high = client(server.origin, HIGH);
    const ask = async (c: OpenAI, content: string) => {
      const started = performance.now();
      const answer = await c.chat.completions.create({
        model: "sim-gpt",
        max_tokens: 4,
        messages: [{ role: "user", content }],
      });
      expect(answer.choices[0]!.message.content).toContain(content);
      return performance.now() - started;
    };
    const sequence = async (label: string) => {
      const latencies: number[] = [];
      for (let i = 0; i < 20; i++) latencies.push(await ask(high, `${label} ${i}`));
      return latencies;
    };
    await ask(high, "warm-up"); // the first connection and code paths, not the gateway's wait
    const unloaded = p95(await sequence("alone"));

    // 24 bulk workers keep 16 requests waiting behind the 8 slots: without priority, each of
    // the high tenant's calls would wait two whole answers.
    let stop = false;
    const workers = Array.from({ length: 24 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const response = await world.fetch(`${server.baseUrl}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${BULK}` },
          body: JSON.stringify({
            model: "sim-gpt",
            max_tokens: 4,
            messages: [{ role: "user", content: `bulk ${w}.${i}` }],
          }),
        });
        expect(response.status).toBe(200);
        await response.text();
      }
    });
    const status = () => gateway.status().upstreams[0]!;
    while (status().concurrency.queued < 12) await new Promise((r) => setTimeout(r, 10));
    const loaded = p95(await sequence("loaded"));
    const queuedDuring = status().concurrency.queued;
    stop = true;
    await Promise.all(workers);

    expect(queuedDuring).toBeGreaterThan(10); // the upstream really was saturated
    expect(loaded).toBeLessThan(2 * unloaded);
    expect(sim.stats().maxInServer).toBeLessThanOrEqual(8);
    expect(sim.stats().byStatus["429"]).toBeUndefined();
  }, 60_000);

  it("a tenant's budget stops that tenant only", async () => {
    const sim = await world.simulator({ output: { tokens: 8 } });
    const { server, gateway } = await world.serve(sim, {
      pricing: new Pricing({ "sim-gpt": { input: 100, output: 100 } }),
      tenants: [
        // Each call reserves about (prompt + 8) tokens at $100/M: ~$0.002. The budget holds a few.
        { name: "high", keys: [HIGH], maxCostUsd: 0.01 },
        { name: "bulk", keys: [BULK] },
      ],
    });
    const capped = client(server.origin, HIGH);
    const free = client(server.origin, BULK);
    const call = (c: OpenAI, i: number) =>
      c.chat.completions.create({
        model: "sim-gpt",
        max_tokens: 8,
        messages: [{ role: "user", content: `call ${i}` }],
      });
    let answered = 0;
    let refusal: unknown;
    for (let i = 0; i < 20 && refusal === undefined; i++) {
      try {
        await call(capped, i);
        answered++;
      } catch (error) {
        refusal = error;
      }
    }
    expect(answered).toBeGreaterThan(1);
    expect(refusal).toBeInstanceOf(OpenAI.RateLimitError);
    expect(refusal).toMatchObject({ status: 429, code: "insufficient_quota" });
    // Refused at once every time from now on, and without a call.
    const arrivals = sim.stats().arrivals;
    expect(await rejection(call(capped, 99))).toBeInstanceOf(OpenAI.RateLimitError);
    expect(sim.stats().arrivals).toBe(arrivals);
    for (let i = 0; i < 5; i++) expect((await call(free, i)).choices).toHaveLength(1);
    const tenants = gateway.status().tenants;
    const budget = tenants.find((t) => t.name === "high")!.budget!;
    expect(budget.spentUsd).toBeLessThanOrEqual(0.01);
    expect(budget.spentUsd).toBeGreaterThan(0.01 - 0.003);
    expect(tenants.find((t) => t.name === "bulk")!.calls.byStatus).toEqual({ "200": 5 });
  });

  it("without a key, 401; with another tenant's key, its figures are invisible", async () => {
    const sim = await world.simulator();
    const { server } = await world.serve(sim, {
      tenants: [
        { name: "claims-team", keys: [HIGH] },
        { name: "transcripts-team", keys: [BULK] },
      ],
    });
    const stranger = client(server.origin, "gw-some-other-key-0123456789");
    expect(
      await rejection(
        stranger.chat.completions.create({
          model: "sim-gpt",
          messages: [{ role: "user", content: "x" }],
        }),
      ),
    ).toBeInstanceOf(OpenAI.AuthenticationError);
    const raw = await world.fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "sim-gpt", messages: [{ role: "user", content: "x" }] }),
    });
    expect(raw.status).toBe(401);
    expect(sim.stats().arrivals).toBe(0);

    for (let i = 0; i < 3; i++)
      await client(server.origin, HIGH).chat.completions.create({
        model: "sim-gpt",
        max_tokens: 4,
        messages: [{ role: "user", content: `claim ${i}` }],
      });
    await client(server.origin, BULK).chat.completions.create({
      model: "sim-gpt",
      max_tokens: 4,
      messages: [{ role: "user", content: "transcript" }],
    });
    const asTranscripts = await world.fetch(`${server.origin}/salvo/status`, {
      headers: { authorization: `Bearer ${BULK}` },
    });
    const text = await asTranscripts.text();
    expect(text).not.toContain("claims-team");
    const status = JSON.parse(text) as {
      tenants: Array<{ name: string; calls: { requests: number } }>;
      upstreams: Array<{ calls: { requests: number } }>;
    };
    expect(status.tenants).toMatchObject([{ name: "transcripts-team", calls: { requests: 1 } }]);
    expect(status.upstreams[0]!.calls.requests).toBe(1);
    const metrics = await world.fetch(`${server.origin}/metrics`, {
      headers: { authorization: `Bearer ${BULK}` },
    });
    expect(metrics.status).toBe(403);
    expect(await metrics.text()).not.toContain("claims-team");
    expect((await world.fetch(`${server.origin}/salvo/status`)).status).toBe(401);
  });
});

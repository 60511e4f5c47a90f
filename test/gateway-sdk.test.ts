// The official `openai` and `@anthropic-ai/sdk` clients, unchanged but for their base URL,
// against the gateway with the simulator as its upstream: answers, streams, and the SDKs' own
// typed errors for the gateway's and the upstream's refusals.
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { useGatewayWorld } from "./support/gateway-world.ts";
import { rejection } from "./support/rejection.ts";

const world = useGatewayWorld("salvo-gateway-sdk-");
const KEY = "gw-sdk-tenant-key-0123456789abcdef";

function clients(origin: string, key = "any-key-without-tenants") {
  return {
    openai: new OpenAI({ baseURL: `${origin}/v1`, apiKey: key, maxRetries: 0, fetch: world.fetch }),
    anthropic: new Anthropic({ baseURL: origin, apiKey: key, maxRetries: 0, fetch: world.fetch }),
  };
}

describe("the official SDKs through the gateway", () => {
  it("OpenAI chat completions, plain and streamed (usage reconciled from the final chunk)", async () => {
    const sim = await world.simulator({ output: { tokens: 12 } });
    const { server, gateway } = await world.serve(sim);
    const { openai } = clients(server.origin);
    const answer = await openai.chat.completions.create({
      model: "sim-gpt",
      max_tokens: 20,
      messages: [{ role: "user", content: "Is a windscreen covered?" }],
    });
    expect(answer.choices[0]!.message.content).toContain("Is a windscreen covered?");
    expect(answer.usage).toMatchObject({
      prompt_tokens: expect.any(Number),
      completion_tokens: 12,
    });
    expect(answer._request_id).toMatch(/^req_sim/);

    const stream = await openai.chat.completions.create({
      model: "sim-gpt",
      max_tokens: 20,
      stream: true,
      messages: [{ role: "user", content: "Is a radiator covered?" }],
    });
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.choices).toHaveLength(1); // no usage-only chunk: this client did not ask
      text += chunk.choices[0]!.delta.content ?? "";
    }
    expect(chunks).toBeGreaterThan(12);
    expect(text).toContain("Is a radiator covered?");

    const withUsage = await openai.chat.completions.create({
      model: "sim-gpt",
      max_tokens: 20,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "usage please" }],
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of withUsage) if (chunk.usage) usage = chunk.usage;
    expect(usage?.completion_tokens).toBe(12);
    const calls = gateway.status().upstreams[0]!.calls;
    expect(calls.outputTokens).toBe(36);
    expect(calls.outputTokens).toBe(sim.stats().tokens.output);
  });

  it("Anthropic messages, plain and streamed", async () => {
    const sim = await world.simulator({ output: { tokens: 10 } });
    const { server, gateway } = await world.serve(sim);
    const { anthropic } = clients(server.origin);
    const message = await anthropic.messages.create({
      model: "sim-claude",
      max_tokens: 20,
      messages: [{ role: "user", content: "Is a bumper covered?" }],
    });
    expect(message.content[0]).toMatchObject({
      type: "text",
      text: expect.stringContaining("Is a bumper covered?"),
    });
    expect(message.usage.output_tokens).toBe(10);
    const stream = anthropic.messages.stream({
      model: "sim-claude",
      max_tokens: 20,
      messages: [{ role: "user", content: "Is a mirror covered?" }],
    });
    const deltas: string[] = [];
    stream.on("text", (t) => deltas.push(t));
    const final = await stream.finalMessage();
    expect(deltas.join("")).toContain("Is a mirror covered?");
    expect(final.usage.output_tokens).toBe(10);
    expect(final.stop_reason).toBe("end_turn");
    expect(gateway.status().upstreams[1]!.calls.outputTokens).toBe(20);
  });

  it("OpenAI embeddings: vectors as the SDK decodes them; identical requests in flight share one call", async () => {
    const sim = await world.simulator({ latency: { ttftMs: 200 } });
    const { server, gateway } = await world.serve(sim);
    const { openai } = clients(server.origin);
    const one = await openai.embeddings.create({
      model: "text-embedding-3-small",
      input: ["a windscreen", "a radiator"],
      dimensions: 8,
    });
    expect(one.data.map((d) => d.index)).toEqual([0, 1]);
    for (const d of one.data) expect(d.embedding).toHaveLength(8);
    expect(one.usage.prompt_tokens).toBeGreaterThan(0);
    const arrivals = sim.stats().arrivals;
    const same = await Promise.all(
      [0, 1, 2].map(() =>
        openai.embeddings
          .create({ model: "text-embedding-3-small", input: "a bumper", dimensions: 8 })
          .withResponse(),
      ),
    );
    expect(sim.stats().arrivals - arrivals).toBe(1);
    expect(same.map((s) => s.response.headers.get("x-salvo-cache")).sort()).toEqual([
      null,
      "shared",
      "shared",
    ]);
    expect(same[1]!.data.data[0]!.embedding).toEqual(same[0]!.data.data[0]!.embedding);
    expect(gateway.status().upstreams[0]!.calls.shared).toBe(2);
  });

  it("OpenAI responses, plain and streamed", async () => {
    const sim = await world.simulator({ output: { tokens: 9 } });
    const { server, gateway } = await world.serve(sim);
    const { openai } = clients(server.origin);
    const response = await openai.responses.create({
      model: "sim-gpt",
      input: "Is a headlight covered?",
      max_output_tokens: 20,
    });
    expect(response.output_text).toContain("Is a headlight covered?");
    expect(response.usage?.output_tokens).toBe(9);
    const stream = await openai.responses.create({
      model: "sim-gpt",
      input: "Is a tyre covered?",
      max_output_tokens: 20,
      stream: true,
    });
    let text = "";
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") completed = event.response;
    }
    expect(text).toContain("Is a tyre covered?");
    expect(completed?.usage?.output_tokens).toBe(9);
    // The stream's usage was reconciled from its terminal event.
    expect(gateway.status().upstreams[0]!.calls.outputTokens).toBe(18);
  });

  it("over HTTP: a body past the limit is a 413 (declared or streamed), an unknown path a 404, in the wire's shape", async () => {
    const sim = await world.simulator();
    const { server } = await world.serve(sim, { maxBodyBytes: 2000 });
    const big = JSON.stringify({
      model: "sim-gpt",
      messages: [{ role: "user", content: "x".repeat(5000) }],
    });
    const declared = await world.fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: big,
    });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ error: { code: "request_too_large" } });
    const chunked = await world.fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([big]).stream(),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    const small = await world.fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "sim-gpt", messages: [{ role: "user", content: "fits" }] }),
    });
    expect(small.status).toBe(200);
    const unknown = await world.fetch(`${server.origin}/v1/assistants`, {
      method: "POST",
      headers: { "anthropic-version": "2023-06-01" },
      body: "{}",
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      type: "error",
      error: { type: "not_found_error" },
    });
    expect(sim.stats().arrivals).toBe(1);
  });

  it("models are listed in each SDK's shape", async () => {
    const sim = await world.simulator();
    const { server } = await world.serve(sim);
    const { openai, anthropic } = clients(server.origin);
    expect((await openai.models.list()).data.map((m) => m.id)).toEqual(["sim-gpt", "sim-gpt-mini"]);
    expect((await anthropic.models.list()).data.map((m) => m.id)).toEqual([
      "sim-claude",
      "sim-claude-small",
    ]);
  });

  it("typed errors: 400 from the upstream, 401 from the gateway, 429 from the gateway's backpressure", async () => {
    const sim = await world.simulator({ latency: { ttftMs: 1500 } });
    const { server } = await world.serve(
      sim,
      { tenants: [{ name: "t", keys: [KEY] }] },
      { concurrency: 1, maxQueued: 1 },
    );
    const good = clients(server.origin, KEY);
    const bad = clients(server.origin, "gw-not-a-key-0123456789");

    const e400 = await rejection(
      good.openai.chat.completions.create({ model: "sim-gpt", messages: [] }),
    );
    expect(e400).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e400).toMatchObject({ status: 400, param: "messages", type: "invalid_request_error" });
    const a400 = await rejection(
      good.anthropic.messages.create({
        model: "sim-claude",
        max_tokens: 0,
        messages: [{ role: "user", content: "x" }],
      }),
    );
    expect(a400).toBeInstanceOf(Anthropic.BadRequestError);

    const e401 = await rejection(
      bad.openai.chat.completions.create({
        model: "sim-gpt",
        messages: [{ role: "user", content: "x" }],
      }),
    );
    expect(e401).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(e401).toMatchObject({ status: 401, code: "invalid_api_key" });
    const a401 = await rejection(
      bad.anthropic.messages.create({
        model: "sim-claude",
        max_tokens: 4,
        messages: [{ role: "user", content: "x" }],
      }),
    );
    expect(a401).toBeInstanceOf(Anthropic.AuthenticationError);

    // On each upstream one call in flight, one queued (the most): the third is turned away at once.
    const running = [0, 1].flatMap((i) => [
      good.openai.chat.completions.create({
        model: "sim-gpt",
        max_tokens: 4,
        messages: [{ role: "user", content: `busy ${i}` }],
      }),
      good.anthropic.messages.create({
        model: "sim-claude",
        max_tokens: 4,
        messages: [{ role: "user", content: `busy ${i}` }],
      }),
    ]);
    await until(async () => {
      const response = await world.fetch(`${server.origin}/salvo/status`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      const status = (await response.json()) as {
        upstreams: Array<{ concurrency: { queued: number } }>;
      };
      return status.upstreams.every((u) => u.concurrency.queued === 1);
    });
    const e429 = await rejection(
      good.openai.chat.completions.create({
        model: "sim-gpt",
        max_tokens: 4,
        messages: [{ role: "user", content: "late" }],
      }),
    );
    expect(e429).toBeInstanceOf(OpenAI.RateLimitError);
    const headers = (e429 as InstanceType<typeof OpenAI.RateLimitError>).headers;
    expect(Number(headers.get("retry-after-ms"))).toBeGreaterThan(0);
    expect(headers.get("retry-after")).toMatch(/^\d+$/);
    const a429 = await rejection(
      good.anthropic.messages.create({
        model: "sim-claude",
        max_tokens: 4,
        messages: [{ role: "user", content: "late" }],
      }),
    );
    expect(a429).toBeInstanceOf(Anthropic.RateLimitError);
    expect(a429).toMatchObject({ status: 429, type: "rate_limit_error" });
    await Promise.all(running);
    expect(sim.stats().byStatus["429"]).toBeUndefined();
  });

  it("the SDK's own retries honour the gateway's retry-after and get through", async () => {
    const sim = await world.simulator({ latency: { ttftMs: 150 } });
    const { server } = await world.serve(sim, {}, { concurrency: 1, maxQueued: 1 });
    const openai = new OpenAI({
      baseURL: server.baseUrl,
      apiKey: "x",
      maxRetries: 5,
      fetch: world.fetch,
    });
    const answers = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        openai.chat.completions.create({
          model: "sim-gpt",
          max_tokens: 4,
          messages: [{ role: "user", content: `r${i}` }],
        }),
      ),
    );
    expect(
      answers.map((a) => a.choices[0]!.message.content?.includes(`r${answers.indexOf(a)}`)),
    ).toEqual([true, true, true, true]);
    expect(sim.stats().completions).toBe(4);
  });
});

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out waiting for the condition");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

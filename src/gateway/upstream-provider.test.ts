// The gateway's provider over both transports (Node's http client, the default, and a fetch):
// one attempt, the answer and its usage, a streamed answer passed on event by event, and a
// refusal kept as it came.
import { afterEach, describe, expect, it } from "vitest";
import { ClientError } from "../errors.ts";
import { type SimHandle, startSimulator } from "../sim/index.ts";
import { ChatStreamReader } from "./stream-reader.ts";
import { StreamRelay } from "./stream-relay.ts";
import { UpstreamProvider, upstreamAnswerOf } from "./upstream-provider.ts";

const sims: SimHandle[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

describe.each([
  ["node:http", undefined],
  ["fetch", globalThis.fetch],
] as const)("UpstreamProvider over %s", (_name, fetchImpl) => {
  async function provider(): Promise<{ upstream: UpstreamProvider; sim: SimHandle }> {
    const sim = await startSimulator({ output: { tokens: 5 } });
    sims.push(sim);
    return {
      sim,
      upstream: new UpstreamProvider({
        provider: "openai",
        baseUrl: sim.baseUrl,
        apiKey: "sk-provider-test-0123456789",
        fetch: fetchImpl,
      }),
    };
  }
  const body = (content: string, extra: Record<string, unknown> = {}) => ({
    model: "sim-gpt",
    messages: [{ role: "user", content }],
    ...extra,
  });

  it("one attempt: the answer, its usage, its request id and rate-limit headers", async () => {
    const { upstream } = await provider();
    const result = await upstream.call(
      { path: "/chat/completions", body: body("hello") },
      { signal: new AbortController().signal },
    );
    expect(result.status).toBe(200);
    expect(result.usage).toMatchObject({ outputTokens: 5 });
    expect(result.requestId).toMatch(/^req_sim/);
    upstream.close();
  });

  it("a refusal keeps the upstream's status, headers and body", async () => {
    const { upstream } = await provider();
    const error = await upstream
      .call(
        { path: "/chat/completions", body: { model: "sim-gpt", messages: [] } },
        { signal: new AbortController().signal },
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientError);
    const answer = upstreamAnswerOf(error)!;
    expect(answer.status).toBe(400);
    expect(answer.headers["x-request-id"]).toMatch(/^req_sim/);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { param: "messages" } });
    upstream.close();
  });

  it("a stream goes to its relay event by event; the result is the assembled answer", async () => {
    const { upstream } = await provider();
    const relay = new StreamRelay();
    const request = { path: "/chat/completions", body: body("stream", { stream: true }) };
    upstream.attach(request, {
      stream: { relay, reader: () => new ChatStreamReader({ clientWantsUsage: true }) },
    });
    const text = new Response(relay.readable).text();
    const result = await upstream.call(request, { signal: new AbortController().signal });
    relay.close();
    expect((await text).trim().endsWith("data: [DONE]")).toBe(true);
    expect(result.body).toMatchObject({
      object: "chat.completion",
      choices: [{ message: { role: "assistant" } }],
    });
    upstream.close();
  });
});

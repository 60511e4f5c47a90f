// The gateway as a handler, without a port of its own: requests go to `gateway.fetch`, the
// upstream is the simulator on loopback.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type AuditContext, currentContext } from "../audit/audit-context.ts";
import type { AttemptInfo, CallAuditor } from "../audit/call-auditor.ts";
import { Pricing } from "../cost/pricing.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { type SimConfigInput, type SimHandle, startSimulator } from "../sim/index.ts";
import { createGateway, type Gateway, type GatewayOptions } from "./gateway.ts";

const UPSTREAM_KEY = "sk-upstream-unit-test-key-0123456789";
const KEY_A = "gw-key-tenant-a-0123456789abcdef";
const KEY_B = "gw-key-tenant-b-0123456789abcdef";

const sims: SimHandle[] = [];
const gateways: Gateway[] = [];
const upstreams: Server[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
  await Promise.all(sims.splice(0).map((s) => s.close()));
  for (const server of upstreams.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function setUp(
  sim: SimConfigInput = {},
  options: Partial<GatewayOptions> = {},
  upstream: Partial<GatewayOptions["upstreams"][number]> = {},
): Promise<{ gateway: Gateway; sim: SimHandle }> {
  const handle = await startSimulator(sim);
  sims.push(handle);
  const gateway = createGateway({
    upstreams: [
      {
        provider: "openai",
        baseUrl: handle.baseUrl,
        apiKey: UPSTREAM_KEY,
        concurrency: 4,
        ...upstream,
      },
      {
        provider: "anthropic",
        baseUrl: handle.origin,
        apiKey: UPSTREAM_KEY,
        concurrency: 4,
        ...upstream,
      },
    ],
    processMetrics: false,
    ...options,
  });
  gateways.push(gateway);
  return { gateway, sim: handle };
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: "sim-gpt",
  max_tokens: 8,
  messages: [{ role: "user", content }],
  ...extra,
});

function post(
  gateway: Gateway,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return gateway.fetch(
    new Request(`http://gateway.test/v1${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      signal,
    }),
  );
}

/** Records each attempt's context and outcome, as a call log would. */
class MemoryAuditor implements CallAuditor {
  readonly records: Array<{ context: AuditContext; info: AttemptInfo; ok: boolean; path: string }> =
    [];
  capture(): AuditContext {
    return currentContext();
  }
  attempt(context: AuditContext, request: ProviderRequest, info: AttemptInfo) {
    return {
      succeeded: () => {
        this.records.push({ context, info, ok: true, path: request.path });
      },
      failed: () => {
        this.records.push({ context, info, ok: false, path: request.path });
      },
    };
  }
}

describe("gateway handler", () => {
  it("answers OpenAI chat and Anthropic messages through their upstreams, with the upstream's request id", async () => {
    const { gateway, sim } = await setUp();
    const a = await post(gateway, "/chat/completions", chat("hello"));
    expect(a.status).toBe(200);
    const body = (await a.json()) as { choices: Array<{ message: { content: string } }> };
    expect(body.choices[0]!.message.content).toContain("hello");
    expect(a.headers.get("x-request-id")).toMatch(/^req_sim/);
    expect(a.headers.get("x-salvo-upstream")).toBe("openai");
    const m = await post(
      gateway,
      "/messages",
      { model: "sim-claude", max_tokens: 8, messages: [{ role: "user", content: "hi claude" }] },
      { "anthropic-version": "2023-06-01" },
    );
    expect(m.status).toBe(200);
    expect(((await m.json()) as { content: Array<{ text: string }> }).content[0]!.text).toContain(
      "hi claude",
    );
    expect(m.headers.get("request-id")).toMatch(/^req_sim/);
    expect(m.headers.get("x-salvo-upstream")).toBe("anthropic");
    expect(sim.stats().completions).toBe(2);
  });

  it("passes the upstream's answer on as the bytes it sent (not re-encoded)", async () => {
    // Pretty-printed, a float written 1.0 and an escaped character: JSON.stringify would change each.
    const text =
      '{\n  "id": "c1",\n  "object": "chat.completion",\n  "model": "sim-gpt",\n  "choices": [ { "index": 0, "message": { "role": "assistant", "content": "caf\\u00e9" }, "finish_reason": "stop" } ],\n  "usage": { "prompt_tokens": 5, "completion_tokens": 1.0, "total_tokens": 6 }\n}';
    const authorizations: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      authorizations.push(req.headers.authorization);
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(text);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    upstreams.push(server);
    const port = (server.address() as AddressInfo).port;
    const gateway = createGateway({
      upstreams: [
        {
          provider: "openai",
          baseUrl: `http://127.0.0.1:${port}/v1`,
          apiKey: UPSTREAM_KEY,
          concurrency: 2,
        },
      ],
      processMetrics: false,
    });
    gateways.push(gateway);
    for (let i = 0; i < 2; i++) {
      const response = await post(gateway, "/chat/completions", chat(`q${i}`));
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(text);
    }
    expect(authorizations).toEqual([`Bearer ${UPSTREAM_KEY}`, `Bearer ${UPSTREAM_KEY}`]);
    expect(gateway.status().upstreams[0]).toMatchObject({ name: "openai" });
  });

  it("passes the upstream's own error on unchanged: status, body and request id", async () => {
    const { gateway, sim } = await setUp();
    const response = await post(gateway, "/chat/completions", { model: "sim-gpt", messages: [] });
    expect(response.status).toBe(400);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({
      error: {
        message: "messages: expected a non-empty array",
        type: "invalid_request_error",
        param: "messages",
        code: null,
      },
    });
    expect(response.headers.get("x-request-id")).toMatch(/^req_sim/);
    expect(sim.stats().arrivals).toBe(1); // a 400 is not retried
  });

  it("refuses what it cannot route or read, in the wire's shape", async () => {
    const { gateway } = await setUp({}, { maxBodyBytes: 1000 });
    const notJson = await post(gateway, "/chat/completions", "{nope");
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { message: string } }).error.message).toMatch(
      /JSON/,
    );
    const noModel = await post(gateway, "/chat/completions", { messages: [] });
    expect(noModel.status).toBe(400);
    const unknown = await post(
      gateway,
      "/messages",
      { model: "sim-claude", max_tokens: 1, messages: "x" },
      {
        "anthropic-version": "2023-06-01",
      },
    );
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error" },
    });
    const big = await post(gateway, "/chat/completions", chat("x".repeat(2000)));
    expect(big.status).toBe(413);
    const path = await gateway.fetch(
      new Request("http://gateway.test/v1/nope", { method: "POST" }),
    );
    expect(path.status).toBe(404);
    expect(await path.json()).toMatchObject({ error: { code: "unknown_url" } });
  });

  it("routes by model: an upstream's models, and 404 for a model no upstream serves", async () => {
    const { gateway } = await setUp({}, {}, { models: ["sim-gpt", "sim-claude"] });
    expect((await post(gateway, "/chat/completions", chat("a"))).status).toBe(200);
    const response = await post(gateway, "/chat/completions", chat("a", { model: "gpt-9" }));
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({
      error: { code: "model_not_found", param: "model" },
    });
  });

  describe("tenants", () => {
    const tenants = [
      { name: "a", keys: [KEY_A], models: ["sim-gpt"], admin: true },
      { name: "b", keys: [KEY_B] },
    ];

    it("401 without a key or with a wrong one, never echoing it; x-api-key works for Anthropic clients", async () => {
      const { gateway, sim } = await setUp({}, { tenants });
      const none = await post(gateway, "/chat/completions", chat("a"));
      expect(none.status).toBe(401);
      const wrong = await post(gateway, "/chat/completions", chat("a"), {
        authorization: "Bearer sk-wrong-key-1234567890",
      });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).not.toContain("sk-wrong-key-1234567890");
      const anthropic = await post(
        gateway,
        "/messages",
        { model: "sim-claude", max_tokens: 4, messages: [{ role: "user", content: "x" }] },
        {
          "x-api-key": KEY_B,
          "anthropic-version": "2023-06-01",
        },
      );
      expect(anthropic.status).toBe(200);
      expect(sim.stats().arrivals).toBe(1);
    });

    it("403 for a model the tenant may not use", async () => {
      const { gateway } = await setUp({}, { tenants });
      const response = await post(
        gateway,
        "/messages",
        { model: "sim-claude", max_tokens: 4, messages: [{ role: "user", content: "x" }] },
        { "x-api-key": KEY_A, "anthropic-version": "2023-06-01" },
      );
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({
        type: "error",
        error: { type: "permission_error" },
      });
    });

    it("a tenant sees its own figures only; an admin sees every tenant's", async () => {
      const { gateway } = await setUp({}, { tenants });
      await post(gateway, "/chat/completions", chat("a"), { authorization: `Bearer ${KEY_A}` });
      await post(gateway, "/chat/completions", chat("b"), { authorization: `Bearer ${KEY_B}` });
      const asB = await gateway.fetch(
        new Request("http://gateway.test/salvo/status", {
          headers: { authorization: `Bearer ${KEY_B}` },
        }),
      );
      const text = await asB.text();
      const status = JSON.parse(text) as {
        tenants: Array<{ name: string }>;
        upstreams: Array<{ calls: { requests: number } }>;
      };
      expect(status.tenants.map((t) => t.name)).toEqual(["b"]);
      expect(status.upstreams[0]!.calls.requests).toBe(1);
      expect(text).not.toMatch(/"a"/);
      const metricsAsB = await gateway.fetch(
        new Request("http://gateway.test/metrics", {
          headers: { authorization: `Bearer ${KEY_B}` },
        }),
      );
      expect(metricsAsB.status).toBe(403);
      const asA = await gateway.fetch(
        new Request("http://gateway.test/salvo/status", {
          headers: { authorization: `Bearer ${KEY_A}` },
        }),
      );
      const all = (await asA.json()) as {
        tenants: Array<{ name: string }>;
        upstreams: Array<{ calls: { requests: number } }>;
      };
      expect(all.tenants.map((t) => t.name)).toEqual(["a", "b"]);
      expect(all.upstreams[0]!.calls.requests).toBe(2);
      const noKey = await gateway.fetch(new Request("http://gateway.test/salvo/status"));
      expect(noKey.status).toBe(401);
    });

    it("priority: a higher tenant's call is admitted before a lower tenant's queued calls", async () => {
      const order = await admissionOrder(
        [
          { name: "bulk", keys: [KEY_A] },
          { name: "urgent", keys: [KEY_B], priority: 5 },
        ],
        [
          [KEY_A, "bulk 0"],
          [KEY_A, "bulk 1"],
          [KEY_A, "bulk 2"],
          [KEY_B, "urgent"],
        ],
      );
      expect(order).toEqual(["bulk 0", "urgent", "bulk 1", "bulk 2"]);
    });

    it("equal priority: tenants share the upstream round-robin, not first come first served", async () => {
      const order = await admissionOrder(tenants, [
        [KEY_A, "a0"],
        [KEY_A, "a1"],
        [KEY_A, "a2"],
        [KEY_A, "a3"],
        [KEY_B, "b0"],
        [KEY_B, "b1"],
      ]);
      expect(order).toEqual(["a0", "b0", "a1", "b1", "a2", "a3"]);
    });

    it("a tenant's rate limit: a request that would wait past the caller's deadline is a 429 with the wait", async () => {
      const { gateway, sim } = await setUp(
        {},
        {
          tenants: [{ name: "slow", keys: [KEY_A], requestsPerMinute: 60 }],
        },
      );
      const headers = { authorization: `Bearer ${KEY_A}`, "x-salvo-deadline-ms": "200" };
      expect((await post(gateway, "/chat/completions", chat("1"), headers)).status).toBe(200);
      const refused = await post(gateway, "/chat/completions", chat("2"), headers);
      expect(refused.status).toBe(429);
      const retryMs = Number(refused.headers.get("retry-after-ms"));
      expect(retryMs).toBeGreaterThan(500);
      expect(retryMs).toBeLessThanOrEqual(1000);
      expect(refused.headers.get("x-should-retry")).toBe("true");
      expect(await refused.json()).toMatchObject({
        error: { type: "requests", code: "rate_limit_exceeded" },
      });
      expect(sim.stats().arrivals).toBe(1);
    });

    it("a tenant's budget stops that tenant only: 429 insufficient_quota (OpenAI), 402 billing_error (Anthropic)", async () => {
      const pricing = new Pricing({
        "sim-gpt": { input: 1000, output: 1000 },
        "sim-claude": { input: 1000, output: 1000 },
      });
      // One call reserves (prompt + 8 max tokens) x $0.001: about $0.02; the budget holds one.
      const { gateway, sim } = await setUp(
        {},
        {
          pricing,
          tenants: [
            { name: "capped", keys: [KEY_A], maxCostUsd: 0.025 },
            { name: "free", keys: [KEY_B] },
          ],
        },
      );
      const a = { authorization: `Bearer ${KEY_A}` };
      expect((await post(gateway, "/chat/completions", chat("1"), a)).status).toBe(200);
      const refused = await post(gateway, "/chat/completions", chat("2"), a);
      expect(refused.status).toBe(429);
      expect(refused.headers.get("x-should-retry")).toBe("false");
      expect(await refused.json()).toMatchObject({
        error: { code: "insufficient_quota", type: "insufficient_quota" },
      });
      const anthropic = await post(
        gateway,
        "/messages",
        { model: "sim-claude", max_tokens: 8, messages: [{ role: "user", content: "3" }] },
        { "x-api-key": KEY_A, "anthropic-version": "2023-06-01" },
      );
      expect(anthropic.status).toBe(402);
      expect(await anthropic.json()).toMatchObject({ error: { type: "billing_error" } });
      for (let i = 0; i < 3; i++)
        expect(
          (
            await post(gateway, "/chat/completions", chat(`free ${i}`), {
              authorization: `Bearer ${KEY_B}`,
            })
          ).status,
        ).toBe(200);
      expect(sim.stats().completions).toBe(4);
    });
  });

  it("carries each call's context from x-salvo-context or metadata into every attempt's audit record", async () => {
    const audit = new MemoryAuditor();
    const { gateway, sim } = await setUp(
      { faults: { p500: 0.5 }, seed: 7 },
      { audit },
      { retry: { maxAttempts: 10, baseDelayMs: 1 } },
    );
    const calls = Array.from({ length: 6 }, (_, i) =>
      post(gateway, "/chat/completions", chat(`item ${i}`), {
        "x-salvo-context": `claim_id=C${i % 2},item_id=I${i}`,
      }),
    );
    calls.push(
      post(
        gateway,
        "/messages",
        {
          model: "sim-claude",
          max_tokens: 4,
          metadata: { user_id: "u1", claim_id: "C9" },
          messages: [{ role: "user", content: "m" }],
        },
        { "anthropic-version": "2023-06-01" },
      ),
    );
    const responses = await Promise.all(calls);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 200]);
    // One record per attempt, retries included, each with its own call's context.
    expect(audit.records).toHaveLength(sim.stats().arrivals);
    expect(audit.records.some((r) => !r.ok)).toBe(true);
    for (const record of audit.records.filter((r) => r.path === "/chat/completions")) {
      const item = Number(String(record.context.item_id).slice(1));
      expect(record.context).toMatchObject({ claim_id: `C${item % 2}`, tenant: "default" });
      expect(record.context.gateway_request_id).toBe(record.info.id);
    }
    const message = audit.records.find((r) => r.path === "/messages")!;
    expect(message.context).toMatchObject({ claim_id: "C9", user_id: "u1" });
    // Anthropic accepts metadata.user_id only: the simulator saw a valid request (it answered 200).
  });

  it("backpressure: a caller whose deadline the expected wait cannot meet, and past the bounded queue, get a 429 at once with a retry-after computed from the queue", async () => {
    const upstream = await gatedUpstream();
    const gateway = createGateway({
      upstreams: [
        {
          provider: "openai",
          baseUrl: upstream.baseUrl,
          apiKey: UPSTREAM_KEY,
          concurrency: 1,
          maxQueued: 3,
        },
      ],
      processMetrics: false,
    });
    gateways.push(gateway);
    // Teach it the latency: one call of 200 ms or more.
    const warm = post(gateway, "/chat/completions", chat("warm"));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await upstream.release();
    expect((await warm).status).toBe(200);
    const latency = gateway.status().upstreams[0]!.calls.latency.max;

    const calls = [post(gateway, "/chat/completions", chat("0"))];
    await until(() => upstream.arrivals.length === 2);
    for (const i of [1, 2]) {
      calls.push(post(gateway, "/chat/completions", chat(String(i))));
      await until(() => gateway.status().upstreams[0]!.concurrency.queued === i);
    }
    // One in flight and two waiting: three calls' time, more than this caller's deadline.
    const late = await post(gateway, "/chat/completions", chat("late"), {
      "x-salvo-deadline-ms": String(Math.floor(latency)),
    });
    expect(late.status).toBe(429);
    expect(((await late.json()) as { error: { message: string } }).error.message).toMatch(
      /longer than the request's timeout/,
    );
    expect(Number(late.headers.get("retry-after-ms"))).toBeGreaterThanOrEqual(Math.floor(latency));

    calls.push(post(gateway, "/chat/completions", chat("3")));
    await until(() => gateway.status().upstreams[0]!.concurrency.queued === 3);
    const refused = await post(gateway, "/chat/completions", chat("4"));
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
      /3 requests waiting, the most it queues/,
    );
    // The queue frees a place when the call in flight ends: about one call's time.
    const retryMs = Number(refused.headers.get("retry-after-ms"));
    expect(retryMs).toBeGreaterThanOrEqual(Math.floor(latency * 0.9));
    expect(retryMs).toBeLessThanOrEqual(Math.ceil(latency * 1.1));
    expect(refused.headers.get("retry-after")).toBe(String(Math.max(1, Math.ceil(retryMs / 1000))));

    for (let i = 0; i < 4; i++) await upstream.release();
    expect((await Promise.all(calls)).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(upstream.arrivals).toEqual(["warm", "0", "1", "2", "3"]);
    expect(gateway.status().upstreams[0]!.calls.refused).toEqual({
      queue_full: 1,
      wait_too_long: 1,
    });
  });

  it("a stream holds its slot until its last event, and its usage is counted from the final chunk", async () => {
    const { gateway, sim } = await setUp(
      { latency: { msPerToken: 20 }, output: { tokens: 60 } },
      {},
      { concurrency: 1 },
    );
    const stream = await post(
      gateway,
      "/chat/completions",
      chat("stream me", { stream: true, max_tokens: 60 }),
    );
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/text\/event-stream/);
    const second = post(gateway, "/chat/completions", chat("after"));
    await until(() => gateway.status().upstreams[0]!.concurrency.queued === 1);
    expect(gateway.status().upstreams[0]!.concurrency.inFlight).toBe(1);
    const text = await stream.text();
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    // The client did not ask for usage: the usage-only chunk the gateway asked for is not passed on.
    expect(text).not.toContain('"choices":[]');
    expect((await second).status).toBe(200);
    const timeline = sim.stats().timeline;
    expect(timeline[1]!.startMs!).toBeGreaterThanOrEqual(timeline[0]!.endMs - 1);
    const calls = gateway.status().upstreams[0]!.calls;
    expect(calls.outputTokens).toBe(sim.stats().tokens.output);
    expect(calls.inputTokens).toBe(sim.stats().tokens.prompt);
  });

  it("a stream that breaks after it began ends with an error event and is not retried", async () => {
    const { gateway, sim } = await setUp({ faults: { pTruncated: 1 }, output: { tokens: 6 } });
    const response = await post(gateway, "/chat/completions", chat("cut", { stream: true }));
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(
      /data: \{"error":\{"message":"salvo gateway: openai: the stream ended before its last event"/,
    );
    expect(text).not.toContain("[DONE]");
    expect(sim.stats().arrivals).toBe(1);
  });

  it("a stream that fails before its first event is retried unseen", async () => {
    const { gateway, sim } = await setUp(
      { faults: { p500: 0.5 }, seed: 3 },
      {},
      { retry: { maxAttempts: 10, baseDelayMs: 1 } },
    );
    const texts = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const response = await post(gateway, "/chat/completions", chat(`s${i}`, { stream: true }));
        expect(response.status).toBe(200);
        return response.text();
      }),
    );
    for (const text of texts) expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    expect(sim.stats().byStatus["500"]).toBeGreaterThan(0);
  });

  it("a client that goes away frees the slot: the upstream call is aborted", async () => {
    const { gateway, sim } = await setUp({ latency: { ttftMs: 5000 } }, {}, { concurrency: 1 });
    const controller = new AbortController();
    const pending = post(gateway, "/chat/completions", chat("bye"), {}, controller.signal).catch(
      (e: unknown) => e,
    );
    await until(() => sim.stats().inService === 1);
    expect(gateway.status().upstreams[0]!.concurrency.inFlight).toBe(1);
    controller.abort();
    await pending;
    await until(() => gateway.status().upstreams[0]!.concurrency.inFlight === 0);
    await until(() => sim.stats().ended === 1);
    expect(sim.stats().byStatus["499"]).toBe(1);
  });

  it("GET /v1/models lists what the upstreams serve, in each wire's shape", async () => {
    const { gateway } = await setUp({}, {}, {});
    const openai = await gateway.fetch(new Request("http://gateway.test/v1/models"));
    expect(await openai.json()).toMatchObject({
      object: "list",
      data: [{ id: "sim-gpt" }, { id: "sim-gpt-mini" }],
    });
    const anthropic = await gateway.fetch(
      new Request("http://gateway.test/v1/models", {
        headers: { "anthropic-version": "2023-06-01" },
      }),
    );
    expect(await anthropic.json()).toMatchObject({
      has_more: false,
      data: [
        { type: "model", id: "sim-claude" },
        { type: "model", id: "sim-claude-small" },
      ],
    });
    const one = await gateway.fetch(new Request("http://gateway.test/v1/models/sim-gpt-mini"));
    expect(await one.json()).toMatchObject({ id: "sim-gpt-mini", object: "model" });
  });

  it("drain: new calls get a 503 with a retry-after, /healthz says draining, calls in flight finish", async () => {
    const { gateway } = await setUp({ latency: { ttftMs: 1000 } });
    const running = post(gateway, "/chat/completions", chat("in flight"));
    await until(() => gateway.active === 1);
    gateway.drain();
    const refused = await post(gateway, "/chat/completions", chat("late"));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    const health = await gateway.fetch(new Request("http://gateway.test/healthz"));
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: "draining", active: 1 });
    expect((await running).status).toBe(200);
    await gateway.idle();
    expect(gateway.active).toBe(0);
  });
});

/**
 * The order in which the upstream receives `calls` when they are submitted one after another to
 * a gateway of concurrency 1 whose upstream holds each call until the test lets it go: the first
 * is in flight, every later one queued, before any is let go.
 */
async function admissionOrder(
  tenantList: NonNullable<GatewayOptions["tenants"]>,
  calls: Array<[key: string, content: string]>,
): Promise<string[]> {
  const upstream = await gatedUpstream();
  const gateway = createGateway({
    upstreams: [
      { provider: "openai", baseUrl: upstream.baseUrl, apiKey: UPSTREAM_KEY, concurrency: 1 },
    ],
    tenants: tenantList,
    processMetrics: false,
  });
  gateways.push(gateway);
  const responses: Array<Promise<Response>> = [];
  for (const [i, [key, content]] of calls.entries()) {
    responses.push(
      post(gateway, "/chat/completions", chat(content), { authorization: `Bearer ${key}` }),
    );
    await until(() =>
      i === 0
        ? upstream.arrivals.length === 1
        : gateway.status().upstreams[0]!.concurrency.queued === i,
    );
  }
  for (let i = 0; i < calls.length; i++) await upstream.release();
  for (const response of await Promise.all(responses)) expect(response.status).toBe(200);
  return upstream.arrivals;
}

/**
 * An OpenAI-shaped upstream that holds every chat call until the test lets it go (`release`,
 * oldest first), and records the calls' contents in the order they arrived.
 */
async function gatedUpstream(): Promise<{
  baseUrl: string;
  arrivals: string[];
  /** Answers the oldest held call (waiting for one to arrive if none is held). */
  release(): Promise<void>;
}> {
  const arrivals: string[] = [];
  const held: Array<() => void> = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d));
    req.on("end", () => {
      const content = (JSON.parse(body) as { messages: Array<{ content: string }> }).messages[0]!
        .content;
      arrivals.push(content);
      held.push(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            id: "c",
            object: "chat.completion",
            model: "sim-gpt",
            choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
          }),
        );
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  upstreams.push(server);
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    arrivals,
    async release() {
      await until(() => held.length > 0);
      held.shift()!();
    },
  };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out waiting for the condition");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

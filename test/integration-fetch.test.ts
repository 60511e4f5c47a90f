// salvoFetch and the integrations on it, one behaviour at a time against the simulator: the SDK's
// own retries never add to Salvo's, streams hold their slot exactly as long as they are read,
// usage and rate-limit headers reach the scheduler, every attempt is audited without a key, and
// what the caller sees when things fail.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpenAI } from "@ai-sdk/openai";
import Anthropic from "@anthropic-ai/sdk";
import { ChatAnthropic } from "@langchain/anthropic";
import { generateText, streamText, wrapLanguageModel } from "ai";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { openCallLog } from "../src/audit/call-log.ts";
import { Scheduler } from "../src/core/scheduler.ts";
import {
  AbortedError,
  ClientError,
  ConfigError,
  InvalidResponseError,
  QuotaExceededError,
  RequestInvalidError,
} from "../src/errors.ts";
import { salvoMiddleware } from "../src/integrations/ai-sdk.ts";
import { langchainAnthropic, langchainOpenAI } from "../src/integrations/langchain.ts";
import { salvoFetch } from "../src/integrations/salvo-fetch.ts";
import { wrapAnthropic } from "../src/integrations/wrap-anthropic.ts";
import { wrapOpenAI } from "../src/integrations/wrap-openai.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import { Salvo } from "../src/salvo.ts";
import {
  expectedMarker,
  type SimConfigInput,
  type SimHandle,
  startSimulator,
} from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";

const KEY = "sk-test-fetch-not-a-real-key";
let sim: SimHandle | undefined;
let salvo: Salvo | undefined;
let dir: string | undefined;
afterEach(async () => {
  await salvo?.close();
  await sim?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  salvo = undefined;
  sim = undefined;
  dir = undefined;
});

async function setUp(config: SimConfigInput, options: Record<string, unknown> = {}) {
  sim = await startSimulator(config);
  salvo = new Salvo({
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
    retry: { baseDelayMs: 10, maxDelayMs: 50 },
    ...options,
  });
  return { sim, salvo };
}

const ask = (content: string) => ({
  model: "sim-gpt",
  max_tokens: 32,
  messages: [{ role: "user" as const, content }],
});

describe("salvoFetch: one retry authority", () => {
  it("a failed answer reaches the SDK once Salvo stops, marked not to retry: the SDK's own retries never run", async () => {
    const { sim, salvo } = await setUp({ quota: true });
    // The SDK's retries left on (3): the answer says x-should-retry: false, so it does not retry.
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 3,
    });
    const error = await rejection<InstanceType<typeof OpenAI.RateLimitError>>(
      client.chat.completions.create(ask("quota")),
    );
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(error.code).toBe("insufficient_quota");
    expect(error.headers?.get("x-should-retry")).toBe("false");
    expect(sim.stats().arrivals).toBe(1);
  });

  it("retries a 500 itself; the SDK sees only the answer", async () => {
    const { sim, salvo } = await setUp(
      { seed: 1, faults: { p500: 0.3 } },
      { retry: { baseDelayMs: 5, maxDelayMs: 20, maxAttempts: 20, budget: false } },
    );
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    let attempts = 0;
    salvo.scheduler.on("started", () => {
      attempts++;
    });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client.chat.completions.create(ask(`r${i}`))),
    );
    expect(answers).toHaveLength(12);
    const stats = sim.stats();
    expect(stats.byStatus["500"]).toBeGreaterThan(0);
    expect(stats.arrivals).toBe(attempts);
    expect(stats.completions).toBe(12);
  });

  it("refuses the SDK's retry of a request Salvo already retried, with one warning", async () => {
    const { sim, salvo } = await setUp(
      { faults: { pReset: 1 } },
      { retry: { maxAttempts: 2, baseDelayMs: 5 } },
    );
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 2,
    });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const error = await rejection<Error>(client.chat.completions.create(ask("reset")));
      expect(error).toBeInstanceOf(OpenAI.APIConnectionError);
      expect(error.cause).toBeInstanceOf(ConfigError);
      expect((error.cause as ConfigError).field).toBe("maxRetries");
      // Salvo's two attempts reached the server; the SDK's two retries did not.
      expect(sim.stats().arrivals).toBe(2);
      await new Promise((resolve) => setImmediate(resolve));
      const ours = warnings.filter((w) => (w as { code?: string }).code === "SALVO_SDK_RETRIES");
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message).not.toContain(KEY);
    } finally {
      process.off("warning", onWarning);
    }
  }, 20_000);
});

describe("salvoFetch: streams and slots", () => {
  it("a stream holds its slot until it is read; the next call waits for it", async () => {
    const { sim, salvo } = await setUp(
      { latency: { ttftMs: 5, msPerToken: 1 }, output: { tokens: 6 } },
      { concurrency: 1 },
    );
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const stream = await client.chat.completions.create({ ...ask("first"), stream: true });
    const second = client.chat.completions.create(ask("second"));
    await new Promise<void>((resolve) => {
      const off = salvo.scheduler.on("queued", () => {
        off();
        resolve();
      });
    });
    expect(salvo.scheduler.inFlight).toBe(1);
    expect(salvo.scheduler.queued).toBe(1);
    expect(sim.stats().arrivals).toBe(1);
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text.startsWith(expectedMarker([{ role: "user", content: "first" }]))).toBe(true);
    const answer = await second;
    expect(
      answer.choices[0]?.message.content?.startsWith(
        expectedMarker([{ role: "user", content: "second" }]),
      ),
    ).toBe(true);
    expect(sim.stats().maxInServer).toBe(1);
  });

  it("breaking out of a stream frees its slot; the call ends aborted, not retried", async () => {
    const { sim, salvo } = await setUp(
      { latency: { ttftMs: 5, msPerToken: 20 }, output: { tokens: 40 } },
      { concurrency: 1 },
    );
    const failed: unknown[] = [];
    salvo.scheduler.on("failed", (e) => failed.push(e.error));
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const stream = await client.chat.completions.create({ ...ask("long"), stream: true });
    for await (const _chunk of stream) break;
    const next = await client.chat.completions.create(ask("after"));
    expect(next.choices).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toBeInstanceOf(AbortedError);
    expect(sim.stats().arrivals).toBe(2);
  });

  it("a stream nobody reads holds its slot no longer than the attempt's timeout, and is not sent again", async () => {
    const { sim, salvo } = await setUp(
      { latency: { ttftMs: 5, msPerToken: 5 }, output: { tokens: 200 } },
      { concurrency: 1, timeoutMs: 300 },
    );
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const failed = new Promise<unknown>((resolve) => {
      salvo.scheduler.on("failed", (e) => resolve(e.error));
    });
    const abandoned = await client.chat.completions.create({ ...ask("abandoned"), stream: true });
    const error = await failed;
    // The scheduler retries a timed-out attempt on its own; the handed-over stream is not sent
    // again: the retry fails at once, without a request.
    expect(error).toBeInstanceOf(InvalidResponseError);
    expect((error as InvalidResponseError).shouldRetry).toBe(false);
    expect((error as Error).message).toContain("already handed to its caller");
    expect(salvo.scheduler.inFlight).toBe(0);
    expect(sim.stats().arrivals).toBe(1);
    // Its reader now sees the stream cut off.
    await expect(
      (async () => {
        for await (const _chunk of abandoned) {
        }
      })(),
    ).rejects.toBeDefined();
  });
});

describe("salvoFetch: what reaches the scheduler", () => {
  it("reconciles output tokens from the answer's usage, streamed or not (Anthropic: the real output counts)", async () => {
    const sim_ = await startSimulator({
      output: { tokens: 8 },
      latency: { ttftMs: 2, msPerToken: 0.5 },
    });
    sim = sim_;
    const scheduler = new Scheduler({
      outputTokensPerMinute: 6000,
      burstSeconds: 60,
      concurrency: 2,
    });
    const client = new Anthropic({
      baseURL: sim_.origin,
      apiKey: KEY,
      fetch: salvoFetch(scheduler),
      maxRetries: 0,
    });
    const body = {
      model: "sim-claude",
      max_tokens: 1000,
      messages: [{ role: "user" as const, content: "x" }],
    };
    await client.messages.create(body);
    const stream = await client.messages.create({ ...body, stream: true });
    for await (const _event of stream) {
    }
    await scheduler.onIdle();
    // 2000 reserved, 16 really produced: the bucket got the difference back.
    expect(scheduler.bucket("outputTokens")!.level).toBeGreaterThan(6000 - 16 - 1);
    await scheduler.close();
  });

  it("learns the provider's limits from its rate-limit headers", async () => {
    const { sim, salvo } = await setUp({ limits: { rpm: 900, tpm: 90_000 } });
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    expect(salvo.scheduler.bucket("requests")).toBeUndefined();
    await client.chat.completions.create(ask("learn"));
    expect(salvo.scheduler.bucket("requests")?.limitPerMinute).toBe(900);
    expect(salvo.scheduler.bucket("tokens")?.limitPerMinute).toBe(90_000);
  });

  it("passes requests that are not model calls straight through", async () => {
    const { sim, salvo } = await setUp({});
    let started = 0;
    salvo.scheduler.on("started", () => {
      started++;
    });
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const models = await client.models.list();
    expect(models.data.length).toBeGreaterThan(0);
    const fetch = salvoFetch(salvo);
    const reset = await fetch(`${sim.origin}/_sim/reset`, { method: "POST", body: "{}" });
    expect(reset.status).toBe(200);
    expect(started).toBe(0);
  });

  it("refuses a body nested too deep before anything is sent", async () => {
    const { sim, salvo } = await setUp({});
    let nested: unknown = "deep";
    for (let i = 0; i < 200; i++) nested = { a: nested };
    const fetch = salvoFetch(salvo);
    const error = await rejection(
      fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ ...ask("x"), metadata: nested }),
      }),
    );
    expect(error).toBeInstanceOf(RequestInvalidError);
    expect(sim.stats().arrivals).toBe(0);
  });

  it("shares one call between identical embedding requests in flight", async () => {
    const { sim, salvo } = await setUp({ latency: { ttftMs: 30 } });
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const body = { model: "text-embedding-3-small", input: "the same text", dimensions: 4 };
    const [a, b] = await Promise.all([
      client.embeddings.create(body).withResponse(),
      client.embeddings.create(body).withResponse(),
    ]);
    expect(a.data.data[0]!.embedding).toEqual(b.data.data[0]!.embedding);
    expect([
      a.response.headers.get("x-salvo-shared"),
      b.response.headers.get("x-salvo-shared"),
    ]).toContain("true");
    expect(sim.stats().arrivals).toBe(1);
  });

  it("a caller's abort while queued ends the call without a request", async () => {
    const { sim, salvo } = await setUp({ latency: { ttftMs: 200 } }, { concurrency: 1 });
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const first = client.chat.completions.create(ask("slow"));
    const controller = new AbortController();
    const second = client.chat.completions.create(ask("aborted"), { signal: controller.signal });
    await new Promise<void>((resolve) => {
      const off = salvo.scheduler.on("queued", () => {
        off();
        resolve();
      });
    });
    controller.abort();
    expect(await rejection(second)).toBeInstanceOf(OpenAI.APIUserAbortError);
    await first;
    expect(sim.stats().arrivals).toBe(1);
  });

  it("audits every attempt: GenAI fields, allowlisted headers, never the key", async () => {
    dir = await mkdtemp(join(tmpdir(), "salvo-fetch-audit-"));
    const path = join(dir, "calls.log");
    const audit = await openCallLog(path, { content: "full" });
    const { sim, salvo } = await setUp({ seed: 2, faults: { p500: 0.4 } }, { audit });
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => client.chat.completions.create(ask(`a${i}`))),
    );
    await salvo.close();
    await audit.close();
    const text = await readFile(path, "utf8");
    expect(text).not.toContain(KEY);
    const records = text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line))
      .filter((r) => r.type === "llm_call");
    expect(records).toHaveLength(sim.stats().arrivals);
    const ok = records.filter((r) => r.status === "ok");
    expect(ok).toHaveLength(6);
    for (const r of ok) {
      expect(r.attributes["gen_ai.request.model"]).toBe("sim-gpt");
      expect(r.attributes["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
      expect(r.headers["x-request-id"]).toMatch(/^req_sim/);
      expect(r.headers.authorization).toBeUndefined();
    }
    expect(records.filter((r) => r.status === "error").every((r) => r.http_status === 500)).toBe(
      true,
    );
  });
});

describe("salvoFetch: keys", () => {
  it("a key the server echoes (in an error, an answer, a header) reaches no record, error or event", async () => {
    dir = await mkdtemp(join(tmpdir(), "salvo-fetch-keys-"));
    const path = join(dir, "calls.log");
    const audit = await openCallLog(path, { content: "full" });
    let calls = 0;
    // An upstream that echoes the key it is sent everywhere it can.
    const echo: typeof fetch = async (_url, init) => {
      const key = new Headers(init?.headers).get("authorization")!.replace("Bearer ", "");
      const headers = { "content-type": "application/json", "x-request-id": `req-${key}` };
      if (calls++ === 0) {
        const error = { message: `The server choked on key ${key}`, type: "server_error" };
        return new Response(JSON.stringify({ error }), { status: 500, headers });
      }
      const answer = {
        id: "chatcmpl-1",
        object: "chat.completion",
        model: "m",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: `you sent ${key}` },
            finish_reason: "stop",
          },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 },
      };
      return new Response(JSON.stringify(answer), { status: 200, headers });
    };
    salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: "http://upstream.invalid/v1", apiKey: KEY }),
      audit,
      retry: { baseDelayMs: 1, maxDelayMs: 2 },
    });
    const seen: unknown[] = [];
    salvo.scheduler.on("attempt-failed", (e) => seen.push(e.error));
    salvo.scheduler.on("succeeded", (e) => seen.push(e.value));
    const client = new OpenAI({
      baseURL: "http://upstream.invalid/v1",
      apiKey: KEY,
      fetch: salvoFetch(salvo, { fetch: echo }),
      maxRetries: 0,
    });
    const answer = await client.chat.completions.create(ask("echo"));
    // The caller's own SDK gets the answer as it was sent.
    expect(answer.choices[0]?.message.content).toBe(`you sent ${KEY}`);
    await salvo.close();
    await audit.close();
    expect(calls).toBe(2);
    const log = await readFile(path, "utf8");
    expect(log.split("\n").filter((l) => l.includes('"llm_call"'))).toHaveLength(2);
    expect(log).not.toContain(KEY);
    expect(log).toContain("[REDACTED]");
    const events = seen.map((v) =>
      v instanceof Error ? `${v.message} ${JSON.stringify(v)}` : JSON.stringify(v),
    );
    expect(events).toHaveLength(2);
    for (const text of events) expect(text).not.toContain(KEY);
  });
});

describe("the wrappers and the middleware: Salvo's typed errors", () => {
  it("wrapOpenAI: a 400 is a ClientError, with the SDK's own error as its cause", async () => {
    const { sim, salvo } = await setUp({});
    const client = wrapOpenAI(new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY }), salvo);
    const error = await rejection<ClientError>(
      client.responses.create({ model: "sim-gpt", input: "x", max_output_tokens: 5 }),
    );
    expect(error).toBeInstanceOf(ClientError);
    expect(error.status).toBe(400);
    expect(error.providerCode).toBe("integer_below_min_value");
    expect(error.cause).toBeInstanceOf(OpenAI.BadRequestError);
    expect(sim.stats().arrivals).toBe(1);
  });

  it("wrapAnthropic: the spend cap (Anthropic's 400) is a ClientError, never retried", async () => {
    const { sim, salvo } = await setUp({ quota: true });
    const client = wrapAnthropic(new Anthropic({ baseURL: sim.origin, apiKey: KEY }), salvo);
    const error = await rejection(
      client.messages.create({
        model: "sim-claude",
        max_tokens: 10,
        messages: [{ role: "user", content: "x" }],
      }),
    );
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).status).toBe(400);
    expect(sim.stats().arrivals).toBe(1);
  });

  it("the AI SDK: a quota error is Salvo's, and the AI SDK's default retries add nothing", async () => {
    const { sim, salvo } = await setUp({ quota: true });
    const provider = createOpenAI({ baseURL: sim.baseUrl, apiKey: KEY });
    const model = wrapLanguageModel({
      model: provider.chat("sim-gpt"),
      middleware: salvoMiddleware(salvo),
    });
    const error = await rejection(generateText({ model, prompt: "x" }));
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(sim.stats().arrivals).toBe(1);
  });

  it("the AI SDK: a stream's usage comes from its finish part and reaches the scheduler", async () => {
    const { sim, salvo } = await setUp({ output: { tokens: 7 } });
    const values: unknown[] = [];
    salvo.scheduler.on("succeeded", (e) => values.push(e.value));
    const provider = createOpenAI({ baseURL: sim.baseUrl, apiKey: KEY });
    const model = wrapLanguageModel({
      model: provider("sim-gpt"),
      middleware: salvoMiddleware(salvo),
    });
    const result = streamText({ model, prompt: "stream me" });
    expect(
      (await result.text).startsWith(expectedMarker([{ role: "user", content: "stream me" }])),
    ).toBe(true);
    await salvo.scheduler.onIdle();
    expect(values).toHaveLength(1);
    const summary = values[0] as { usage: { outputTokens: { total: number } }; responseId: string };
    expect(summary.usage.outputTokens.total).toBe(7);
    expect(summary.responseId).toMatch(/^resp_/);
  });
});

describe("LangChain", () => {
  it("ChatAnthropic through langchainAnthropic: .invoke and .batch, one request per call", async () => {
    const { sim, salvo } = await setUp({ latency: { ttftMs: 5 } }, { concurrency: 2 });
    const chat = new ChatAnthropic(
      langchainAnthropic(salvo, {
        model: "sim-claude",
        apiKey: KEY,
        maxTokens: 50,
        clientOptions: { baseURL: sim.origin },
      }),
    );
    const one = await chat.invoke("windscreen?");
    const many = await chat.batch(["radiator?", "bumper?", "mirror?"]);
    for (const [message, prompt] of [
      [one, "windscreen?"],
      ...many.map((m, i) => [m, ["radiator?", "bumper?", "mirror?"][i]!] as const),
    ] as const) {
      const text =
        typeof message.content === "string" ? message.content : JSON.stringify(message.content);
      expect(text).toContain(expectedMarker([{ role: "user", content: prompt }]));
    }
    expect(sim.stats().arrivals).toBe(4);
    expect(sim.stats().maxInServer).toBeLessThanOrEqual(2);
  });

  it("refuses LangChain retries on top of Salvo's", () => {
    expect(() => langchainOpenAI({}, { maxRetries: 2 })).toThrow(ConfigError);
    expect(langchainOpenAI({}, {}).configuration).toHaveProperty("fetch");
    expect(() => langchainAnthropic({}, { maxRetries: 6 })).toThrow(ConfigError);
    expect(langchainOpenAI({}, { maxRetries: 0 }).maxRetries).toBe(0);
  });
});

// The official Anthropic SDK against the simulator: Messages answers (plain and streamed with the
// real event sequence), ITPM/OTPM limits, and errors as the SDK's own typed errors.
import Anthropic, { type APIError } from "@anthropic-ai/sdk";
import { describe, expect, it } from "vitest";
import {
  countPromptTokens,
  expectedMarker,
  type SimConfigInput,
  type SimHandle,
  startSimulator,
} from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";

const KEY = "sk-test-not-a-real-key";

async function withSim<T>(
  config: SimConfigInput,
  fn: (sim: SimHandle, client: Anthropic) => Promise<T>,
) {
  const sim = await startSimulator(config);
  try {
    // The Anthropic SDK appends /v1/messages itself: its baseURL is the origin.
    return await fn(sim, new Anthropic({ baseURL: sim.origin, apiKey: KEY, maxRetries: 0 }));
  } finally {
    await sim.close();
  }
}

const messages = [{ role: "user" as const, content: "Summarise the claim in one line." }];
const ask = (client: Anthropic, maxTokens = 64) =>
  client.messages.create({ model: "sim-claude", max_tokens: maxTokens, messages });

describe("simulator with the Anthropic SDK", () => {
  it("answers messages in the shape the SDK parses, marked by the prompt and system", async () => {
    await withSim({ latency: { ttftMs: 5 }, output: { tokens: 10 } }, async (sim, client) => {
      const answer = await client.messages.create({
        model: "sim-claude",
        max_tokens: 64,
        system: "Be terse.",
        messages,
      });
      expect(answer.type).toBe("message");
      expect(answer.role).toBe("assistant");
      expect(answer.id).toMatch(/^msg_/);
      expect(answer.stop_reason).toBe("end_turn");
      const block = answer.content[0];
      expect(block?.type).toBe("text");
      const text = block?.type === "text" ? block.text : "";
      expect(text.startsWith(expectedMarker(messages, { system: "Be terse." }))).toBe(true);
      expect(answer.usage.input_tokens).toBe(countPromptTokens(messages, "Be terse."));
      expect(answer.usage.output_tokens).toBe(10);
      const capped = await ask(client, 4);
      expect(capped.stop_reason).toBe("max_tokens");
      expect(capped.usage.output_tokens).toBe(4);
      expect(sim.stats().completions).toBe(2);
    });
  });

  it("streams the real event sequence, and the SDK assembles the message with usage", async () => {
    await withSim(
      { latency: { ttftMs: 5, msPerToken: 1 }, output: { tokens: 6 } },
      async (sim, client) => {
        const final = await client.messages
          .stream({ model: "sim-claude", max_tokens: 64, messages })
          .finalMessage();
        const block = final.content[0];
        expect(block?.type === "text" && block.text.startsWith(expectedMarker(messages))).toBe(
          true,
        );
        expect(final.usage.output_tokens).toBe(6);
        expect(final.usage.input_tokens).toBe(countPromptTokens(messages));
        expect(final.stop_reason).toBe("end_turn");

        const raw = await fetch(`${sim.origin}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
          body: JSON.stringify({ model: "sim-claude", max_tokens: 64, messages, stream: true }),
        });
        expect(raw.headers.get("content-type")).toMatch(/^text\/event-stream/);
        const events = [...(await raw.text()).matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
        expect(events).toEqual([
          "message_start",
          "content_block_start",
          "ping",
          ...Array(6).fill("content_block_delta"),
          "content_block_stop",
          "message_delta",
          "message_stop",
        ]);
      },
    );
  });

  it("answers a body without max_tokens with a 400 invalid_request_error", async () => {
    await withSim({}, async (sim) => {
      const raw = await fetch(`${sim.origin}/v1/messages`, {
        method: "POST",
        body: JSON.stringify({ model: "sim-claude", messages }),
      });
      expect(raw.status).toBe(400);
      expect(await raw.json()).toMatchObject({
        type: "error",
        error: { type: "invalid_request_error", message: "max_tokens: Field required" },
      });
      expect(raw.headers.get("request-id")).toMatch(/^req_/);
    });
  });

  it("surfaces 429 as RateLimitError with retry-after and anthropic-ratelimit headers", async () => {
    await withSim({ limits: { rpm: 60 } }, async (_sim, client) => {
      await ask(client);
      const error = await rejection<APIError>(ask(client));
      expect(error).toBeInstanceOf(Anthropic.RateLimitError);
      expect(error.error).toMatchObject({ type: "error", error: { type: "rate_limit_error" } });
      expect(Number(error.headers?.get("retry-after"))).toBe(1);
      expect(error.headers?.get("anthropic-ratelimit-requests-limit")).toBe("60");
      expect(error.headers?.get("anthropic-ratelimit-requests-remaining")).toBe("0");
      const reset = Date.parse(error.headers?.get("anthropic-ratelimit-requests-reset") ?? "");
      expect(reset - Date.now()).toBeGreaterThan(0);
      expect(reset - Date.now()).toBeLessThanOrEqual(1100);
    });
  });

  it("surfaces 529 overloaded_error (fault and full queue) and 500", async () => {
    await withSim({ faults: { p503: 1 } }, async (_sim, client) => {
      const error = await rejection<APIError>(ask(client));
      expect(error).toBeInstanceOf(Anthropic.OverloadedError);
      expect(error.status).toBe(529);
      expect(error.error).toMatchObject({ error: { type: "overloaded_error" } });
    });
    await withSim({ faults: { p500: 1 } }, async (_sim, client) => {
      const error = await rejection<APIError>(ask(client));
      expect(error).toBeInstanceOf(Anthropic.InternalServerError);
      expect(error.status).toBe(500);
      expect(error.error).toMatchObject({ error: { type: "api_error" } });
    });
    // Admitted requests hang, so the overflow count does not depend on arrival timing.
    const sim = await startSimulator({ capacity: { slots: 1, queue: 1 }, faults: { pHang: 1 } });
    const client = new Anthropic({ baseURL: sim.origin, apiKey: KEY, maxRetries: 0 });
    const results = Promise.allSettled([ask(client), ask(client), ask(client), ask(client)]);
    while (sim.stats().ended < 2) await new Promise((r) => setTimeout(r, 5));
    await sim.close();
    const settled = await results;
    const overloaded = settled.filter(
      (r) => r.status === "rejected" && r.reason instanceof Anthropic.OverloadedError,
    );
    expect(overloaded).toHaveLength(2);
    expect(sim.stats().refusals.queueFull).toBe(2);
    expect(sim.stats().byStatus).toEqual({ 0: 2, 529: 2 });
  });

  it("ITPM charges prompt tokens at arrival; a prompt above the limit gets 413", async () => {
    const p = countPromptTokens(messages);
    // A bucket of 2.2 prompts: two are admitted, the third is refused.
    await withSim({ limits: { itpm: p * 2.2 * 60 } }, async (sim, client) => {
      await ask(client);
      await ask(client);
      const error = await rejection<APIError>(ask(client));
      expect(error).toBeInstanceOf(Anthropic.RateLimitError);
      expect(error.message).toMatch(/input tokens per minute/);
      expect(Number(error.headers?.get("anthropic-ratelimit-input-tokens-remaining"))).toBeLessThan(
        p,
      );
      expect(error.headers?.get("anthropic-ratelimit-input-tokens-limit")).toBe(
        String(p * 2.2 * 60),
      );
      expect(sim.stats().tokens.charged.inputTokens).toBe(2 * p);
    });
    await withSim({ limits: { itpm: 600 } }, async (sim, client) => {
      const long = [{ role: "user" as const, content: "word ".repeat(800) }];
      const error = await rejection<APIError>(
        client.messages.create({ model: "sim-claude", max_tokens: 8, messages: long }),
      );
      expect(error.status).toBe(413);
      expect(error.error).toMatchObject({ error: { type: "request_too_large" } });
      expect(error.headers?.get("retry-after")).toBeNull();
      expect(sim.stats().refusals.tooLarge).toBe(1);
    });
  });

  it("OTPM is charged by actual output after the answer, ignoring max_tokens", async () => {
    // 600 OTPM: a bucket of 10 output tokens refilled at 0.01 per ms; answers are 25 tokens.
    await withSim({ limits: { otpm: 600 }, output: { tokens: 25 } }, async (sim, client) => {
      const first = await ask(client, 4096); // max_tokens does not count against OTPM
      expect(first.usage.output_tokens).toBe(25);
      const error = await rejection<APIError>(ask(client));
      expect(error).toBeInstanceOf(Anthropic.RateLimitError);
      expect(error.message).toMatch(/output tokens per minute/);
      expect(error.headers?.get("anthropic-ratelimit-output-tokens-remaining")).toBe("0");
      // -15 tokens to get back to 1: ~1600 ms.
      const wait = Number(error.headers?.get("retry-after-ms"));
      expect(wait).toBeGreaterThan(1200);
      expect(wait).toBeLessThanOrEqual(1600);
      expect(error.headers?.get("retry-after")).toBe("2");
      expect(sim.stats().tokens.charged.outputTokens).toBe(25);
    });
  });

  it("quota mode answers the spend-limit 400, not retryable", async () => {
    await withSim({ quota: true }, async (_sim, client) => {
      const error = await rejection<APIError>(ask(client));
      expect(error).toBeInstanceOf(Anthropic.BadRequestError);
      expect(error.message).toMatch(/specified API usage limits/);
      expect(error.headers?.get("x-should-retry")).toBe("false");
    });
  });
});

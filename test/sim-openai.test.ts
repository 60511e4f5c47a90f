// The official OpenAI SDK against the simulator: well-formed answers (plain and streamed, with
// usage), answers that reached the prompt that asked, and the simulator's errors surfacing as the
// SDK's own typed errors.
import OpenAI, { type APIError, type RateLimitError } from "openai";
import { describe, expect, it } from "vitest";
import {
  countPromptTokens,
  expectedMarker,
  type SimConfigInput,
  startSimulator,
} from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";

const KEY = "sk-test-not-a-real-key";

async function withSim<T>(
  config: SimConfigInput,
  fn: (sim: Awaited<ReturnType<typeof startSimulator>>, client: OpenAI) => Promise<T>,
) {
  const sim = await startSimulator(config);
  try {
    return await fn(sim, new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY, maxRetries: 0 }));
  } finally {
    await sim.close();
  }
}

describe("simulator with the OpenAI SDK", () => {
  it("answers chat completions in the shape the SDK parses, marked by the prompt", async () => {
    await withSim(
      { latency: { ttftMs: 5, msPerToken: 1 }, output: { tokens: 12 } },
      async (sim, client) => {
        const prompts = [
          "What is the capital of France?",
          "Name three primes.",
          "Translate 'hello'.",
        ];
        const answers = await Promise.all(
          prompts.map((content) =>
            client.chat.completions.create({
              model: "sim-gpt",
              messages: [{ role: "user", content }],
            }),
          ),
        );
        answers.forEach((answer, i) => {
          const messages = [{ role: "user", content: prompts[i]! }];
          expect(answer.object).toBe("chat.completion");
          expect(answer.id).toMatch(/^chatcmpl-/);
          expect(answer.model).toBe("sim-gpt");
          expect(answer.choices[0]?.message.role).toBe("assistant");
          expect(answer.choices[0]?.finish_reason).toBe("stop");
          expect(
            answer.choices[0]?.message.content?.startsWith(
              `${expectedMarker(messages)} ${prompts[i]!.slice(0, 32)}`,
            ),
          ).toBe(true);
          expect(answer.usage).toEqual({
            prompt_tokens: countPromptTokens(messages),
            completion_tokens: 12,
            total_tokens: countPromptTokens(messages) + 12,
          });
        });
        expect(sim.stats().completions).toBe(3);
        expect(sim.baseUrl).toBe(`http://127.0.0.1:${sim.port}/v1`);
      },
    );
  });

  it("caps the answer at max_tokens with finish_reason length", async () => {
    await withSim({ output: { tokens: 50 } }, async (_sim, client) => {
      const answer = await client.chat.completions.create({
        model: "sim-gpt",
        messages: [{ role: "user", content: "Write a long story." }],
        max_completion_tokens: 7,
      });
      expect(answer.choices[0]?.finish_reason).toBe("length");
      expect(answer.usage?.completion_tokens).toBe(7);
    });
  });

  it("streams chunks ending in [DONE], with usage in the final chunk when asked", async () => {
    await withSim(
      { latency: { ttftMs: 5, msPerToken: 2 }, output: { tokens: 9 } },
      async (_sim, client) => {
        const messages = [
          { role: "system" as const, content: "Be brief." },
          { role: "user" as const, content: "Stream please" },
        ];
        const stream = await client.chat.completions.create({
          model: "sim-gpt",
          messages,
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = "";
        let chunks = 0;
        let finish: string | null | undefined;
        let usage: OpenAI.CompletionUsage | undefined | null;
        for await (const chunk of stream) {
          chunks++;
          expect(chunk.object).toBe("chat.completion.chunk");
          text += chunk.choices[0]?.delta.content ?? "";
          finish ??= chunk.choices[0]?.finish_reason;
          if (chunk.usage) usage = chunk.usage;
        }
        expect(text.startsWith(expectedMarker(messages))).toBe(true);
        expect(finish).toBe("stop");
        expect(chunks).toBe(1 + 9 + 1 + 1); // role, 9 pieces, finish, usage
        expect(usage).toEqual({
          prompt_tokens: countPromptTokens(messages),
          completion_tokens: 9,
          total_tokens: countPromptTokens(messages) + 9,
        });

        const plain = await client.chat.completions.create({
          model: "sim-gpt",
          messages,
          stream: true,
        });
        const withoutUsage: unknown[] = [];
        for await (const chunk of plain) withoutUsage.push(chunk.usage);
        expect(withoutUsage.every((u) => u === undefined)).toBe(true);
      },
    );
  });

  it("lists models", async () => {
    await withSim({}, async (_sim, client) => {
      const models = await client.models.list();
      expect(models.data.map((m) => m.id)).toContain("sim-gpt");
    });
  });

  it("answers a bad body with a 400 the SDK types as BadRequestError", async () => {
    await withSim({}, async (sim, client) => {
      const error = await rejection(
        client.chat.completions.create({ model: "sim-gpt", messages: [] }),
      );
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as APIError).type).toBe("invalid_request_error");
      expect((error as APIError).param).toBe("messages");
      const raw = await fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        body: "{not json",
      });
      expect(raw.status).toBe(400);
      expect(await raw.json()).toMatchObject({
        error: { type: "invalid_request_error", param: null, code: null },
      });
      expect(sim.stats().refusals.badRequest).toBe(2);
    });
  });

  it("surfaces 429, 500 and 503 as RateLimitError and InternalServerError", async () => {
    await withSim({ limits: { rpm: 60 } }, async (_sim, client) => {
      const ask = () =>
        client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });
      await ask();
      const error = await rejection(ask());
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect((error as APIError).code).toBe("rate_limit_exceeded");
      expect((error as APIError).type).toBe("requests");
      expect((error as APIError).message).toMatch(
        /Rate limit reached .* on requests per min \(RPM\): Limit 60, .*Please try again in \d+(\.\d+)?m?s\./,
      );
    });
    await withSim({ faults: { p500: 1, shouldRetry: true } }, async (_sim, client) => {
      const error = await rejection(
        client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      );
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect((error as APIError).status).toBe(500);
      expect((error as APIError).headers?.get("x-should-retry")).toBe("true");
    });
    await withSim({ faults: { p503: 1 } }, async (sim, client) => {
      const error = await rejection(
        client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      );
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect((error as APIError).status).toBe(503);
      expect(sim.stats().byFault.overloaded).toBe(1);
    });
  });

  it("quota mode answers 429 insufficient_quota without retry-after", async () => {
    await withSim({ quota: true, limits: { rpm: 600 } }, async (sim, client) => {
      const error = (await rejection(
        client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      )) as RateLimitError;
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error.code).toBe("insufficient_quota");
      expect(error.type).toBe("insufficient_quota");
      expect(error.headers?.get("retry-after")).toBeNull();
      expect(error.headers?.get("retry-after-ms")).toBeNull();
      expect(error.headers?.get("x-should-retry")).toBe("false");
      expect(sim.stats().refusals.quota).toBe(1);
      // A client that retries anyway is still refused.
      const again = new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY, maxRetries: 2 });
      await expect(
        again.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      ).rejects.toBeInstanceOf(OpenAI.RateLimitError);
      expect(sim.stats().arrivals).toBe(2); // x-should-retry: false stopped the SDK's own retries
    });
  });
});

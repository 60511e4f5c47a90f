// The simulator's /v1/embeddings and /v1/responses through the official OpenAI SDK: answers in the
// shape the SDK parses (vectors as floats or base64, the response object and its typed stream
// events), usage, rate-limit headers and 429s, slots, and faults, like the chat endpoint.
import { countTokens } from "gpt-tokenizer";
import OpenAI, { type APIError } from "openai";
import { describe, expect, it } from "vitest";
import {
  countPromptTokens,
  expectedEmbedding,
  expectedMarker,
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
    return await fn(sim, new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY, maxRetries: 0 }));
  } finally {
    await sim.close();
  }
}

async function rawPost(sim: SimHandle, path: string, body: unknown): Promise<Response> {
  return fetch(`${sim.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

describe("simulator /v1/embeddings with the OpenAI SDK", () => {
  it("answers one vector per input, in order, from the SDK's default base64 encoding", async () => {
    await withSim({}, async (sim, client) => {
      const inputs = ["first text", "second, longer text to embed", "third"];
      const { data: result, response } = await client.embeddings
        .create({ model: "text-embedding-3-small", input: inputs })
        .withResponse();
      expect(result.object).toBe("list");
      expect(result.model).toBe("text-embedding-3-small");
      expect(result.data.map((d) => d.index)).toEqual([0, 1, 2]);
      result.data.forEach((d, i) => {
        expect(d.object).toBe("embedding");
        expect(d.embedding).toHaveLength(1536);
        expect(Array.from(d.embedding)).toEqual(Array.from(expectedEmbedding(inputs[i]!, 1536)));
      });
      const tokens = inputs.reduce((sum, text) => sum + countTokens(text), 0);
      expect(result.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
      expect(response.headers.get("x-request-id")).toMatch(/^req_sim/);
      // The SDK asked for base64 on the wire (it decodes to floats itself).
      const raw = await rawPost(sim, "/embeddings", {
        model: "m",
        input: "first text",
        encoding_format: "base64",
      });
      const body = (await raw.json()) as { data: { embedding: unknown }[] };
      expect(typeof body.data[0]!.embedding).toBe("string");
      const stats = sim.stats();
      expect(stats.completions).toBe(2);
      expect(stats.timeline[0]).toMatchObject({
        endpoint: "embeddings",
        path: "openai",
        status: 200,
        promptTokens: tokens,
        outputTokens: 0,
        stream: false,
      });
    });
  });

  it("honours dimensions and float encoding, and counts token-id inputs one token each", async () => {
    await withSim({}, async (_sim, client) => {
      const floats = await client.embeddings.create({
        model: "text-embedding-3-large",
        input: "short",
        dimensions: 8,
        encoding_format: "float",
      });
      expect(floats.data[0]!.embedding).toEqual(Array.from(expectedEmbedding("short", 8)));
      const norm = Math.hypot(...floats.data[0]!.embedding);
      expect(norm).toBeCloseTo(1, 5);
      const large = await client.embeddings.create({ model: "text-embedding-3-large", input: "x" });
      expect(large.data[0]!.embedding).toHaveLength(3072);
      const ids = await client.embeddings.create({
        model: "text-embedding-3-small",
        input: [
          [1, 2, 3],
          [4, 5],
        ],
        dimensions: 4,
      });
      expect(ids.usage.prompt_tokens).toBe(5);
      expect(ids.data).toHaveLength(2);
    });
  });

  it("refuses bad bodies with the API's 400s", async () => {
    await withSim({}, async (sim, client) => {
      const cases: [Record<string, unknown>, string | null][] = [
        [{ model: "m" }, "input"],
        [{ model: "m", input: "" }, "input"],
        [{ model: "m", input: [] }, "input"],
        [{ model: "m", input: [{ text: "x" }] }, "input"],
        [{ model: "m", input: Array.from({ length: 2049 }, () => "x") }, "input"],
        [{ model: "m", input: "word ".repeat(9000) }, null],
        [{ model: "m", input: "x", encoding_format: "int8" }, "encoding_format"],
        [{ model: "text-embedding-3-small", input: "x", dimensions: 4000 }, "dimensions"],
        [{ model: "m", input: "x", dimensions: 0 }, "dimensions"],
        [{ input: "x" }, "model"],
      ];
      for (const [body, param] of cases) {
        const error = (await rejection(
          client.embeddings.create(body as unknown as OpenAI.EmbeddingCreateParams),
        )) as APIError;
        expect(error, JSON.stringify(body).slice(0, 80)).toBeInstanceOf(OpenAI.BadRequestError);
        expect(error.type).toBe("invalid_request_error");
        expect(error.param).toBe(param);
      }
      expect(sim.stats().refusals.badRequest).toBe(cases.length);
      expect(sim.stats().arrivals).toBe(cases.length);
    });
  });

  it("charges input tokens to TPM, sends rate-limit headers and answers 429 past the limit", async () => {
    // A full minute of burst, so the bucket holds the whole 100 tokens at the start.
    await withSim({ limits: { rpm: 1000, tpm: 100, burstSeconds: 60 } }, async (sim, client) => {
      const text = "one two three four five six seven eight nine ten";
      const { response } = await client.embeddings
        .create({ model: "m", input: [text, text, text, text, text] })
        .withResponse();
      expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("100");
      expect(response.headers.get("x-ratelimit-remaining-tokens")).toBe(
        String(100 - 5 * countTokens(text)),
      );
      expect(response.headers.get("x-ratelimit-limit-requests")).toBe("1000");
      const error = (await rejection(
        client.embeddings.create({ model: "m", input: [text, text, text, text, text, text] }),
      )) as APIError;
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error.code).toBe("rate_limit_exceeded");
      expect(error.message).toMatch(/tokens per min \(TPM\): Limit 100/);
      expect(Number(error.headers?.get("retry-after-ms"))).toBeGreaterThan(0);
      expect(sim.stats().tokens.charged.tokens).toBe(5 * countTokens(text));
      expect(sim.stats().refusals.rateLimited).toBe(1);
    });
  });

  it("serves embeddings through the same slots, latency and faults as chat", async () => {
    await withSim({ capacity: { slots: 2 }, latency: { ttftMs: 30 } }, async (sim, client) => {
      await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          client.embeddings.create({ model: "m", input: `text ${i}`, dimensions: 4 }),
        ),
      );
      const stats = sim.stats();
      expect(stats.maxInService).toBe(2);
      expect(stats.completions).toBe(6);
      for (const entry of stats.timeline) {
        expect(entry.endMs - (entry.startMs ?? 0)).toBeGreaterThanOrEqual(29);
      }
    });
    await withSim({ faults: { p503: 1 } }, async (sim, client) => {
      const error = (await rejection(
        client.embeddings.create({ model: "m", input: "x" }),
      )) as APIError;
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(error.status).toBe(503);
      expect(sim.stats().byFault.overloaded).toBe(1);
    });
    await withSim({ faults: { pMalformed: 1 } }, async (_sim, client) => {
      expect(await rejection(client.embeddings.create({ model: "m", input: "x" }))).toBeInstanceOf(
        SyntaxError,
      );
    });
  });
});

describe("simulator /v1/responses with the OpenAI SDK", () => {
  it("answers a response object marked by the prompt, with usage", async () => {
    await withSim(
      { latency: { ttftMs: 5, msPerToken: 1 }, output: { tokens: 12 } },
      async (sim, client) => {
        const prompt = "What is the capital of France?";
        const { data: answer, response } = await client.responses
          .create({ model: "sim-gpt", input: prompt })
          .withResponse();
        const messages = [{ role: "user", content: prompt }];
        expect(answer.object).toBe("response");
        expect(answer.id).toMatch(/^resp_/);
        expect(answer.status).toBe("completed");
        expect(answer.incomplete_details).toBeNull();
        expect(answer.output).toHaveLength(1);
        const item = answer.output[0] as OpenAI.Responses.ResponseOutputMessage;
        expect(item).toMatchObject({ type: "message", role: "assistant", status: "completed" });
        expect(item.content[0]?.type).toBe("output_text");
        // The SDK's convenience field is built from the output items.
        expect(answer.output_text.startsWith(`${expectedMarker(messages)} ${prompt}`)).toBe(true);
        expect(answer.usage).toEqual({
          input_tokens: countPromptTokens(messages),
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: 12,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: countPromptTokens(messages) + 12,
        });
        expect(response.headers.get("x-request-id")).toMatch(/^req_sim/);
        expect(sim.stats().timeline[0]).toMatchObject({
          endpoint: "responses",
          status: 200,
          outputTokens: 12,
        });
      },
    );
  });

  it("reads instructions and input items like the chat endpoint's system and messages", async () => {
    await withSim({ output: { tokens: 20 } }, async (_sim, client) => {
      const answer = await client.responses.create({
        model: "sim-gpt",
        instructions: "Be brief.",
        input: [
          { role: "user", content: [{ type: "input_text", text: "Hello" }] },
          { role: "assistant", content: "Hi." },
          { type: "message", role: "user", content: "Name three primes." },
        ],
      });
      const chatMessages = [
        { role: "system" as const, content: "Be brief." },
        { role: "user" as const, content: "Hello" },
        { role: "assistant" as const, content: "Hi." },
        { role: "user" as const, content: "Name three primes." },
      ];
      const chat = await client.chat.completions.create({
        model: "sim-gpt",
        messages: chatMessages,
      });
      const marker = expectedMarker(chatMessages);
      expect(answer.output_text.startsWith(marker)).toBe(true);
      expect(chat.choices[0]?.message.content?.startsWith(marker)).toBe(true);
      expect(answer.instructions).toBe("Be brief.");
      expect(answer.usage?.input_tokens).toBe(chat.usage?.prompt_tokens);
    });
  });

  it("stops at max_output_tokens with status incomplete", async () => {
    await withSim({ output: { tokens: 50 } }, async (_sim, client) => {
      const answer = await client.responses.create({
        model: "sim-gpt",
        input: "Write a long story.",
        max_output_tokens: 16,
      });
      expect(answer.status).toBe("incomplete");
      expect(answer.incomplete_details).toEqual({ reason: "max_output_tokens" });
      expect(answer.max_output_tokens).toBe(16);
      expect(answer.usage?.output_tokens).toBe(16);
    });
  });

  it("streams the typed events in order, text deltas adding up to the completed response", async () => {
    await withSim(
      { latency: { ttftMs: 5, msPerToken: 2 }, output: { tokens: 9 } },
      async (sim, client) => {
        const prompt = "Stream please";
        const stream = await client.responses.create({
          model: "sim-gpt",
          input: prompt,
          stream: true,
        });
        const types: string[] = [];
        const sequence: number[] = [];
        let text = "";
        let completed: OpenAI.Responses.Response | undefined;
        for await (const event of stream) {
          types.push(event.type);
          sequence.push(event.sequence_number);
          if (event.type === "response.output_text.delta") text += event.delta;
          if (event.type === "response.completed") completed = event.response;
        }
        expect(types).toEqual([
          "response.created",
          "response.in_progress",
          "response.output_item.added",
          "response.content_part.added",
          ...Array.from({ length: 9 }, () => "response.output_text.delta"),
          "response.output_text.done",
          "response.content_part.done",
          "response.output_item.done",
          "response.completed",
        ]);
        expect(sequence).toEqual(types.map((_, i) => i));
        const messages = [{ role: "user", content: prompt }];
        expect(text.startsWith(expectedMarker(messages))).toBe(true);
        const final = completed?.output[0] as OpenAI.Responses.ResponseOutputMessage;
        expect(final.content[0]).toMatchObject({ type: "output_text", text });
        expect(completed?.usage?.output_tokens).toBe(9);
        expect(completed?.usage?.input_tokens).toBe(countPromptTokens(messages));

        // The SDK's stream helper accumulates the same events into the same final response.
        const helper = client.responses.stream({ model: "sim-gpt", input: prompt });
        const accumulated = await helper.finalResponse();
        expect(accumulated.output_text).toBe(text);
        expect(accumulated.status).toBe("completed");
        expect(sim.stats().timeline.every((e) => e.stream && e.endpoint === "responses")).toBe(
          true,
        );
      },
    );
  });

  it("ends a capped stream with response.incomplete", async () => {
    await withSim({ output: { tokens: 40 } }, async (_sim, client) => {
      const stream = await client.responses.create({
        model: "sim-gpt",
        input: "Long please",
        max_output_tokens: 16,
        stream: true,
      });
      let last: OpenAI.Responses.ResponseStreamEvent | undefined;
      for await (const event of stream) last = event;
      expect(last?.type).toBe("response.incomplete");
    });
  });

  it("refuses bad bodies with the API's 400s and codes", async () => {
    await withSim({}, async (sim, client) => {
      const cases: [Record<string, unknown>, string, string][] = [
        [{ input: "x" }, "model", "missing_required_parameter"],
        [{ model: "m" }, "input", "missing_required_parameter"],
        [{ model: "m", input: [] }, "input", "empty_array"],
        [
          { model: "m", input: [{ role: "robot", content: "x" }] },
          "input[0].role",
          "invalid_value",
        ],
        [
          { model: "m", input: "x", max_output_tokens: 5 },
          "max_output_tokens",
          "integer_below_min_value",
        ],
        [{ model: "m", input: "x", instructions: 3 }, "instructions", "invalid_type"],
        [
          { model: "m", input: "x", previous_response_id: "resp_123" },
          "previous_response_id",
          "previous_response_not_found",
        ],
      ];
      for (const [body, param, code] of cases) {
        const error = (await rejection(
          client.responses.create(
            body as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming,
          ),
        )) as APIError;
        expect(error, JSON.stringify(body)).toBeInstanceOf(OpenAI.BadRequestError);
        expect(error.param).toBe(param);
        expect(error.code).toBe(code);
      }
      expect(sim.stats().refusals.badRequest).toBe(cases.length);
    });
  });

  it("rate-limits, queues for slots and injects faults like the chat endpoint", async () => {
    await withSim({ limits: { rpm: 60 } }, async (_sim, client) => {
      const { response } = await client.responses
        .create({ model: "m", input: "hi" })
        .withResponse();
      expect(response.headers.get("x-ratelimit-limit-requests")).toBe("60");
      expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("0");
      const error = (await rejection(
        client.responses.create({ model: "m", input: "hi" }),
      )) as APIError;
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect(error.message).toMatch(/requests per min \(RPM\): Limit 60/);
      expect(Number(error.headers?.get("retry-after"))).toBeGreaterThan(0);
    });
    await withSim(
      { capacity: { slots: 3 }, latency: { ttftMs: 10, msPerToken: 1 }, output: { tokens: 5 } },
      async (sim, client) => {
        await Promise.all(
          Array.from({ length: 9 }, (_, i) =>
            client.responses
              .create({ model: "m", input: `q${i}`, stream: i % 2 === 0 })
              .then(async (r) => {
                if (r instanceof Object && Symbol.asyncIterator in r)
                  for await (const _ of r) {
                  }
              }),
          ),
        );
        expect(sim.stats().maxInService).toBe(3);
        expect(sim.stats().completions).toBe(9);
      },
    );
    await withSim({ faults: { p500: 1, shouldRetry: true } }, async (_sim, client) => {
      const error = (await rejection(
        client.responses.create({ model: "m", input: "hi" }),
      )) as APIError;
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(error.headers?.get("x-should-retry")).toBe("true");
    });
    await withSim({ faults: { pMalformed: 1 } }, async (_sim, client) => {
      const stream = await client.responses.create({ model: "m", input: "hi", stream: true });
      const error = await rejection(
        (async () => {
          for await (const _ of stream) {
          }
        })(),
      );
      expect(error).toBeInstanceOf(SyntaxError);
    });
  });
});

// Every integration against the simulator under the same load: 4 server slots, 300 RPM, 50 calls
// at once, 5% injected 500s. Through salvoFetch and wrapOpenAI (chat completions, the Responses
// API and embeddings, plain and streamed), wrapAnthropic (plain and streamed), the AI SDK
// middleware (generateText, streamText) and LangChain (ChatOpenAI.invoke and .batch), each run
// shows on the simulator's own statistics: zero 429s, never more than 4 requests at the server,
// every answer to the call that asked, and exactly one HTTP request per attempt Salvo counted (no
// retries but Salvo's).

import { createOpenAI } from "@ai-sdk/openai";
import Anthropic from "@anthropic-ai/sdk";
import { ChatOpenAI } from "@langchain/openai";
import { generateText, streamText, wrapLanguageModel } from "ai";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { salvoMiddleware } from "../src/integrations/ai-sdk.ts";
import { langchainOpenAI } from "../src/integrations/langchain.ts";
import { salvoFetch } from "../src/integrations/salvo-fetch.ts";
import { wrapAnthropic } from "../src/integrations/wrap-anthropic.ts";
import { wrapOpenAI } from "../src/integrations/wrap-openai.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import { Salvo } from "../src/salvo.ts";
import {
  expectedEmbedding,
  expectedMarker,
  type SimHandle,
  startSimulator,
} from "../src/sim/index.ts";

const KEY = "sk-test-integration-not-a-real-key";
const CALLS = 50;
const SLOTS = 4;
const RPM = 300;
// Six seconds of burst on both sides: the RPM bucket still paces most of the 50 calls, in seconds.
const BURST_SECONDS = 6;

type Run = { sim: SimHandle; salvo: Salvo; attempts: () => number };

async function underLoad(seed: number, body: (run: Run) => Promise<void>): Promise<void> {
  const sim = await startSimulator({
    seed,
    capacity: { slots: SLOTS },
    limits: { rpm: RPM, burstSeconds: BURST_SECONDS },
    latency: { ttftMs: 15, msPerToken: 1 },
    output: { tokens: 8 },
    faults: { p500: 0.05 },
  });
  // The provider is never called: the integrations send through their own HTTP paths.
  const salvo = new Salvo({
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
    concurrency: SLOTS,
    requestsPerMinute: RPM,
    burstSeconds: BURST_SECONDS,
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
  });
  let attempts = 0;
  salvo.scheduler.on("started", () => {
    attempts++;
  });
  try {
    await body({ sim, salvo, attempts: () => attempts });
    const stats = sim.stats({ timeline: false });
    expect(stats.byStatus["429"] ?? 0, "429s").toBe(0);
    expect(stats.maxInServer, "requests at the server at once").toBeLessThanOrEqual(SLOTS);
    expect(stats.arrivals, "HTTP requests = Salvo's attempts").toBe(attempts);
    expect(stats.byStatus["500"] ?? 0, "the injected 500s were retried").toBeGreaterThan(0);
    expect(stats.completions).toBe(CALLS);
  } finally {
    await salvo.close();
    await sim.close();
  }
}

const prompt = (i: number) => `question ${i}: what is ${i} squared?`;
const marker = (i: number) => expectedMarker([{ role: "user", content: prompt(i) }]);

/** One of five OpenAI calls per index: chat, streamed chat, response, streamed response, embedding. */
async function openaiCall(client: OpenAI, i: number): Promise<void> {
  const model = "sim-gpt";
  const messages = [{ role: "user" as const, content: prompt(i) }];
  switch (i % 5) {
    case 0: {
      const answer = await client.chat.completions.create({ model, messages });
      expect(answer.choices[0]?.message.content?.startsWith(marker(i))).toBe(true);
      return;
    }
    case 1: {
      const stream = await client.chat.completions.create({ model, messages, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      expect(text.startsWith(marker(i))).toBe(true);
      return;
    }
    case 2: {
      const response = await client.responses.create({ model, input: prompt(i) });
      expect(response.output_text.startsWith(marker(i))).toBe(true);
      return;
    }
    case 3: {
      const stream = await client.responses.create({ model, input: prompt(i), stream: true });
      let text = "";
      for await (const event of stream) {
        if (event.type === "response.output_text.delta") text += event.delta;
      }
      expect(text.startsWith(marker(i))).toBe(true);
      return;
    }
    default: {
      const result = await client.embeddings.create({
        model: "text-embedding-3-small",
        input: prompt(i),
        dimensions: 8,
      });
      expect(result.data[0]?.embedding).toEqual(Array.from(expectedEmbedding(prompt(i), 8)));
    }
  }
}

const indices = Array.from({ length: CALLS }, (_, i) => i);

describe.concurrent("integrations under load: 4 slots, 300 RPM, 50 calls at once", () => {
  it("openai through salvoFetch: chat, responses, embeddings, streamed", async () => {
    await underLoad(11, async ({ sim, salvo }) => {
      const client = new OpenAI({
        baseURL: sim.baseUrl,
        apiKey: KEY,
        fetch: salvoFetch(salvo),
        maxRetries: 0,
      });
      await Promise.all(indices.map((i) => openaiCall(client, i)));
    });
  });

  it("openai through wrapOpenAI: chat, responses, embeddings, streamed", async () => {
    await underLoad(12, async ({ sim, salvo }) => {
      const client = wrapOpenAI(new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY }), salvo);
      await Promise.all(indices.map((i) => openaiCall(client, i)));
    });
  });

  it("anthropic through wrapAnthropic: messages, plain and streamed", async () => {
    await underLoad(13, async ({ sim, salvo }) => {
      const client = wrapAnthropic(new Anthropic({ baseURL: sim.origin, apiKey: KEY }), salvo);
      await Promise.all(
        indices.map(async (i) => {
          const body = {
            model: "sim-claude",
            max_tokens: 64,
            messages: [{ role: "user" as const, content: prompt(i) }],
          };
          if (i % 2 === 0) {
            const message = await client.messages.create(body);
            const block = message.content[0];
            expect(block?.type === "text" && block.text.startsWith(marker(i))).toBe(true);
            return;
          }
          const stream = await client.messages.create({ ...body, stream: true });
          let text = "";
          for await (const event of stream) {
            if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
              text += event.delta.text;
            }
          }
          expect(text.startsWith(marker(i))).toBe(true);
        }),
      );
    });
  });

  it("the AI SDK through salvoMiddleware: generateText and streamText", async () => {
    await underLoad(14, async ({ sim, salvo }) => {
      const provider = createOpenAI({ baseURL: sim.baseUrl, apiKey: KEY });
      const model = wrapLanguageModel({
        model: provider.chat("sim-gpt"),
        middleware: salvoMiddleware(salvo),
      });
      await Promise.all(
        indices.map(async (i) => {
          if (i % 2 === 0) {
            const result = await generateText({ model, prompt: prompt(i) });
            expect(result.text.startsWith(marker(i))).toBe(true);
            return;
          }
          const result = streamText({ model, prompt: prompt(i) });
          expect((await result.text).startsWith(marker(i))).toBe(true);
        }),
      );
    });
  });

  it("LangChain ChatOpenAI through salvoFetch: .invoke and .batch", async () => {
    await underLoad(15, async ({ sim, salvo }) => {
      const chat = new ChatOpenAI(
        langchainOpenAI(salvo, {
          model: "sim-gpt",
          apiKey: KEY,
          configuration: { baseURL: sim.baseUrl },
        }),
      );
      const half = CALLS / 2;
      const [invoked, batched] = await Promise.all([
        Promise.all(indices.slice(0, half).map((i) => chat.invoke(prompt(i)))),
        chat.batch(indices.slice(half).map(prompt)),
      ]);
      [...invoked, ...batched].forEach((message, i) => {
        expect(String(message.content).startsWith(marker(i))).toBe(true);
      });
    });
  });
});

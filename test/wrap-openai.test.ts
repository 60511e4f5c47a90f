// wrapOpenAI: existing OpenAI code, one line changed, goes through Salvo's scheduler.
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { Scheduler } from "../src/core/scheduler.ts";
import { QuotaExceededError } from "../src/errors.ts";
import { wrapOpenAI } from "../src/integrations/wrap-openai.ts";
import { expectedMarker, type SimHandle, startSimulator } from "../src/sim/index.ts";

let sim: SimHandle | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe("wrapOpenAI", () => {
  it("keeps the client's types and answers, and the scheduler's limit holds", async () => {
    sim = await startSimulator({ latency: { ttftMs: 30 }, output: { tokens: 5 } });
    const scheduler = new Scheduler({ concurrency: 3 });
    const client = wrapOpenAI(
      new OpenAI({ baseURL: sim.baseUrl, apiKey: "sk-test-wrap" }),
      scheduler,
    );
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        client.chat.completions.create({
          model: "gpt-4o-mini",
          messages: [{ role: "user", content: `claim ${i}` }],
        }),
      ),
    );
    answers.forEach((answer, i) => {
      expect(
        answer.choices[0]?.message.content?.startsWith(
          expectedMarker([{ role: "user", content: `claim ${i}` }]),
        ),
      ).toBe(true);
    });
    expect(sim.stats().maxInService).toBe(3);
    // Everything else on the client is untouched.
    expect((await client.models.list()).data.length).toBeGreaterThan(0);
  });

  it("streams, holding the slot until the stream is read", async () => {
    sim = await startSimulator({ latency: { ttftMs: 10, msPerToken: 2 }, output: { tokens: 6 } });
    const scheduler = new Scheduler({ concurrency: 1 });
    const client = wrapOpenAI(
      new OpenAI({ baseURL: sim.baseUrl, apiKey: "sk-test-wrap" }),
      scheduler,
    );
    const texts = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const stream = await client.chat.completions.create({
          model: "gpt-4o-mini",
          stream: true,
          messages: [{ role: "user", content: `stream ${i}` }],
        });
        let text = "";
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
        return text;
      }),
    );
    texts.forEach((text, i) => {
      expect(text.startsWith(expectedMarker([{ role: "user", content: `stream ${i}` }]))).toBe(
        true,
      );
    });
    expect(sim.stats().maxInService).toBe(1);
  });

  it("surfaces Salvo's typed errors", async () => {
    sim = await startSimulator({ quota: true });
    const client = wrapOpenAI(
      new OpenAI({ baseURL: sim.baseUrl, apiKey: "sk-test-wrap" }),
      new Scheduler(),
    );
    const body = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "x" }] };
    await expect(client.chat.completions.create(body)).rejects.toBeInstanceOf(QuotaExceededError);
    expect(sim.stats().arrivals).toBe(1); // a quota error is never retried
  });
});

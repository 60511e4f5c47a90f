// Each injected fault as a real client sees it, and determinism: the same seed gives the same
// answers and the same fault sequence.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  expectedMarker,
  loadScenario,
  type SimConfigInput,
  type SimHandle,
  startSimulator,
} from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";
import { until } from "./support/until.ts";

const KEY = "sk-test-not-a-real-key";

/** What the SDK logged (it reports a stream it cannot parse to its logger, by default the console). */
type Logged = { level: string; message: string }[];

async function withSim<T>(
  config: SimConfigInput,
  fn: (sim: SimHandle, client: OpenAI, logged: Logged) => Promise<T>,
) {
  const sim = await startSimulator(config);
  const logged: Logged = [];
  const log = (level: string) => (message: string) => logged.push({ level, message });
  const logger = { error: log("error"), warn: log("warn"), info: log("info"), debug: log("debug") };
  try {
    return await fn(
      sim,
      new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY, maxRetries: 0, timeout: 2000, logger }),
      logged,
    );
  } finally {
    await sim.close();
  }
}

const messages = [{ role: "user" as const, content: "fault me" }];
const ask = (client: OpenAI, options: OpenAI.RequestOptions = {}) =>
  client.chat.completions.create({ model: "m", messages }, options);

describe("simulator faults", () => {
  it("reset: the connection drops and the SDK reports a connection error", async () => {
    await withSim({ faults: { pReset: 1 } }, async (sim, client) => {
      const error = await rejection(ask(client));
      expect(error).toBeInstanceOf(OpenAI.APIConnectionError);
      expect(error).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
      const stats = sim.stats();
      expect(stats.byFault.reset).toBe(1);
      expect(stats.byStatus).toEqual({ 0: 1 });
      expect(stats.inService).toBe(0);
    });
  });

  it("malformed and truncated: status 200 with a body the SDK cannot parse", async () => {
    for (const faults of [{ pMalformed: 1 }, { pTruncated: 1 }]) {
      await withSim({ faults }, async (sim, client) => {
        const error = await rejection(ask(client));
        expect(error).toBeInstanceOf(SyntaxError);
        const raw = await fetch(`${sim.baseUrl}/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: "m", messages }),
        });
        expect(raw.status).toBe(200);
        const text = await raw.text();
        expect(() => JSON.parse(text)).toThrow(SyntaxError);
        expect(sim.stats().byStatus).toEqual({ 200: 2 });
        expect(sim.stats().completions).toBe(0);
      });
    }
  });

  it("malformed and truncated streams: a parse failure or a stream without its terminator", async () => {
    await withSim(
      { faults: { pMalformed: 1 }, output: { tokens: 4 } },
      async (_sim, client, logged) => {
        const stream = await client.chat.completions.create({ model: "m", messages, stream: true });
        const error = await rejection(
          (async () => {
            for await (const _ of stream) {
              // consume
            }
          })(),
        );
        expect(error).toBeInstanceOf(SyntaxError);
        // The SDK reports the bad event to its logger (here, not the test's output).
        expect(logged.map((l) => [l.level, l.message])).toContainEqual([
          "error",
          "Could not parse message into JSON:",
        ]);
      },
    );
    await withSim({ faults: { pTruncated: 1 }, output: { tokens: 10 } }, async (sim) => {
      const raw = await fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "m", messages, stream: true }),
      });
      const text = await raw.text();
      expect(text).not.toContain("[DONE]");
      expect(text).not.toContain('finish_reason":"stop');
      expect(sim.stats().timeline[0]).toMatchObject({ fault: "truncated", outputTokens: 5 });
    });
  });

  it("hang: the client times out, the slot is freed, and close() does not wait for hangers", async () => {
    await withSim({ faults: { pHang: 1 }, capacity: { slots: 1 } }, async (sim, client) => {
      const error = await rejection(ask(client, { timeout: 80 }));
      expect(error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
      // The server learns of the client's timeout when the socket closes: wait for that.
      await until(() => sim.stats({ timeline: false }).ended === 1);
      const stats = sim.stats();
      expect(stats.byFault.hang).toBe(1);
      expect(stats.byStatus).toEqual({ 499: 1 });
      expect(stats.inService).toBe(0);
      // Another hanging request with no client timeout: close() must cut it.
      const pending = fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "m", messages }),
      });
      await until(() => sim.stats({ timeline: false }).inService === 1);
      // close() must not wait for the hanging request (it never ends by itself): if it did,
      // this would never resolve.
      await sim.close();
      await expect(pending).rejects.toThrow();
      expect(sim.stats().byStatus).toEqual({ 0: 1, 499: 1 });
    });
  });

  it("slow first byte: a normal answer, late", async () => {
    await withSim({ faults: { pSlow: 1, slowMs: 120 } }, async (sim, client) => {
      const started = performance.now();
      const answer = await ask(client);
      expect(performance.now() - started).toBeGreaterThanOrEqual(115);
      expect(answer.choices[0]?.message.content?.startsWith(expectedMarker(messages))).toBe(true);
      expect(sim.stats().byFault.slow_first_byte).toBe(1);
      expect(sim.stats().completions).toBe(1);
    });
  });

  it("the fault-storm scenario injects every kind and every request still ends once", async () => {
    const scenario = await loadScenario("scenarios/fault-storm.yaml");
    await withSim(
      { ...scenario, faults: { ...scenario.faults, slowMs: 30 }, latency: { ttftMs: 1 } },
      async (sim, client) => {
        // No client timeout: a client that gives up while an answer is on its way (a loaded
        // machine) would count as a failure the server completed. The hangs end at close().
        const settled = Promise.allSettled(
          Array.from({ length: 200 }, (_, i) =>
            client.chat.completions.create(
              { model: "m", messages: [{ role: "user", content: `storm ${i}` }] },
              { timeout: 60_000 },
            ),
          ),
        );
        await until(() => {
          const s = sim.stats({ timeline: false });
          return s.arrivals === 200 && s.ended === 200 - s.byFault.hang;
        });
        await sim.close();
        const results = await settled;
        const stats = sim.stats();
        expect(stats.ended).toBe(200);
        for (const kind of Object.keys(stats.byFault) as (keyof typeof stats.byFault)[]) {
          expect(stats.byFault[kind], kind).toBeGreaterThan(0);
        }
        const ok = results.filter((r) => r.status === "fulfilled").length;
        expect(ok).toBe(stats.completions);
      },
    );
  });
});

describe("simulator faults that echo the caller's key", () => {
  it("echoKeyHeader, echoKeyAnswer: the credential as sent, in the request-id header and the answer", async () => {
    await withSim({ faults: { echoKeyHeader: true, echoKeyAnswer: true } }, async (sim) => {
      const openai = await fetch(`${sim.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: "m", messages }),
      });
      expect(openai.headers.get("x-request-id")).toMatch(new RegExp(`^req_sim\\w+ Bearer ${KEY}$`));
      const body = (await openai.json()) as { choices: [{ message: { content: string } }] };
      expect(body.choices[0].message.content.endsWith(` Bearer ${KEY}`)).toBe(true);
      const anthropic = await fetch(`${sim.origin}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": KEY, "anthropic-version": "2023-06-01" },
        body: JSON.stringify({ model: "m", max_tokens: 8, messages }),
      });
      expect(anthropic.headers.get("request-id")?.endsWith(` ${KEY}`)).toBe(true);
      expect(await anthropic.text()).toContain(KEY);
    });
  });

  it("pEchoKeyError: a 401 quoting the key, drawn apart from the other faults", async () => {
    await withSim({ faults: { pEchoKeyError: 1 } }, async (_sim, client) => {
      const error = await rejection<InstanceType<typeof OpenAI.APIError>>(ask(client));
      expect(error.status).toBe(401);
      expect(error.message).toContain(`Incorrect API key provided: Bearer ${KEY}`);
    });
    // The same seed gives the same fault sequence with or without the echo errors.
    const faults = async (config: SimConfigInput) =>
      withSim(config, async (sim) => {
        for (let i = 0; i < 30; i++)
          await fetch(`${sim.baseUrl}/chat/completions`, {
            method: "POST",
            body: JSON.stringify({ model: "m", messages }),
          }).then((r) => r.text());
        return sim.stats().timeline.map((e) => [e.status, e.fault]);
      });
    const plain = await faults({ faults: { p500: 0.3 } });
    const echoing = await faults({ faults: { p500: 0.3, pEchoKeyError: 0.3 } });
    expect(echoing.filter(([status]) => status === 401).length).toBeGreaterThan(3);
    const drawn = (list: unknown[][]) => list.map(([, fault]) => fault);
    expect(drawn(echoing)).toEqual(drawn(plain).map((f, i) => (echoing[i]![0] === 401 ? null : f)));
  });
});

describe("simulator determinism", () => {
  const config: SimConfigInput = {
    seed: 42,
    output: { tokens: { min: 3, max: 40 } },
    latency: { ttftMs: 1, jitter: 0.5 },
    faults: { p500: 0.2, p503: 0.1, pMalformed: 0.1 },
  };

  async function run(seed: number) {
    return withSim({ ...config, seed }, async (sim) => {
      const outcomes: string[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await fetch(`${sim.baseUrl}/chat/completions`, {
          method: "POST",
          body: JSON.stringify({
            model: "m",
            messages: [{ role: "user", content: `question ${i}` }],
          }),
        });
        outcomes.push(
          `${r.status} ${await r.text().then((t) => t.replace(/"(created|id)":("[^"]*"|\d+),/g, ""))}`,
        );
      }
      return { outcomes, faults: sim.stats().timeline.map((e) => e.fault) };
    });
  }

  it("the same seed gives the same answers and the same fault sequence; another seed does not", async () => {
    const a = await run(42);
    const b = await run(42);
    const c = await run(43);
    expect(b.outcomes).toEqual(a.outcomes);
    expect(b.faults).toEqual(a.faults);
    expect(a.faults.filter((f) => f !== null).length).toBeGreaterThan(3);
    expect(c.faults).not.toEqual(a.faults);
  });

  it("the answer is a function of the prompt: the same prompt gets the same answer in any order", async () => {
    await withSim({ output: { tokens: { min: 3, max: 40 } } }, async (_sim, client) => {
      const prompts = Array.from({ length: 10 }, (_, i) => `p${i}`);
      const askAll = (order: string[]) =>
        Promise.all(
          order.map((content) =>
            client.chat.completions.create({ model: "m", messages: [{ role: "user", content }] }),
          ),
        );
      const forward = await askAll(prompts);
      const backward = (await askAll([...prompts].reverse())).reverse();
      expect(backward.map((a) => a.choices[0]?.message.content)).toEqual(
        forward.map((a) => a.choices[0]?.message.content),
      );
      forward.forEach((answer, i) => {
        expect(
          answer.choices[0]?.message.content?.startsWith(
            expectedMarker([{ role: "user", content: prompts[i]! }]),
          ),
        ).toBe(true);
      });
      expect(new Set(forward.map((a) => a.usage?.completion_tokens)).size).toBeGreaterThan(1);
    });
  });
});

// `salvo run --backend batch` against the simulator's batch APIs: the usual ordered output from
// the provider's batch API, at the batch price, split at the provider's limits; lines that expire
// or error in the batch run in real time; a batch not back in time for the run deadline is
// cancelled; a crash between steps re-attaches instead of resubmitting; the budget knows the
// batch price.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { AnthropicBatchClient } from "../src/batch/anthropic-batch-client.ts";
import { OpenAIBatchClient } from "../src/batch/openai-batch-client.ts";
import type { ProviderBatchClient } from "../src/batch/provider-batch-client.ts";
import { runBatchFile } from "../src/batch/run-batch-file.ts";
import { runCli } from "../src/cli/main.ts";
import { Pricing } from "../src/cost/pricing.ts";
import { expectedMarker, type SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-backend-batch-");
const KEY = "sk-backend-batch-test-not-a-key";
const pricing = new Pricing();

const question = (i: number) => `Is claim line ${i} covered by the policy?`;

async function openaiInput(n: number, model = (_i: number) => "gpt-4o-mini"): Promise<string> {
  const path = join(ws.dir, "in.jsonl");
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `claim-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: model(i), max_tokens: 20, messages: [{ role: "user", content: question(i) }] },
    }),
  );
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

type Line = {
  custom_id: string;
  line: number;
  error: { code: string } | null;
  response: { status_code: number; body: Record<string, unknown> } | null;
  usage: { input_tokens: number; output_tokens: number } | null;
  cost_usd?: number;
  batch_id?: string;
};

async function outputLines(path: string): Promise<Line[]> {
  return (await readFile(path, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Line);
}

function answerText(line: Line): string {
  const body = line.response?.body as {
    choices?: Array<{ message: { content: string } }>;
    content?: Array<{ text: string }>;
  };
  return body.choices?.[0]?.message.content ?? body.content?.[0]?.text ?? "";
}

/** Every line in input order, answered, with the answer to its own question. */
function expectOrderedAnswers(lines: Line[], n: number): void {
  expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: n }, (_, i) => `claim-${i}`));
  lines.forEach((line, i) => {
    expect(line.line).toBe(i + 1);
    expect(line.error, JSON.stringify(line.error)).toBeNull();
    expect(
      answerText(line).startsWith(expectedMarker([{ role: "user", content: question(i) }])),
    ).toBe(true);
  });
}

const fullPrice = (line: Line, model = "gpt-4o-mini") =>
  pricing.cost(model, {
    inputTokens: line.usage!.input_tokens,
    outputTokens: line.usage!.output_tokens,
  }).usd!;

describe("salvo run --backend batch", () => {
  it("writes the usual ordered output from the batch API at the batch price; expired lines run in real time", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 1200, expiryMs: 800 } });
    const input = await openaiInput(30);
    const output = join(ws.dir, "out.jsonl");
    const report = join(ws.dir, "report.json");
    const calls = join(ws.dir, "calls.log");
    const io = memoryIo({ OPENAI_API_KEY: KEY });
    const code = await runCli(
      [
        "run",
        input,
        "-o",
        output,
        "--base-url",
        sim.baseUrl,
        "--backend",
        "batch",
        "--progress",
        "none",
        "--report",
        report,
        "--audit",
        calls,
      ],
      io,
    );
    expect(code, io.err).toBe(0);
    const lines = await outputLines(output);
    expectOrderedAnswers(lines, 30);
    const stats = sim.stats({ timeline: false });
    expect(stats.batch.submitted).toEqual({ openai: 1, anthropic: 0 });
    // Two thirds were processed before the window closed; the rest expired and ran in real time.
    expect(stats.batch.succeeded).toBe(20);
    expect(stats.batch.expired).toBe(10);
    expect(stats.completions).toBe(10);
    const batched = lines.filter((l) => l.batch_id !== undefined);
    const realtime = lines.filter((l) => l.batch_id === undefined);
    expect(batched).toHaveLength(20);
    expect(realtime).toHaveLength(10);
    for (const line of batched) expect(line.cost_usd).toBeCloseTo(fullPrice(line) / 2, 12);
    for (const line of realtime) expect(line.cost_usd).toBeCloseTo(fullPrice(line), 12);
    const total = lines.reduce((sum, l) => sum + l.cost_usd!, 0);
    const json = JSON.parse(await readFile(report, "utf8"));
    expect(json.run.cost.usd).toBeCloseTo(total, 12);
    expect(json.run.batched).toBe(20);
    expect(json.backend).toMatchObject({
      backend: "batch",
      submitted: 1,
      reattached: 0,
      answered: 20,
      fellBack: 10,
      notRun: 0,
    });
    expect(json.backend.costUsd).toBeCloseTo(
      batched.reduce((sum, l) => sum + l.cost_usd!, 0),
      12,
    );
    expect(io.out).toMatch(/batch API answered 20 lines for \$[\d.]+ at the batch price/);
    expect(io.out).toMatch(/10 that it errored or did not run were run in real time/);
    // A finished run leaves only its output (and the report).
    for (const leftover of [".journal", ".batches.json", ".batches.jsonl"])
      expect(existsSync(`${output}${leftover}`), leftover).toBe(false);
    // The call log has a record of every answer, the batch API's included, and verifies.
    const log = (await readFile(calls, "utf8")).trim().split("\n");
    const answers = log.filter((l) => l.includes('"gen_ai.usage.output_tokens"'));
    expect(answers).toHaveLength(30);
    expect(answers.filter((l) => l.includes('"salvo_batch_id":"batch_')).length).toBe(20);
    const verify = memoryIo();
    expect(await runCli(["verify", calls], verify), verify.out + verify.err).toBe(0);
    // The key reaches no file and no message.
    for (const text of [
      await readFile(output, "utf8"),
      await readFile(calls, "utf8"),
      JSON.stringify(json),
      io.out,
      io.err,
    ])
      expect(text).not.toContain(KEY);
  });

  it("answers the response cache holds are not sent to a batch: the cache answers them for nothing", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 200 } });
    const path = join(ws.dir, "in.jsonl");
    const line = (i: number) =>
      JSON.stringify({
        custom_id: `claim-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "gpt-4o-mini",
          max_tokens: 20,
          temperature: 0,
          messages: [{ role: "user", content: question(i) }],
        },
      });
    const cache = join(ws.dir, "cache");
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    // A first run caches the answers of the first 10 lines.
    await writeFile(path, `${Array.from({ length: 10 }, (_, i) => line(i)).join("\n")}\n`);
    await runBatchFile({ input: path, output: join(ws.dir, "first.jsonl"), cache, env });
    await writeFile(path, `${Array.from({ length: 20 }, (_, i) => line(i)).join("\n")}\n`);
    const output = join(ws.dir, "out.jsonl");
    const result = await runBatchFile({
      input: path,
      output,
      cache,
      backend: "batch",
      env,
      batchPollMs: { minMs: 100 },
    });
    expect(result.status).toBe("completed");
    const lines = await outputLines(output);
    expectOrderedAnswers(lines, 20);
    expect(sim.stats({ timeline: false }).batch.requests).toBe(10);
    expect(lines.slice(0, 10).every((l) => (l as { cached?: boolean }).cached === true)).toBe(true);
    expect(lines.slice(10).every((l) => l.batch_id !== undefined)).toBe(true);
  });

  it("splits at the provider's limits (requests per batch, bytes per file) and one model per batch", async () => {
    const limits = { maxRequests: 6, maxBytes: 1600 };
    const sim = await ws.simulator({ batch: { completionMs: 200, ...limits } });
    const input = await openaiInput(25, (i) => (i % 5 === 0 ? "gpt-4o" : "gpt-4o-mini"));
    const output = join(ws.dir, "out.jsonl");
    const result = await runBatchFile({
      input,
      output,
      backend: "batch",
      env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl },
      batchClient: new OpenAIBatchClient({ baseURL: sim.baseUrl, apiKey: KEY, limits }),
      batchPollMs: { minMs: 100 },
    });
    expect(result.status).toBe("completed");
    expectOrderedAnswers(await outputLines(output), 25);
    const stats = sim.stats({ timeline: false });
    // The simulator fails a batch over its limits: every request was answered by a batch.
    expect(stats.batch.succeeded).toBe(25);
    expect(stats.completions).toBe(0);
    const client = new OpenAI({ baseURL: sim.baseUrl, apiKey: KEY, maxRetries: 0 });
    const batches: OpenAI.Batches.Batch[] = [];
    for await (const batch of client.batches.list()) batches.push(batch);
    expect(batches.length).toBe(stats.batch.submitted.openai);
    // 5 gpt-4o lines in one batch; 20 gpt-4o-mini lines in at least 4 (6 per batch, 1600 bytes).
    expect(batches.length).toBeGreaterThanOrEqual(5);
    for (const batch of batches) {
      expect(batch.status).toBe("completed");
      expect(batch.request_counts!.total).toBeLessThanOrEqual(limits.maxRequests);
      expect((await client.files.retrieve(batch.input_file_id)).bytes).toBeLessThanOrEqual(
        limits.maxBytes,
      );
    }
    expect(new Set(batches.map((b) => b.model))).toEqual(new Set(["gpt-4o", "gpt-4o-mini"]));
    // The bytes limit cut some gpt-4o-mini batches below 6 requests.
    expect(batches.some((b) => b.model === "gpt-4o-mini" && b.request_counts!.total < 6)).toBe(
      true,
    );
  });

  it("Anthropic lines go to Message Batches; an errored line runs in real time", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 300, pError: 0.25 } });
    const path = join(ws.dir, "in.jsonl");
    await writeFile(
      path,
      Array.from({ length: 20 }, (_, i) =>
        JSON.stringify({
          custom_id: `claim-${i}`,
          params: {
            model: "claude-haiku-4-5",
            max_tokens: 20,
            messages: [{ role: "user", content: question(i) }],
          },
        }),
      ).join("\n"),
    );
    const output = join(ws.dir, "out.jsonl");
    const result = await runBatchFile({
      input: path,
      output,
      backend: "batch",
      env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: sim.origin },
      batchPollMs: { minMs: 100 },
    });
    expect(result.status).toBe("completed");
    const lines = await outputLines(output);
    expectOrderedAnswers(lines, 20);
    const stats = sim.stats({ timeline: false });
    expect(stats.batch.submitted.anthropic).toBe(1);
    expect(stats.batch.errored).toBeGreaterThan(0);
    expect(stats.completions).toBe(stats.batch.errored);
    for (const line of lines.filter((l) => l.batch_id))
      expect(line.cost_usd).toBeCloseTo(fullPrice(line, "claude-haiku-4-5") / 2, 12);
    expect(result.backend?.fellBack).toBe(stats.batch.errored);
  });

  it("a batch not back in time for the run deadline is cancelled, and its lines finish in real time before it", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 60_000 } });
    const input = await openaiInput(20);
    const output = join(ws.dir, "out.jsonl");
    const started = Date.now();
    let cancelled = "";
    const result = await runBatchFile({
      input,
      output,
      backend: "batch",
      runDeadline: 5000,
      realtimeLatency: { ms: 50, source: "test" },
      concurrency: 4,
      env: { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl },
      // The last call keeps two polls (2 s) beside what real time needs (1.5x M*, 375 ms).
      batchPollMs: { minMs: 1000 },
      onEvent: (event) => {
        if (event.type === "batch-cancelled") cancelled = event.reason;
      },
    });
    const took = Date.now() - started;
    expect(result.status).toBe("completed");
    expectOrderedAnswers(await outputLines(output), 20);
    const stats = sim.stats({ timeline: false });
    expect(stats.batch.cancels).toBe(1);
    expect(stats.batch.cancelled).toBe(20);
    expect(stats.completions).toBe(20);
    // Cancelled at the last call: when what is left is what real time needs, plus two polls.
    const [, away, needs] = /deadline is ([\d.]+)s away and real time needs about (\d+)ms/.exec(
      cancelled,
    )!;
    expect(Number(away) * 1000).toBeGreaterThan(Number(needs) + 2000 - 100);
    expect(took).toBeLessThan(5000);
    expect(result.backend?.fellBack).toBe(20);
  });

  it("--max-cost knows the batch price: a budget the batch price fits but real time would not runs every line in the batch", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 200 } });
    const input = await openaiInput(20);
    const output = join(ws.dir, "out.jsonl");
    // Each line's bound: its prompt + 20 output tokens at gpt-4o-mini's price; in all about
    // 20 * (16 * 0.15 + 20 * 0.6) / 1e6 = $0.000288 in real time, half in the batch API.
    const io = memoryIo({ OPENAI_API_KEY: KEY });
    const code = await runCli(
      ["run", input, "-o", output, "--base-url", sim.baseUrl, "--backend", "batch"].concat([
        "--max-cost",
        "0.0002",
        "--progress",
        "none",
      ]),
      io,
    );
    expect(code, io.err).toBe(0);
    const lines = await outputLines(output);
    expectOrderedAnswers(lines, 20);
    expect(lines.every((l) => l.batch_id !== undefined)).toBe(true);
    expect(lines.reduce((sum, l) => sum + l.cost_usd!, 0)).toBeLessThanOrEqual(0.0002);

    // A budget below even the batch price: what fits is submitted, the rest is refused (exit 3),
    // and a rerun with a larger budget runs exactly those, in a batch of their own.
    const second = join(ws.dir, "second.jsonl");
    const small = memoryIo({ OPENAI_API_KEY: KEY });
    const args = ["run", input, "-o", second, "--base-url", sim.baseUrl, "--backend", "batch"];
    expect(await runCli([...args, "--max-cost", "0.00007", "--progress", "none"], small)).toBe(3);
    const partial = await outputLines(second);
    const refused = partial.filter((l) => l.error?.code === "SALVO_BUDGET_EXCEEDED");
    expect(refused.length).toBeGreaterThan(0);
    expect(partial.length - refused.length).toBeGreaterThan(0);
    const before = sim.stats({ timeline: false }).batch.requests;
    const rerun = memoryIo({ OPENAI_API_KEY: KEY });
    expect(await runCli([...args, "--max-cost", "1", "--progress", "none"], rerun), rerun.err).toBe(
      0,
    );
    expectOrderedAnswers(await outputLines(second), 20);
    expect(sim.stats({ timeline: false }).batch.requests - before).toBe(refused.length);
  });
});

/** A batch client that sends its create call and is then cut off, as a crash there would leave it. */
function cutAfterCreate(real: ProviderBatchClient, reached: boolean): ProviderBatchClient {
  return new Proxy(real, {
    get(target, key) {
      if (key !== "create") {
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      }
      return async (input: Parameters<ProviderBatchClient["create"]>[0], signal: AbortSignal) => {
        if (reached) await target.create(input, signal);
        return new Promise<string>((_, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      };
    },
  });
}

async function runs(
  sim: SimHandle,
  provider: "openai" | "anthropic",
  input: string,
  output: string,
  client?: ProviderBatchClient,
) {
  const stop = new AbortController();
  const submitted = () => {
    const s = sim.stats({ timeline: false }).batch;
    return s.submitted.openai + s.submitted.anthropic;
  };
  const env =
    provider === "openai"
      ? { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl }
      : { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: sim.origin };
  const run = runBatchFile({
    input,
    output,
    backend: "batch",
    env,
    batchClient: client,
    batchPollMs: { minMs: 100 },
    signal: client ? stop.signal : undefined,
    onEvent: (event) => {
      if (event.type === "backend-plan") void waitThenStop();
    },
  });
  async function waitThenStop() {
    // Cut off once the create call is in flight (and, when it reaches the provider, has landed).
    for (let i = 0; i < 200; i++) {
      const state = existsSync(`${output}.batches.json`)
        ? (JSON.parse(await readFile(`${output}.batches.json`, "utf8")) as {
            chunks: Array<{ phase: string }>;
          })
        : undefined;
      if (state?.chunks[0]?.phase === "creating") break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    stop.abort(new Error("crash"));
  }
  return { result: await run, submitted: submitted() };
}

describe("the batch backend resumes across a crash in any phase", () => {
  it("one run per output: a second run while the first polls is refused before it submits anything", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 60_000 } });
    const input = await openaiInput(5);
    const output = join(ws.dir, "out.jsonl");
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const stop = new AbortController();
    let submitted!: () => void;
    const polling = new Promise<void>((resolve) => {
      submitted = resolve;
    });
    const first = runBatchFile({
      input,
      output,
      backend: "batch",
      env,
      signal: stop.signal,
      onEvent: (event) => {
        if (event.type === "batch-submitted") submitted();
      },
    });
    await polling;
    const seen: string[] = [];
    await expect(
      runBatchFile({
        input,
        output,
        backend: "batch",
        env,
        onEvent: (event) => seen.push(event.type),
      }),
    ).rejects.toMatchObject({ code: "SALVO_LOCKED" });
    // Refused before it read or touched the batches: it did not even re-attach to them.
    expect(seen).toEqual([]);
    expect(sim.stats({ timeline: false }).batch.submitted.openai).toBe(1);
    stop.abort(new Error("received SIGINT"));
    expect((await first).status).toBe("interrupted");
  });

  it("Ctrl-C while polling stops the run; the rerun re-attaches to the batch and does not resubmit", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 1500 } });
    const input = await openaiInput(15);
    const output = join(ws.dir, "out.jsonl");
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const stop = new AbortController();
    const first = await runBatchFile({
      input,
      output,
      backend: "batch",
      env,
      batchPollMs: { minMs: 100 },
      signal: stop.signal,
      onEvent: (event) => {
        if (event.type === "batch-status") stop.abort(new Error("received SIGINT"));
      },
    });
    expect(first.status).toBe("interrupted");
    expect(existsSync(`${output}.batches.json`)).toBe(true);
    // A real-time rerun would not wait for that batch: it says so.
    const warnings: string[] = [];
    const elsewhere = await runBatchFile({
      input,
      output: join(ws.dir, "other.jsonl"),
      env,
      onEvent: (event) => {
        if (event.type === "warning") warnings.push(event.message);
      },
    });
    expect(elsewhere.status).toBe("completed");
    expect(warnings).toEqual([]); // another output has no batches at the provider
    const realtimeWarnings: string[] = [];
    const probe = runBatchFile({
      input,
      output,
      env,
      signal: AbortSignal.abort(new Error("only the start")),
      onEvent: (event) => {
        if (event.type === "warning") realtimeWarnings.push(event.message);
      },
    });
    expect((await probe).status).toBe("interrupted");
    expect(realtimeWarnings.join()).toMatch(
      /left 1 batch\(es\) at the provider.*may be paid twice/,
    );

    const second = await runBatchFile({
      input,
      output,
      backend: "batch",
      env,
      batchPollMs: { minMs: 100 },
    });
    expect(second.status).toBe("completed");
    expect(second.backend).toMatchObject({ submitted: 0, reattached: 1, answered: 15 });
    expect(sim.stats({ timeline: false }).batch.submitted.openai).toBe(1);
    expectOrderedAnswers(await outputLines(output), 15);
  });

  for (const provider of ["openai", "anthropic"] as const) {
    it(`${provider}: a batch created just before the crash (its id never recorded) is found and re-attached, not resubmitted`, async () => {
      const sim = await ws.simulator({ batch: { completionMs: 300 } });
      const input =
        provider === "openai"
          ? await openaiInput(12)
          : await (async () => {
              const path = join(ws.dir, "in.jsonl");
              await writeFile(
                path,
                Array.from({ length: 12 }, (_, i) =>
                  JSON.stringify({
                    custom_id: `claim-${i}`,
                    params: {
                      model: "claude-haiku-4-5",
                      max_tokens: 20,
                      messages: [{ role: "user", content: question(i) }],
                    },
                  }),
                ).join("\n"),
              );
              return path;
            })();
      const output = join(ws.dir, "out.jsonl");
      const real =
        provider === "openai"
          ? new OpenAIBatchClient({ baseURL: sim.baseUrl, apiKey: KEY })
          : new AnthropicBatchClient({ baseURL: sim.origin, apiKey: KEY });
      const first = await runs(sim, provider, input, output, cutAfterCreate(real, true));
      expect(first.result.status).toBe("interrupted");
      expect(first.submitted).toBe(1);
      const state = JSON.parse(await readFile(`${output}.batches.json`, "utf8"));
      expect(state.chunks[0].phase).toBe("creating");
      expect(state.chunks[0].batchId).toBeUndefined();

      const second = await runs(sim, provider, input, output);
      expect(second.result.status).toBe("completed");
      expect(second.submitted).toBe(1);
      expect(second.result.backend).toMatchObject({ submitted: 0, reattached: 1, answered: 12 });
      expectOrderedAnswers(await outputLines(output), 12);
      expect(sim.stats({ timeline: false }).completions).toBe(0);
    });
  }

  it("a create call that never reached the provider is sent again, once", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 300 } });
    const input = await openaiInput(12);
    const output = join(ws.dir, "out.jsonl");
    const real = new OpenAIBatchClient({ baseURL: sim.baseUrl, apiKey: KEY });
    const first = await runs(sim, "openai", input, output, cutAfterCreate(real, false));
    expect(first.result.status).toBe("interrupted");
    expect(first.submitted).toBe(0);
    const second = await runs(sim, "openai", input, output);
    expect(second.result.status).toBe("completed");
    expect(second.submitted).toBe(1);
    expectOrderedAnswers(await outputLines(output), 12);
  });
});

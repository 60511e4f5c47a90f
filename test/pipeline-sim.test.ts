// Pipelines end to end through our providers and the official SDKs, over HTTP to the simulator:
// context budgets counted with the real tokenizer on what was sent, per-task max_tokens, answers
// reaching the task that asked, both provider shapes.
import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import {
  SAMPLE,
  STAGE_A,
  STAGE_B,
  STAGE_B_CONTEXT_TOKENS,
  transcriptAnalysis,
} from "../examples/transcript-analysis.ts";
import { loadPipelineFile } from "../src/pipeline/pipeline-file.ts";
import { runPipeline } from "../src/pipeline/run-pipeline.ts";
import { AnthropicProvider } from "../src/providers/anthropic-provider.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type {
  CallOptions,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "../src/providers/provider.ts";
import { countTokens } from "../src/providers/token-estimate.ts";
import { Salvo } from "../src/salvo.ts";
import {
  expectedMarker,
  type SimHandle,
  type SimMessage,
  startSimulator,
} from "../src/sim/index.ts";

const FAKE_KEY = "sk-test-pipeline-not-a-real-key";
let sim: SimHandle | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

/** A provider that keeps every request it is given, then calls the real one. */
class RecordingProvider implements Provider {
  readonly name: string;
  readonly requests: ProviderRequest[] = [];
  readonly #inner: Provider;
  constructor(inner: Provider) {
    this.#inner = inner;
    this.name = inner.name;
  }
  call(request: ProviderRequest, options: CallOptions): Promise<ProviderResult> {
    this.requests.push(request);
    return this.#inner.call(request, options);
  }
  estimate(request: ProviderRequest) {
    return this.#inner.estimate(request);
  }
  charged(request: ProviderRequest, usage: TokenUsage) {
    return this.#inner.charged(request, usage);
  }
}

type Message = { role: string; content: string };
const messagesOf = (request: ProviderRequest) => request.body.messages as Message[];

describe("pipelines against the simulator", () => {
  it("seed 003: every stage-B prompt's context is within its budget (real tokenizer) and the report says what was trimmed", async () => {
    sim = await startSimulator({
      seed: 9,
      latency: { ttftMs: 20, msPerToken: 0.5 },
      output: { tokens: { min: 150, max: 250 }, echoChars: 0 },
    });
    const provider = new RecordingProvider(
      new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
    );
    const salvo = new Salvo({ provider, concurrency: 8 });
    const result = await runPipeline(transcriptAnalysis, { salvo, input: SAMPLE });
    await salvo.close();
    expect(result.status).toBe("succeeded");
    expect(sim.stats().completions).toBe(8);

    const stageB = provider.requests.filter((r) =>
      Object.values(STAGE_B).some((a) => messagesOf(r)[0]!.content === a.instructions),
    );
    expect(stageB).toHaveLength(3);
    for (const request of stageB) {
      const context = messagesOf(request)[1]!.content;
      expect(countTokens(context)).toBeLessThanOrEqual(STAGE_B_CONTEXT_TOKENS);
      // The most important sections come first: every analyzer's top insights.
      for (const key of Object.keys(STAGE_A))
        expect(context).toContain(`## stageA/${key}: top insights`);
    }
    // Per-analyzer max_tokens reached the provider.
    const maxTokens = provider.requests.map((r) => r.body.max_tokens).sort();
    expect(maxTokens).toEqual(
      [...Object.values(STAGE_A), ...Object.values(STAGE_B)].map((a) => a.maxTokens).sort(),
    );
    // The report names, per stage-B task, what was cut and dropped.
    const trimmed = result.report.contextTrimmed;
    expect(trimmed.map((t) => t.task).sort()).toEqual(
      Object.keys(STAGE_B)
        .map((k) => `stageB/${k}`)
        .sort(),
    );
    for (const t of trimmed) {
      expect(t.budget).toBe(STAGE_B_CONTEXT_TOKENS);
      expect(t.tokens).toBeLessThanOrEqual(STAGE_B_CONTEXT_TOKENS);
      expect(t.dropped.length + t.truncated.length).toBeGreaterThan(0);
      expect([...t.dropped, ...t.truncated].every((name) => !name.endsWith("insights"))).toBe(true);
      const record = result.records.get(t.task)!;
      expect(record.context!.tokens).toBe(t.tokens);
    }
    // Every answer reached the task that asked for it.
    for (const request of provider.requests) {
      const marker = expectedMarker(messagesOf(request) as SimMessage[]);
      const record = [...result.records.values()].find((r) => {
        const text = typeof r.value === "string" ? r.value : (r.value as { raw: string }).raw;
        return text.startsWith(marker);
      });
      expect(record, marker).toBeDefined();
    }
  });

  it("a pipeline file shaped for Anthropic runs on the Messages API with its system prompts", async () => {
    sim = await startSimulator({ latency: { ttftMs: 5 }, output: { tokens: 12 } });
    const pipeline = await loadPipelineFile(
      new URL("../examples/claim-coverage.yaml", import.meta.url).pathname,
      { provider: "anthropic" },
    );
    const input = JSON.parse(
      await readFile(new URL("../examples/claim-coverage.input.json", import.meta.url), "utf8"),
    );
    const provider = new RecordingProvider(
      new AnthropicProvider({ baseURL: sim.origin, apiKey: FAKE_KEY }),
    );
    const salvo = new Salvo({ provider, concurrency: 4 });
    const result = await runPipeline(pipeline, { salvo, input });
    await salvo.close();
    expect(result.status).toBe("succeeded");
    expect(sim.stats().completions).toBe(10);
    for (const request of provider.requests) {
      expect(request.path).toBe("/messages");
      const marker = expectedMarker(messagesOf(request) as SimMessage[], {
        system: request.body.system as string | undefined,
      });
      expect([...result.records.values()].some((r) => String(r.value).startsWith(marker))).toBe(
        true,
      );
    }
  });
});

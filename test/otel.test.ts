// OpenTelemetry through the real SDK's in-memory exporters: calls made with salvoFetch inside a
// caller's span give one call span each under it and one GenAI client span per attempt under
// that (with the semantic conventions' attribute names), and the metric points agree with the
// run's own summary (RunMetrics over the same scheduler): attempts, retries, 429s, outcomes,
// tokens.
import { context, metrics, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { salvoFetch } from "../src/integrations/salvo-fetch.ts";
import { RunMetrics } from "../src/metrics/run-metrics.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { ProviderResult } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import { expectedMarker, startSimulator } from "../src/sim/index.ts";

class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

const KEY = "sk-test-otel-not-a-real-key";
const exporter = new InMemorySpanExporter();
const reader = new TestReader();
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(
    new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
  );
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
});

afterAll(() => {
  trace.disable();
  metrics.disable();
  context.disable();
});

function points(collected: ResourceMetrics, name: string): DataPoint<unknown>[] {
  for (const scope of collected.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name === name) return metric.dataPoints as DataPoint<unknown>[];
    }
  }
  return [];
}

function sum(collected: ResourceMetrics, name: string, match: Record<string, unknown> = {}) {
  let total = 0;
  for (const point of points(collected, name)) {
    if (Object.entries(match).every(([k, v]) => point.attributes[k] === v)) {
      total += point.value as number;
    }
  }
  return total;
}

function histogram(collected: ResourceMetrics, name: string, match: Record<string, unknown> = {}) {
  let count = 0;
  let total = 0;
  for (const point of points(collected, name)) {
    if (!Object.entries(match).every(([k, v]) => point.attributes[k] === v)) continue;
    const value = point.value as Histogram;
    count += value.count;
    total += value.sum ?? 0;
  }
  return { count, sum: total };
}

describe("OpenTelemetry", () => {
  it("spans per call and per attempt under the caller's span; metrics match the run summary", async () => {
    // The server allows 10 requests a second; Salvo is told no limit and not to learn it from
    // the headers, so it meets 429s (and cools down); and 10% of the requests fail with a 500.
    const sim = await startSimulator({
      seed: 7,
      capacity: { slots: 4 },
      limits: { rpm: 600, burstSeconds: 1 },
      latency: { ttftMs: 10, msPerToken: 1 },
      output: { tokens: 6 },
      faults: { p500: 0.1 },
    });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
      concurrency: 4,
      learnLimits: false,
      retry: { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 30 },
      cooldownMs: 100,
    });
    const run = new RunMetrics({
      startedAt: 0,
      usageOf: (value) => (value as ProviderResult).usage,
    });
    run.attach(salvo.scheduler);
    const client = new OpenAI({
      baseURL: sim.baseUrl,
      apiKey: KEY,
      fetch: salvoFetch(salvo),
      maxRetries: 0,
    });
    const prompts = Array.from({ length: 30 }, (_, i) => `otel question ${i}`);
    const tracer = trace.getTracer("the-caller");
    let callerSpanId = "";
    try {
      await tracer.startActiveSpan("handle-request", async (span: Span) => {
        callerSpanId = span.spanContext().spanId;
        const answers = await Promise.all(
          prompts.map((content) =>
            client.chat.completions.create({
              model: "sim-gpt",
              max_tokens: 32,
              messages: [{ role: "user", content }],
            }),
          ),
        );
        answers.forEach((answer, i) => {
          expect(
            answer.choices[0]?.message.content?.startsWith(
              expectedMarker([{ role: "user", content: prompts[i]! }]),
            ),
          ).toBe(true);
        });
        span.end();
      });
      const summary = run.summary(1);
      const stats = sim.stats({ timeline: false });
      expect(summary.succeeded).toBe(30);
      expect(stats.byStatus["500"] ?? 0, "some 500s").toBeGreaterThan(0);
      expect(summary.rateLimited, "some 429s").toBeGreaterThan(0);
      expect(summary.attempts).toBe(stats.arrivals);

      // Spans
      const spans = exporter.getFinishedSpans();
      const attempts = spans.filter((s) => s.kind === SpanKind.CLIENT);
      const calls = spans.filter((s) => s.name.startsWith("salvo "));
      expect(calls).toHaveLength(30);
      expect(attempts).toHaveLength(summary.attempts);
      const byId = new Map<string, ReadableSpan>(spans.map((s) => [s.spanContext().spanId, s]));
      for (const call of calls) {
        expect(call.parentSpanContext?.spanId).toBe(callerSpanId);
        expect(call.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
        expect(call.status.code).not.toBe(SpanStatusCode.ERROR);
      }
      for (const attempt of attempts) {
        expect(attempt.name).toBe("chat sim-gpt");
        expect(byId.get(attempt.parentSpanContext?.spanId ?? "")?.name).toBe("salvo chat sim-gpt");
        expect(attempt.attributes).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "openai",
          "gen_ai.request.model": "sim-gpt",
          "gen_ai.request.max_tokens": 32,
          "server.address": "127.0.0.1",
          "server.port": sim.port,
        });
        expect(attempt.attributes["salvo.attempt"]).toBeGreaterThanOrEqual(1);
      }
      const failed = attempts.filter((s) => s.status.code === SpanStatusCode.ERROR);
      expect(failed).toHaveLength(summary.attempts - 30);
      const failureTypes = new Set(failed.map((s) => s.attributes["error.type"]));
      expect(failureTypes).toEqual(new Set(["SALVO_RATE_LIMITED", "SALVO_SERVER_ERROR"]));
      const ok = attempts.filter((s) => s.status.code !== SpanStatusCode.ERROR);
      expect(ok).toHaveLength(30);
      for (const attempt of ok) {
        expect(attempt.attributes["gen_ai.response.model"]).toBe("sim-gpt");
        expect(attempt.attributes["gen_ai.usage.output_tokens"]).toBe(6);
        expect(attempt.attributes["gen_ai.response.id"]).toMatch(/^chatcmpl-/);
      }
      // The API key is in no span.
      expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain(KEY);

      // Metrics
      const { resourceMetrics: collected } = await reader.collect();
      expect(histogram(collected, "gen_ai.client.operation.duration").count).toBe(summary.attempts);
      expect(
        histogram(collected, "gen_ai.client.operation.duration", {
          "error.type": "SALVO_RATE_LIMITED",
        }).count,
      ).toBe(summary.rateLimited);
      expect(
        histogram(collected, "gen_ai.client.token.usage", { "gen_ai.token.type": "input" }).sum,
      ).toBe(summary.tokens.input);
      expect(
        histogram(collected, "gen_ai.client.token.usage", { "gen_ai.token.type": "output" }).sum,
      ).toBe(summary.tokens.output);
      expect(sum(collected, "salvo.scheduler.attempts")).toBe(summary.attempts);
      expect(sum(collected, "salvo.scheduler.retries")).toBe(summary.retries);
      expect(sum(collected, "salvo.scheduler.rate_limited")).toBe(summary.rateLimited);
      expect(sum(collected, "salvo.scheduler.calls", { "salvo.outcome": "succeeded" })).toBe(30);
      expect(sum(collected, "salvo.scheduler.calls", { "salvo.outcome": "failed" })).toBe(0);
      expect(sum(collected, "salvo.scheduler.cooldowns")).toBeGreaterThan(0);
      expect(histogram(collected, "salvo.call.duration").count).toBe(30);
      const limit = points(collected, "salvo.scheduler.concurrency.limit");
      expect(limit.map((p) => p.value)).toEqual([4]);
      const queue = points(collected, "salvo.scheduler.queue.size");
      expect(queue.map((p) => p.value)).toEqual([0]);
    } finally {
      await salvo.close();
      await sim.close();
    }
  });

  it("runBatchFile's observe hook instruments the run's own client: one call span per line", async () => {
    const { writeFile, mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { runBatchFile } = await import("../src/batch/run-batch-file.ts");
    const { instrument } = await import("../src/integrations/otel/telemetry.ts");
    const sim = await startSimulator({
      seed: 3,
      latency: { ttftMs: 5, msPerToken: 0 },
      output: { tokens: 4 },
    });
    const dir = await mkdtemp(join(tmpdir(), "salvo-otel-batch-"));
    try {
      const input = join(dir, "in.jsonl");
      await writeFile(
        input,
        Array.from({ length: 6 }, (_, i) =>
          JSON.stringify({
            custom_id: `otel-batch-${i}`,
            method: "POST",
            url: "/v1/chat/completions",
            body: {
              model: "sim-gpt",
              max_tokens: 8,
              messages: [{ role: "user", content: `batch ${i}` }],
            },
          }),
        ).join("\n"),
      );
      exporter.reset();
      const result = await runBatchFile({
        input,
        output: join(dir, "out.jsonl"),
        provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
        concurrency: 3,
        observe: (client) => instrument(client),
      });
      expect(result.batch.succeeded).toBe(6);
      const calls = exporter.getFinishedSpans().filter((s) => s.name.startsWith("salvo "));
      expect(calls).toHaveLength(6);
    } finally {
      await sim.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

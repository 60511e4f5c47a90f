// M*, the physical bound of a scenario (DESIGN.md, "The physical limit"), computed once from the
// scenario's known limits and the simulator's own service-time model, so every contender is
// measured against the same number. Per prompt, the answer length is the simulator's (a hash of
// the prompt), its service time ttft + (tokens - 1) x msPerToken with jitter at its mean (1).
// Stages run one after another, so their bounds add up.

import { physicalBound } from "../src/metrics/physical-bound.ts";
import { countPromptTokens, resolveSimConfig } from "../src/sim/index.ts";
import { outputLength } from "../src/sim/latency-model.ts";
import { markerKey } from "../src/sim/marker.ts";
import { hashUniform } from "../src/sim/seeded-random.ts";
import type { BenchScenario } from "./scenario.ts";
import { benchItem, stageContext } from "./workload.ts";

export type ModelBound = {
  /** M*, ms (0 when the work takes no modelled time, e.g. zero latency). */
  boundMs: number;
  /** The binding term of the stage that contributes most. */
  binding: string;
  /** Per stage: its bound and the terms. */
  stages: Array<{
    calls: number;
    boundMs: number;
    binding: string;
    /** Requests in service at once that the bound assumes (the best for the server). */
    inService: number;
    terms: Record<string, number>;
  }>;
  /** Mean TPM charge per call (prompt + max_tokens), tokens. */
  meanChargedTokens: number;
  /** Mean prompt tokens per call. */
  meanPromptTokens: number;
  /** Mean answer tokens per call. */
  meanOutputTokens: number;
  /** Sustainable requests per second the known rate limits allow, if any. */
  ratePerSecond: number | undefined;
  /** What one-at-a-time calls would take: the sum of the service times (or M*, if longer), ms. */
  serialMs: number;
};

/** The bound of a scenario; `concurrency` is the cap given to the contenders. */
export function modelBound(scenario: BenchScenario): ModelBound {
  const config = resolveSimConfig(scenario.sim);
  const pool = config.pools.openai;
  const { ttftMs, msPerToken, loadFactor } = config.latency;
  const exponent = config.latency.loadExponent ?? 1;
  const w = scenario.workload;
  const stages: ModelBound["stages"] = [];
  let charged = 0;
  let prompts = 0;
  let outputs = 0;
  let calls = 0;
  let serialMs = 0;
  let offset = 0;
  let context: string | undefined;
  for (const size of w.stages) {
    const latencies: number[] = [];
    let stageCharged = 0;
    let stagePrompt = 0;
    let stageOutput = 0;
    const markers: string[] = [];
    for (let i = 0; i < size; i++) {
      const item = benchItem(scenario.id, offset + i, w.promptTokens, w.maxTokens, context);
      const prompt = countPromptTokens(item.body.messages);
      const u = hashUniform(config.seed, markerKey(item.marker));
      const out = outputLength(config.output.range, w.maxTokens, u).tokens;
      latencies.push(ttftMs + Math.max(0, out - 1) * msPerToken);
      stageCharged += prompt + w.maxTokens;
      stagePrompt += prompt;
      stageOutput += out;
      markers.push(item.marker);
    }
    latencies.sort((a, b) => a - b);
    const sum = latencies.reduce((a, b) => a + b, 0);
    // The concurrency term: the best number in service m <= min(C, slots, K), where each call
    // takes L x (1 + loadFactor x (m - 1)^exponent). Some slot serves ceil(N/m) calls, at least
    // the shortest ones. C is the most any contender may run: the scenario's concurrency, its
    // sweep, and auto's cap (uncapped auto: any number).
    const cap = Math.max(
      w.concurrency,
      ...w.sweep,
      w.sweep.length > 0 || w.autoMax !== undefined ? (w.autoMax ?? size) : 0,
    );
    const maxM = Math.max(1, Math.min(cap, pool.slots, pool.rejectAbove, size));
    let concurrencyMs = Number.POSITIVE_INFINITY;
    let inService = maxM;
    for (let m = loadFactor > 0 ? 1 : maxM; m <= maxM; m++) {
      const g = 1 + loadFactor * (m - 1) ** exponent;
      const k = Math.ceil(size / m);
      let shortest = 0;
      for (let j = 0; j < k; j++) shortest += latencies[j]!;
      const ms = Math.max((sum * g) / m, shortest * g);
      if (ms < concurrencyMs) {
        concurrencyMs = ms;
        inService = m;
      }
    }
    const base = {
      calls: size,
      latencySumMs: sum,
      latencyMinMs: latencies[0] ?? 0,
      latencyMaxMs: latencies.at(-1) ?? 0,
      burstSeconds: pool.burstSeconds,
    };
    const rates = physicalBound({
      ...base,
      requestsPerMinute: pool.rpm,
      tokensPerMinute: pool.tpm,
      tokensCharged: stageCharged,
    });
    const terms: Record<string, number> = {
      concurrencyMs,
      requestsMs: rates.terms.requestsMs,
      tokensMs: rates.terms.tokensMs,
      latencyMs: rates.terms.latencyMs,
    };
    if (pool.itpm) {
      terms.inputTokensMs = physicalBound({
        ...base,
        tokensPerMinute: pool.itpm,
        tokensCharged: stagePrompt,
      }).terms.tokensMs;
    }
    if (pool.otpm) {
      terms.outputTokensMs = physicalBound({
        ...base,
        tokensPerMinute: pool.otpm,
        tokensCharged: stageOutput,
      }).terms.tokensMs;
    }
    let binding = "latency";
    let boundMs = 0;
    for (const [name, ms] of Object.entries(terms)) {
      if (ms > boundMs) {
        boundMs = ms;
        binding = name.replace(/Ms$/, "");
      }
    }
    stages.push({ calls: size, boundMs, binding, inService, terms });
    serialMs += Math.max(sum, boundMs);
    charged += stageCharged;
    prompts += stagePrompt;
    outputs += stageOutput;
    calls += size;
    offset += size;
    context = stageContext(markers);
  }
  const boundMs = stages.reduce((a, s) => a + s.boundMs, 0);
  const top = stages.reduce((a, s) => (s.boundMs > a.boundMs ? s : a), stages[0]!);
  const perCall = (total: number) => (calls > 0 ? total / calls : 0);
  const rate = (limit: number | undefined, cost: number) =>
    limit === undefined || cost <= 0 ? Number.POSITIVE_INFINITY : limit / 60 / cost;
  const ratePerSecond = Math.min(
    rate(pool.rpm, 1),
    rate(pool.tpm, perCall(charged)),
    rate(pool.itpm, perCall(prompts)),
    rate(pool.otpm, perCall(outputs)),
  );
  return {
    boundMs,
    binding: top.binding,
    stages,
    meanChargedTokens: perCall(charged),
    meanPromptTokens: perCall(prompts),
    meanOutputTokens: perCall(outputs),
    ratePerSecond: Number.isFinite(ratePerSecond) ? ratePerSecond : undefined,
    serialMs,
  };
}

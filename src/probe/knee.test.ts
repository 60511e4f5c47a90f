import { describe, expect, it } from "vitest";
import { formatProbe, probeJson } from "./format-probe.ts";
import { recommend } from "./knee.ts";
import type { LevelResult, SweepResult } from "./sweep.ts";

function level(
  concurrency: number,
  throughputRps: number,
  p50Ms: number,
  rateLimited = 0,
): LevelResult {
  return {
    concurrency,
    requests: 3 * concurrency,
    ok: 3 * concurrency - rateLimited,
    rateLimited,
    errors: 0,
    throughputRps,
    outputTokensPerSec: throughputRps * 8,
    p50Ms,
    p95Ms: p50Ms * 1.2,
    durationMs: 1_000,
    firstError: undefined,
  };
}

const sweepOf = (
  levels: LevelResult[],
  stoppedBecause: SweepResult["stoppedBecause"] = "plateau",
): SweepResult => ({
  levels,
  stoppedBecause,
  limits: {},
  requestsSent: levels.reduce((n, l) => n + l.requests, 0),
});

describe("recommend", () => {
  it("a server with 4 slots: the knee is where throughput stops growing", () => {
    const rec = recommend(
      sweepOf([
        level(1, 25, 40),
        level(2, 50, 40),
        level(4, 98, 41),
        level(8, 100, 80),
        level(16, 100, 160),
      ]),
    );
    expect(rec.knee?.concurrency).toBe(4);
    expect(rec.concurrency).toBe(4);
    expect(rec.flags).toBe("--concurrency 4");
  });

  it("a knee whose latency is already inflated is refined by Little's law at the unloaded latency", () => {
    // Throughput at 4 is only 85% of the best (coarse levels): the knee is 8, queueing already.
    const rec = recommend(
      sweepOf([
        level(1, 25, 40),
        level(2, 50, 40),
        level(4, 85, 45),
        level(8, 100, 80),
        level(16, 100, 160),
      ]),
    );
    expect(rec.knee?.concurrency).toBe(8);
    expect(rec.kneeInflation).toBe(2);
    expect(rec.concurrency).toBe(4); // ceil(100/s * 0.040 s)
  });

  it("still growing at the top level: says so", () => {
    const rec = recommend(
      sweepOf([level(1, 10, 100), level(2, 20, 100), level(4, 40, 100)], "levels-done"),
    );
    expect(rec.stillGrowing).toBe(true);
    expect(rec.concurrency).toBe(4);
    expect(rec.notes.join(" ")).toMatch(/still growing/);
  });

  it("known limits: recommends them and caps the concurrency by what they can feed", () => {
    const result = sweepOf(
      [level(1, 10, 100), level(2, 20, 100), level(4, 38, 105, 2)],
      "rate-limited",
    );
    result.limits = { requestsPerMinute: 600, tokensPerMinute: 100_000 };
    const rec = recommend(result, { tokensPerRequest: 50 });
    // 600 RPM = 10/s at 100 ms: ceil(1.2 * 10 * 0.1) = 2.
    expect(rec.quotaConcurrency).toBe(2);
    expect(rec.concurrency).toBe(2);
    expect(rec.flags).toBe("--concurrency 2 --rpm 600 --tpm 100000");
    const text = formatProbe(result, rec);
    expect(text).toContain("limits from headers: 600 requests/min, 100000 tokens/min");
    expect(text).toContain("recommendation: --concurrency 2 --rpm 600 --tpm 100000");
    const json = probeJson({ provider: "openai", baseUrl: "x", model: "m" }, result, rec) as {
      recommendation: { concurrency: number; requestsPerMinute: number };
    };
    expect(json.recommendation).toMatchObject({ concurrency: 2, requestsPerMinute: 600 });
  });

  it("nothing answered: recommends 1", () => {
    const failed = { ...level(1, 0, Number.NaN), ok: 0, errors: 3 };
    const rec = recommend(sweepOf([failed], "errors"));
    expect(rec.knee).toBeUndefined();
    expect(rec.concurrency).toBe(1);
  });
});

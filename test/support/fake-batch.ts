// Runs a batch through a real Scheduler against a FakeLlmServer on fake time, and reports what a
// bench row would: makespan, latency percentiles, the limit's timeline, failures, 429s.

import type { ConcurrencyController } from "../../src/core/concurrency/concurrency-controller.ts";
import { FakeClock } from "../../src/core/fake-clock.ts";
import type { RetryOptions } from "../../src/core/retry/default-retry-policy.ts";
import { Scheduler } from "../../src/core/scheduler.ts";
import { FakeLlmServer, type FakeServerOptions } from "./fake-llm-server.ts";

export type FakeBatchResult = {
  makespanMs: number;
  /** Per-attempt latency percentiles, successes only, ms. */
  p50Ms: number;
  limits: Array<{ at: number; limit: number }>;
  failed: number;
  reasons: unknown[];
  rejected: number;
  calls: number;
  maxInServer: number;
  /** The most calls in the server at an arrival after the first `steadyFrom` of the run. */
  steadyMaxInServer: number;
  finalLimit: number;
};

export type FakeBatchOptions = {
  items: number;
  /** Output tokens of item i. @default 8 */
  tokens?: (i: number) => number;
  retry?: RetryOptions;
  timeoutMs?: number;
  /** Called at each attempt's start with the time since the batch began. */
  onAttempt?: (at: number, server: FakeLlmServer) => void;
  /** Fraction of the makespan after which arrivals count as steady state. @default 0.25 */
  steadyFrom?: number;
};

export async function runFakeBatch(
  server: FakeServerOptions,
  concurrency: ConcurrencyController,
  options: FakeBatchOptions,
): Promise<FakeBatchResult & { server: FakeLlmServer }> {
  const clock = new FakeClock();
  const fake = new FakeLlmServer(clock, server);
  const scheduler = new Scheduler({
    clock,
    concurrency,
    cooldownJitter: 0,
    random: () => 0.5,
    retry: options.retry ?? {},
    timeoutMs: options.timeoutMs,
  });
  const limits = [{ at: 0, limit: scheduler.limit }];
  scheduler.on("limit-changed", (e) => limits.push({ at: e.at, limit: e.limit }));
  const latencies: number[] = [];
  const tokensOf = options.tokens ?? (() => 8);
  const done = scheduler.map(
    Array.from({ length: options.items }, (_, i) => i),
    async (i, ctx) => {
      const t0 = clock.now();
      options.onAttempt?.(t0, fake);
      const tokens = tokensOf(i);
      await fake.call(tokens, ctx.signal);
      latencies.push(clock.now() - t0);
      ctx.reportUsage({ outputTokens: tokens });
    },
  );
  await clock.runAll();
  const outcomes = await done;
  const makespanMs = clock.now();
  latencies.sort((a, b) => a - b);
  const steadyAt = makespanMs * (options.steadyFrom ?? 0.25);
  let steadyMaxInServer = 0;
  // +1: the arriving call itself.
  for (const a of fake.arrivals)
    if (a.at >= steadyAt) steadyMaxInServer = Math.max(steadyMaxInServer, a.inServer + 1);
  return {
    makespanMs,
    p50Ms: latencies[Math.floor(latencies.length / 2)] ?? Number.NaN,
    limits,
    failed: outcomes.filter((o) => !o.ok).length,
    reasons: outcomes.flatMap((o) => (o.ok ? [] : [o.reason])),
    rejected: fake.rejected,
    calls: fake.calls,
    maxInServer: fake.maxInServer,
    steadyMaxInServer,
    finalLimit: scheduler.limit,
    server: fake,
  };
}

/** The limit in force at time `at`. */
export function limitAt(limits: FakeBatchResult["limits"], at: number): number {
  let limit = limits[0]!.limit;
  for (const change of limits) if (change.at <= at) limit = change.limit;
  return limit;
}

/** A compact "time:limit" timeline, for failure messages. */
export function timeline(limits: FakeBatchResult["limits"]): string {
  return limits.map((l) => `${Math.round(l.at)}:${l.limit}`).join(" ");
}

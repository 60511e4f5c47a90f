// What `salvo run` prints at the end says what happened: latency with the failed attempts in it,
// M* against the limits in force (set or learned), what the cache did and why it did not, and
// items an interrupt left unrun are not failures.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeClock } from "../core/fake-clock.ts";
import { Scheduler } from "../core/scheduler.ts";
import { AbortedError, TimeoutError } from "../errors.ts";
import { RunMetrics } from "../metrics/run-metrics.ts";
import type { Provider, ProviderRequest, ProviderResult } from "../providers/provider.ts";
import type { BatchSummary } from "./run-batch.ts";
import { runBatchFile } from "./run-batch-file.ts";
import { summaryText } from "./summary-text.ts";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-summary-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const batch = (over: Partial<BatchSummary> = {}): BatchSummary => ({
  total: 100,
  succeeded: 100,
  failed: 0,
  invalid: 0,
  resumedFromOutput: 0,
  resumedFromJournal: 0,
  executed: 100,
  rerun: 0,
  retried: { transient: 0, permanent: 0, byCode: {} },
  changed: 0,
  interrupted: false,
  ...over,
});

/** A provider that answers after `ms` with the rate-limit readings of a real one, if given. */
function provider(ms: number, rateLimits?: ProviderResult["rateLimits"]): Provider {
  return {
    name: "test",
    async call(_request: ProviderRequest, { signal }) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
      return {
        status: 200,
        body: { choices: [{ message: { content: "ok" } }] },
        usage: { inputTokens: 10, outputTokens: 2 },
        rateLimits,
        requestId: undefined,
      };
    },
    estimate: () => ({ inputTokens: 10, outputTokens: 2 }),
    charged: (_r, usage) => usage,
  };
}

async function input(lines: number, temperature?: number): Promise<string> {
  const path = join(dir, "in.jsonl");
  await writeFile(
    path,
    Array.from({ length: lines }, (_, i) =>
      JSON.stringify({
        custom_id: `c-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "gpt-4o-mini",
          max_tokens: 5,
          ...(temperature === undefined ? {} : { temperature }),
          messages: [{ role: "user", content: `q${i}` }],
        },
      }),
    ).join("\n"),
  );
  return path;
}

describe("the run summary", () => {
  it("latency percentiles include failed attempts: five 2-minute timeouts are in the p99, labelled", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({
      concurrency: 100,
      clock,
      timeoutMs: 120_000,
      retry: { maxAttempts: 1 },
    });
    const metrics = new RunMetrics({ startedAt: 0 });
    metrics.attach(scheduler);
    const done = scheduler.map(
      Array.from({ length: 100 }, (_, i) => i),
      (i, task) => clock.sleep(i < 5 ? 600_000 : 500, task.signal),
    );
    await clock.advance(125_000);
    await done;
    const text = summaryText(
      batch({ succeeded: 95, failed: 5 }),
      metrics.summary(125_000),
      "out.jsonl",
      false,
      [],
    );
    expect(text).toContain(
      "latency of all 100 attempts, the 5 failed ones (errors, timeouts, 429s) included: p50 500ms, p95 500ms, p99 2m00s, max 2m00s",
    );
    expect(text).toContain("latency of the 95 answered calls alone: p50 500ms");
    expect(text).toContain(`failed (${new TimeoutError().code} 5)`);
  });

  it("M* uses the limits learned from the provider's headers, and says so", async () => {
    const result = await runBatchFile({
      input: await input(20),
      output: join(dir, "out.jsonl"),
      provider: provider(5, { requests: { limit: 6000, remaining: 5999 } }),
      concurrency: 4,
    });
    expect(result.status).toBe("completed");
    expect(result.run.boundLimits.requestsPerMinute).toEqual({ value: 6000, source: "learned" });
    expect(result.text).toMatch(
      /lower bound M\* [\d.]+m?s \(bound by \w+\) with concurrency 4 set, 6.0k requests\/min learned from the provider's headers/,
    );
    expect(result.text).not.toContain("no concurrency or rate limit was set");
  });

  it("the cache line never says 'no call made' of calls that were made, and says why samples were not cached", async () => {
    const cache = join(dir, "cache");
    const first = await runBatchFile({
      input: await input(10),
      output: join(dir, "out.jsonl"),
      provider: provider(1),
      cache,
    });
    expect(first.text).not.toContain("no call made: 0");
    expect(first.text).toContain(
      "cache: 0 answered from the cache without a call, 0 new answers stored",
    );
    expect(first.text).toContain(
      "10 request(s) were not cached: they ask for samples (temperature > 0 or unset), whose answers differ on every call; set temperature: 0 in them for repeatable answers, or add --cache-force to cache them anyway",
    );
    const second = await runBatchFile({
      input: await input(10, 0),
      output: join(dir, "out2.jsonl"),
      provider: provider(1),
      cache,
    });
    expect(second.text).toContain(
      "cache: 0 answered from the cache without a call, 10 new answers stored",
    );
    expect(second.text).not.toContain("not cached");
  });

  it("items an interrupt left unrun are not failures: stopped, and said so", async () => {
    const stop = new AbortController();
    let calls = 0;
    const slow = provider(200);
    const counting: Provider = {
      ...slow,
      call: (request, options) => {
        if (++calls === 4) stop.abort(new AbortedError("received SIGINT"));
        return slow.call(request, options);
      },
    };
    const result = await runBatchFile({
      input: await input(20),
      output: join(dir, "out.jsonl"),
      provider: counting,
      concurrency: 2,
      signal: stop.signal,
    });
    expect(result.status).toBe("interrupted");
    expect(result.run.failed).toBe(0);
    expect(result.run.failedByCode).toEqual({});
    expect(result.run.stopped).toBeGreaterThan(0);
    const notRun = 20 - result.batch.succeeded;
    expect(result.text).toContain(
      `${result.batch.succeeded} succeeded, 0 failed, 0 invalid input lines; ${notRun} not run (stopped: run the same command again to run them)`,
    );
  });
});

describe("the summary of a rerun", () => {
  it("says which failed lines ran again, why, and which lines changed since their answer", async () => {
    const text = summaryText(
      batch({
        resumedFromOutput: 90,
        executed: 10,
        retried: {
          transient: 6,
          permanent: 1,
          byCode: { SALVO_SERVER_ERROR: 5, SALVO_TIMEOUT: 1, SALVO_CLIENT_ERROR: 1 },
        },
        changed: 3,
      }),
      new RunMetrics({ startedAt: 0 }).summary(1_000),
      "out.jsonl",
      false,
      [],
    );
    expect(text).toMatch(
      /resumed: 90 already in the output, 0 from the journal, 7 failed before and run again \(SALVO_SERVER_ERROR 5, SALVO_TIMEOUT 1, SALVO_CLIENT_ERROR 1; 1 of them permanent, by --retry-failed\), 3 changed in the input since their answer; 10 items run now/,
    );
  });
});

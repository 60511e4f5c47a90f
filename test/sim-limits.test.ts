// Capacity and rate limits, shown with exact counts from the simulator's own statistics.
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  countPromptTokens,
  loadScenario,
  type SimConfigInput,
  type SimHandle,
  startSimulator,
  type TimelineEntry,
} from "../src/sim/index.ts";
import { TokenBucket } from "../src/sim/token-bucket.ts";

const GO_DURATION = /^(\d+(\.\d+)?h)?(\d+(\.\d+)?m(?!s))?(\d+(\.\d+)?s)?(\d+(\.\d+)?ms)?$/;

async function withSim<T>(config: SimConfigInput, fn: (sim: SimHandle) => Promise<T>) {
  const sim = await startSimulator(config);
  try {
    return await fn(sim);
  } finally {
    await sim.close();
  }
}

function post(sim: SimHandle, body: object, path = "/chat/completions"): Promise<Response> {
  const url = path === "/messages" ? `${sim.origin}/v1/messages` : `${sim.baseUrl}${path}`;
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function waitFor(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const chat = (content: string, extra: object = {}) => ({
  model: "m",
  messages: [{ role: "user", content }],
  ...extra,
});

// The most entries whose [startMs, endMs) intervals overlap at any instant.
function peakOverlap(entries: TimelineEntry[]): number {
  const points = entries.flatMap((e) => [
    [e.startMs!, 1],
    [e.endMs, -1],
  ]);
  points.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let now = 0;
  let peak = 0;
  for (const [, d] of points) {
    now += d!;
    peak = Math.max(peak, now);
  }
  return peak;
}

describe("simulator capacity", () => {
  it("slots: 4 serves 40 concurrent 100 ms requests 4 at a time, in 10 waves", async () => {
    const scenario = await loadScenario("scenarios/slots-4.yaml");
    expect(scenario.capacity?.slots).toBe(4);
    await withSim(scenario, async (sim) => {
      const client = new OpenAI({
        baseURL: sim.baseUrl,
        apiKey: "sk-test-not-a-real-key",
        maxRetries: 0,
      });
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          client.chat.completions.create({
            model: "m",
            messages: [{ role: "user", content: `item ${i}` }],
          }),
        ),
      );
      expect(answers).toHaveLength(40);
      const stats = sim.stats();
      expect(stats.maxInService).toBe(4);
      // All 40 normally arrive within the first wave; a loaded machine may spread them.
      expect(stats.maxInServer).toBeGreaterThan(4);
      expect(stats.maxInServer).toBeLessThanOrEqual(40);
      expect(stats.byStatus).toEqual({ 200: 40 });
      expect(peakOverlap(stats.timeline)).toBe(4);
      const first = Math.min(...stats.timeline.map((e) => e.arrivalMs));
      const last = Math.max(...stats.timeline.map((e) => e.endMs));
      expect(last - first).toBeGreaterThanOrEqual(1000); // 10 waves of 100 ms
      expect(last - first).toBeLessThan(2000);
      // FIFO: service starts in arrival order.
      const byArrival = [...stats.timeline].sort((a, b) => a.arrivalMs - b.arrivalMs);
      const starts = byArrival.map((e) => e.startMs!);
      expect(starts).toEqual([...starts].sort((a, b) => a - b));
    });
  });

  it("a full queue answers 503 in the OpenAI shape, exactly beyond slots + queue", async () => {
    // Admitted requests hang (holding their slot or queue place), so the count does not depend
    // on how fast the burst arrives.
    const sim = await startSimulator({ capacity: { slots: 2, queue: 3 }, faults: { pHang: 1 } });
    const responses = Array.from({ length: 20 }, (_, i) => post(sim, chat(`q${i}`)));
    const settled = Promise.allSettled(responses);
    await waitFor(() => sim.stats().arrivals === 20 && sim.stats().ended === 15);
    const stats = sim.stats();
    expect(stats.refusals.queueFull).toBe(15);
    expect(stats.byStatus).toEqual({ 503: 15 });
    expect(stats.maxInService).toBe(2);
    expect(stats.maxInServer).toBe(5);
    await sim.close();
    const results = await settled;
    const refused = results.filter((r) => r.status === "fulfilled" && r.value.status === 503);
    expect(refused).toHaveLength(15);
    const body = await (refused[0] as PromiseFulfilledResult<Response>).value.json();
    expect(body).toMatchObject({ error: { type: "server_error", code: null } });
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(5); // cut by close()
  });

  it("latency grows with load when a load factor is set", async () => {
    await withSim({ latency: { ttftMs: 100, loadFactor: 1 } }, async (sim) => {
      await Promise.all(
        Array.from({ length: 4 }, (_, i) => post(sim, chat(`x${i}`)).then((r) => r.text())),
      );
      const timeline = sim.stats().timeline;
      // Each request takes (1 + others in service when it started) x 100 ms, whatever the
      // arrival timing on a busy machine; at least one of the four overlapped another.
      let overlapped = 0;
      for (const e of timeline) {
        const start = e.startMs ?? 0;
        const others = timeline.filter(
          (o) => o !== e && (o.startMs ?? 0) <= start && o.endMs > start,
        ).length;
        if (others > 0) overlapped++;
        expect(e.endMs - start).toBeGreaterThanOrEqual((1 + others) * 100 - 2);
      }
      expect(overlapped).toBeGreaterThan(0);
    });
  });
});

describe("simulator rate limits", () => {
  it("rpm: 600 lets 10 of a burst of 50 through and answers 40 with 429 and headers", async () => {
    const scenario = await loadScenario("scenarios/rpm-600.yaml");
    await withSim(scenario, async (sim) => {
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) => post(sim, chat(`burst ${i}`))),
      );
      const limited = responses.filter((r) => r.status === 429);
      // Bucket: capacity 600 x 1 s / 60 = 10, refill 10 per second. Replaying the rule on the
      // arrival times the simulator recorded gives the expected count; real time may shift one.
      const arrivals = sim
        .stats()
        .timeline.map((e) => e.arrivalMs)
        .sort((a, b) => a - b);
      const clock = { t: arrivals[0]!, now: () => clock.t };
      const bucket = new TokenBucket(600, 1, clock.now);
      let expectedAdmitted = 0;
      for (const t of arrivals) {
        clock.t = t;
        if (bucket.canTake(1)) {
          bucket.take(1);
          expectedAdmitted++;
        }
      }
      expect(expectedAdmitted).toBeGreaterThanOrEqual(10);
      expect(Math.abs(50 - limited.length - expectedAdmitted)).toBeLessThanOrEqual(1);
      if (arrivals.at(-1)! - arrivals[0]! < 90) expect([39, 40]).toContain(limited.length);
      const r = limited[0]!;
      const body = (await r.json()) as { error: Record<string, unknown> };
      expect(body.error).toMatchObject({
        type: "requests",
        param: null,
        code: "rate_limit_exceeded",
      });
      expect(body.error.message).toMatch(
        /^Rate limit reached for m in organization \S+ on requests per min \(RPM\): Limit 600, Used \d+, Requested 1\. Please try again in \d+ms\.$/,
      );
      expect(r.headers.get("retry-after")).toBe("1");
      const retryMs = Number(r.headers.get("retry-after-ms"));
      expect(retryMs).toBeGreaterThan(0);
      expect(retryMs).toBeLessThanOrEqual(100);
      expect(r.headers.get("x-ratelimit-limit-requests")).toBe("600");
      expect(r.headers.get("x-ratelimit-remaining-requests")).toBe("0");
      const reset = r.headers.get("x-ratelimit-reset-requests")!;
      expect(reset).toMatch(GO_DURATION);
      expect(reset).toMatch(/^(\d+ms|1s)$/); // at most 1 s to refill 10 requests
      expect(r.headers.get("x-request-id")).toMatch(/^req_/);
      await Promise.all(responses.map((x) => (x.bodyUsed ? undefined : x.body?.cancel())));
      const stats = sim.stats();
      expect(stats.refusals.rateLimited).toBe(limited.length);
      expect(stats.byStatus["200"]).toBe(50 - limited.length);
      expect(stats.tokens.charged.requests).toBe(50 - limited.length);

      // POST /_sim/reset refills the bucket and zeroes the counters.
      expect((await fetch(`${sim.origin}/_sim/reset`, { method: "POST" })).status).toBe(200);
      expect((await post(sim, chat("after reset"))).status).toBe(200);
      const after = (await (await fetch(`${sim.origin}/_sim/stats`)).json()) as {
        arrivals: number;
        timeline: unknown[];
      };
      expect(after.arrivals).toBe(1);
      expect(after.timeline).toHaveLength(1);
    });
  });

  it("tpm charges prompt + max_tokens up front; large requests drive the bucket negative", async () => {
    // 60000 TPM: a bucket of 1000 tokens refilled at 1 per ms.
    await withSim({ limits: { tpm: 60_000 } }, async (sim) => {
      const p = countPromptTokens([{ role: "user", content: "a" }]);
      const ok = await post(sim, chat("a", { max_tokens: 50 - p }));
      expect(ok.status).toBe(200);
      expect(ok.headers.get("x-ratelimit-limit-tokens")).toBe("60000");
      expect(Number(ok.headers.get("x-ratelimit-remaining-tokens"))).toBeGreaterThanOrEqual(950);
      expect(ok.headers.get("x-ratelimit-reset-tokens")).toMatch(GO_DURATION);
      await ok.text();
      // 1500 > capacity 1000: refused until the bucket is full again (~50 ms).
      const big = chat("a", { max_tokens: 1500 - p });
      const refused = await post(sim, big);
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { type: string } }).error.type).toBe("tokens");
      const wait = Number(refused.headers.get("retry-after-ms"));
      expect(wait).toBeLessThanOrEqual(50);
      await new Promise((r) => setTimeout(r, wait + 5));
      const admitted = await post(sim, big);
      expect(admitted.status).toBe(200);
      await admitted.text();
      // Level about -500 now: a 100-token request waits ~600 ms.
      const small = await post(sim, chat("a", { max_tokens: 100 - p }));
      expect(small.status).toBe(429);
      expect(Number(small.headers.get("retry-after-ms"))).toBeGreaterThan(400);
      expect(Number(small.headers.get("retry-after-ms"))).toBeLessThanOrEqual(600);
      expect(small.headers.get("x-ratelimit-remaining-tokens")).toBe("0");
      await small.text();
      expect(sim.stats().tokens.charged.tokens).toBe(1550);
    });
  });

  it("a request above the whole tpm limit gets 429 Request too large, without retry-after", async () => {
    await withSim({ limits: { tpm: 1000 } }, async (sim) => {
      const r = await post(sim, chat("hello", { max_tokens: 2000 }));
      expect(r.status).toBe(429);
      const body = (await r.json()) as { error: { message: string; code: string } };
      expect(body.error.code).toBe("rate_limit_exceeded");
      expect(body.error.message).toMatch(/^Request too large for m .* Limit 1000, Requested \d+\./);
      expect(r.headers.get("retry-after")).toBeNull();
      expect(r.headers.get("x-should-retry")).toBe("false");
    });
  });

  it("without max_tokens, TPM is charged the configured default", async () => {
    await withSim({ limits: { tpm: 600_000 }, output: { defaultMaxTokens: 1000 } }, async (sim) => {
      await (await post(sim, chat("a"))).text();
      expect(sim.stats().tokens.charged.tokens).toBe(
        countPromptTokens([{ role: "user", content: "a" }]) + 1000,
      );
    });
  });

  it("both paths share one pool by default, and separate pools when configured", async () => {
    const anthropicBody = { model: "m", max_tokens: 8, messages: [{ role: "user", content: "x" }] };
    await withSim({ limits: { rpm: 60 } }, async (sim) => {
      expect((await post(sim, chat("x"))).status).toBe(200);
      expect((await post(sim, anthropicBody, "/messages")).status).toBe(429);
    });
    await withSim(
      { limits: { rpm: 60 }, paths: { anthropic: { limits: { rpm: 60 } } } },
      async (sim) => {
        expect((await post(sim, chat("x"))).status).toBe(200);
        expect((await post(sim, anthropicBody, "/messages")).status).toBe(200);
      },
    );
  });

  it("bounds the timeline", async () => {
    await withSim({ timelineLimit: 5 }, async (sim) => {
      for (let i = 0; i < 8; i++) await (await post(sim, chat(`t${i}`))).text();
      const stats = sim.stats();
      expect(stats.timeline).toHaveLength(5);
      expect(stats.timelineDropped).toBe(3);
      expect(stats.ended).toBe(8);
      expect(stats.timeline[0]).toMatchObject({
        id: 1,
        path: "openai",
        status: 200,
        fault: null,
        stream: false,
        outputTokens: 16,
      });
    });
  });
});

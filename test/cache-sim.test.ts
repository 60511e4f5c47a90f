// The response cache and single-flight end to end: the official SDK through our provider, over
// HTTP to the simulator, asserting on the simulator's own count of requests and on the
// scheduler's events and buckets (a cache hit takes no slot and no rate budget).
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ResponseCache } from "../src/cache/response-cache.ts";
import { runCli } from "../src/cli/main.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { ProviderRequest } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import type { SimConfigInput, SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const KEY_A = "sk-test-cache-key-one-not-real";
const KEY_B = "sk-test-cache-key-two-not-real";
const ws = useWorkspace("salvo-cache-sim-");

function simulator(config: SimConfigInput = {}): Promise<SimHandle> {
  return ws.simulator({
    latency: { ttftMs: 30, msPerToken: 0 },
    output: { tokens: 8 },
    ...config,
  });
}

const chat = (i: number, extra: Record<string, unknown> = { temperature: 0 }): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    max_tokens: 20,
    ...extra,
    messages: [{ role: "user", content: `Is line item ${i} covered?` }],
  },
});
const text = (body: unknown) =>
  (body as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content;

function client(s: SimHandle, options: Partial<ConstructorParameters<typeof Salvo>[0]> = {}) {
  return new Salvo({
    provider: new OpenAIProvider({ baseURL: s.baseUrl, apiKey: KEY_A }),
    concurrency: 4,
    requestsPerMinute: 6000,
    endpoint: "sim",
    ...options,
  });
}

describe("response cache (library)", () => {
  it("a second pass is answered from the cache: zero HTTP calls, no scheduler event, no rate budget", async () => {
    const s = await simulator();
    const cache = await ResponseCache.open(join(ws.dir, "cache"));
    const requests = Array.from({ length: 12 }, (_, i) => chat(i));
    const first = client(s, { cache });
    const called = await first.map(requests);
    await first.close();
    expect(s.stats().completions).toBe(12);
    expect(cache.counters.stored).toBe(12);

    s.reset();
    // Another client, another API key, same cache: the key is not part of the fingerprint.
    const second = new Salvo({
      provider: new OpenAIProvider({ baseURL: s.baseUrl, apiKey: KEY_B }),
      concurrency: 4,
      requestsPerMinute: 6000,
      endpoint: "sim",
      cache: await ResponseCache.open(join(ws.dir, "cache")),
    });
    const events: string[] = [];
    for (const name of ["queued", "started", "succeeded", "failed"] as const)
      second.scheduler.on(name, () => events.push(name));
    const before = second.scheduler.bucket("requests")!.level;
    const cached = await second.map(requests);
    expect(s.stats().arrivals).toBe(0);
    expect(events).toEqual([]);
    expect(second.scheduler.bucket("requests")!.level).toBe(before);
    cached.forEach((outcome, i) => {
      expect(outcome.ok && outcome.value.cached).toBe(true);
      expect(outcome.index).toBe(i);
      expect(outcome.attempts).toBe(0);
      const original = called[i]!;
      expect(outcome.ok && original.ok && outcome.value.body).toEqual(
        original.ok && original.value.body,
      );
      expect(outcome.ok && outcome.value.cost?.usd).toBe(0);
    });
    await second.close();

    // No key reached the cache's files.
    for (const entry of await readdir(join(ws.dir, "cache"), {
      recursive: true,
      withFileTypes: true,
    }))
      if (entry.isFile()) {
        const content = await readFile(join(entry.parentPath, entry.name), "utf8");
        expect(content).not.toContain(KEY_A);
        expect(content).not.toContain(KEY_B);
      }
  });

  it("stores only successful answers, and does not cache samples unless forced", async () => {
    const s = await simulator({ faults: { p500: 1 } });
    const cache = await ResponseCache.open(join(ws.dir, "cache"));
    const failing = client(s, { cache, retry: { maxAttempts: 1 } });
    const [failed] = await failing.map([chat(1)]);
    expect(failed!.ok).toBe(false);
    expect(cache.counters.stored).toBe(0);
    await failing.close();
    await s.close();

    const ok = await simulator();
    const sampled = chat(2, {}); // no temperature: the provider's default of 1
    const plain = client(ok, { cache });
    await plain.call(sampled);
    await plain.call(sampled);
    expect(ok.stats().completions).toBe(2);
    expect(cache.counters.stored).toBe(0);
    await plain.close();

    const forced = client(ok, { cache, shareSamples: true });
    await forced.call(sampled);
    const again = await forced.call(sampled);
    expect(ok.stats().completions).toBe(3);
    expect(again.cached).toBe(true);
    await forced.close();
  });
});

describe("single-flight (library)", () => {
  it("identical requests in flight make one HTTP call, with or without the disk cache", async () => {
    const s = await simulator({ latency: { ttftMs: 150, msPerToken: 0 } });
    for (const cache of [undefined, await ResponseCache.open(join(ws.dir, "cache"))]) {
      s.reset();
      const salvo = client(s, { cache, concurrency: 16 });
      const outcomes = await salvo.map([chat(7), chat(7), chat(7), chat(8), chat(7)]);
      expect(s.stats().arrivals).toBe(2);
      expect(outcomes.every((o) => o.ok)).toBe(true);
      const shared = outcomes.filter((o) => o.ok && o.value.shared).map((o) => o.index);
      expect(shared).toEqual([1, 2, 4]);
      expect(text(outcomes[4]!.ok && outcomes[4]!.value.body)).toBe(
        text(outcomes[0]!.ok && outcomes[0]!.value.body),
      );
      await salvo.close();
    }
  });

  it("one caller's abort does not abort the shared call; the others get the answer", async () => {
    const s = await simulator({ latency: { ttftMs: 200, msPerToken: 0 } });
    const salvo = client(s);
    const leaver = new AbortController();
    const first = salvo.settle(chat(3), { signal: leaver.signal });
    const second = salvo.settle(chat(3));
    setTimeout(() => leaver.abort(new Error("first caller gave up")), 50);
    const [a, b] = await Promise.all([first, second]);
    expect(a.ok).toBe(false);
    expect(!a.ok && (a.error as { code?: string }).code).toBe("SALVO_ABORTED");
    expect(b.ok).toBe(true);
    const stats = s.stats();
    expect(stats.arrivals).toBe(1);
    expect(stats.completions).toBe(1);
    await salvo.close();
  });

  it("samples are not shared: two identical requests at the default temperature are two draws", async () => {
    const s = await simulator({ latency: { ttftMs: 100, msPerToken: 0 } });
    const salvo = client(s);
    await salvo.map([chat(4, {}), chat(4, {})]);
    expect(s.stats().arrivals).toBe(2);
    await salvo.close();
  });
});

type Line = {
  custom_id: string;
  response: { body: unknown } | null;
  error: { code: string } | null;
  cached?: boolean;
  shared?: boolean;
};
const lines = async (path: string) =>
  (await readFile(path, "utf8"))
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Line);

describe("salvo run --cache", () => {
  it("a rerun makes zero HTTP calls and writes the same answers; duplicates in one batch make one call each", async () => {
    const s = await simulator({ capacity: { slots: 4 } });
    const input = join(ws.dir, "in.jsonl");
    // 30 lines, 20 distinct requests: lines 20..29 repeat lines 0..9.
    await writeFile(
      input,
      Array.from({ length: 30 }, (_, i) =>
        JSON.stringify({
          custom_id: `item-${i}`,
          method: "POST",
          url: "/v1/chat/completions",
          body: chat(i % 20).body,
        }),
      ).join("\n"),
    );
    const run = async (output: string, report: string) => {
      const io = memoryIo({ OPENAI_API_KEY: KEY_A });
      const code = await runCli(
        [
          "run",
          input,
          "-o",
          output,
          "--base-url",
          s.baseUrl,
          "--cache",
          join(ws.dir, "cache"),
          "--concurrency",
          "4",
          "--progress",
          "none",
          "--report",
          report,
        ],
        io,
      );
      return { code, out: io.out, err: io.err };
    };
    const first = await run(join(ws.dir, "out1.jsonl"), join(ws.dir, "r1.json"));
    expect(first.code).toBe(0);
    expect(s.stats().arrivals).toBe(20);
    s.reset();
    const second = await run(join(ws.dir, "out2.jsonl"), join(ws.dir, "r2.json"));
    expect(second.code).toBe(0);
    expect(s.stats().arrivals).toBe(0);
    expect(second.out).toContain("30 answered from the cache");
    const [a, b] = [
      await lines(join(ws.dir, "out1.jsonl")),
      await lines(join(ws.dir, "out2.jsonl")),
    ];
    expect(b.map((l) => l.custom_id)).toEqual(a.map((l) => l.custom_id));
    expect(b.map((l) => l.response?.body)).toEqual(a.map((l) => l.response?.body));
    expect(b.every((l) => l.cached === true && l.error === null)).toBe(true);
    const report = JSON.parse(await readFile(join(ws.dir, "r2.json"), "utf8"));
    expect(report.run.cached).toBe(30);
    expect(report.run.attempts).toBe(0);
    expect(report.cache).toMatchObject({ stored: 0 });
  });

  it("the call log prices every call and marks answers that were not called; salvo cache stats and clear", async () => {
    const s = await simulator();
    const input = join(ws.dir, "in.jsonl");
    await writeFile(
      input,
      Array.from({ length: 6 }, (_, i) =>
        JSON.stringify({
          custom_id: `c${i}`,
          body: chat(i % 3).body,
          method: "POST",
          url: "/v1/chat/completions",
        }),
      ).join("\n"),
    );
    const log = join(ws.dir, "calls.log");
    const cacheDir = join(ws.dir, "cache");
    const cli = async (args: string[]) => {
      const io = memoryIo({ OPENAI_API_KEY: KEY_A });
      return { code: await runCli(args, io), out: io.out };
    };
    const common = [
      "--base-url",
      s.baseUrl,
      "--cache",
      cacheDir,
      "--audit",
      log,
      "--progress",
      "none",
    ];
    expect((await cli(["run", input, "-o", join(ws.dir, "o1.jsonl"), ...common])).code).toBe(0);
    expect((await cli(["run", input, "-o", join(ws.dir, "o2.jsonl"), ...common])).code).toBe(0);
    type Record = { type: string; attempt: number; attributes: { [k: string]: unknown } };
    const records = (await readFile(log, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record)
      .filter((r) => r.type === "llm_call");
    const called = records.filter((r) => r.attempt > 0);
    expect(called).toHaveLength(s.stats().arrivals);
    for (const record of called) {
      const { "gen_ai.usage.input_tokens": input, "gen_ai.usage.output_tokens": output } =
        record.attributes as {
          "gen_ai.usage.input_tokens": number;
          "gen_ai.usage.output_tokens": number;
        };
      expect(record.attributes["salvo.cost.usd"]).toBeCloseTo(
        (input * 0.15 + output * 0.6) / 1e6,
        15,
      );
    }
    // Not called (cache hits, shared answers): recorded as attempt 0, free, and marked.
    const notCalled = records.filter((r) => r.attempt === 0);
    expect(notCalled).toHaveLength(12 - called.length);
    for (const record of notCalled) {
      expect(record.attributes["salvo.cost.usd"]).toBe(0);
      expect(record.attributes["salvo.cache.hit"] ?? record.attributes["salvo.shared"]).toBe(true);
    }

    const stats = await cli(["cache", "stats", "--cache", cacheDir, "--json"]);
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.out)).toMatchObject({ entries: 3, expired: 0 });
    const cleared = await cli(["cache", "clear", "--cache", cacheDir]);
    expect(cleared.out).toContain("removed 3 answers");
    expect(
      JSON.parse((await cli(["cache", "stats", "--cache", cacheDir, "--json"])).out).entries,
    ).toBe(0);
  });
});

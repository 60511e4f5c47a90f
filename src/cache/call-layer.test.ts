// What a Salvo call resolves with, whatever path it took: a typed SalvoError on failure (also for
// a custom provider's own exception), and `cached`/`shared` always set, `false` when not so.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { FakeClock } from "../core/fake-clock.ts";
import type { Failed } from "../core/outcome.ts";
import { KeepFailedError, SalvoError } from "../errors.ts";
import { CustomProvider } from "../providers/custom-provider.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { Salvo } from "../salvo.ts";
import type { CallOutcome, SalvoResult } from "./call-layer.ts";
import { ResponseCache } from "./response-cache.ts";

const request = (content: string, temperature?: number): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    max_tokens: 5,
    ...(temperature === undefined ? {} : { temperature }),
    messages: [{ role: "user", content }],
  },
});

const answering = (ms = 1) =>
  new CustomProvider(async (req) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { body: { answer: JSON.stringify(req.body.messages) } };
  });

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("a Salvo call's outcome", () => {
  it("Failed.error is a typed SalvoError: a custom provider's own exception becomes a ProviderError naming it", async () => {
    expectTypeOf<Extract<CallOutcome, { ok: false }>["error"]>().toEqualTypeOf<SalvoError>();
    expectTypeOf<Failed<SalvoResult, SalvoError>["error"]>().toEqualTypeOf<SalvoError>();
    const provider = new CustomProvider(
      async () => {
        throw new TypeError("socket hang-up in my own client");
      },
      { name: "my-llm" },
    );
    const salvo = new Salvo({ provider, retry: { maxAttempts: 1 } });
    const outcome = await salvo.settle(request("q"));
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error).toBeInstanceOf(SalvoError);
    expect(outcome.error).toMatchObject({
      code: "SALVO_PROVIDER_ERROR",
      message: "provider my-llm failed: socket hang-up in my own client",
    });
    expect(outcome.error.cause).toBeInstanceOf(TypeError);
    await expect(salvo.call(request("q"))).rejects.toBeInstanceOf(SalvoError);
    await salvo.close();
  });

  it("cached and shared are false, never undefined, on an answer called now; true where so", async () => {
    const dir = await mkdtemp(join(tmpdir(), "salvo-call-layer-"));
    dirs.push(dir);
    const cache = await ResponseCache.open(dir);
    const salvo = new Salvo({ provider: answering(20), cache });
    const [first, twin] = await Promise.all([
      salvo.call(request("same", 0)),
      salvo.call(request("same", 0)),
    ]);
    const sample = await salvo.call(request("a sample"));
    expect(first).toMatchObject({ cached: false, shared: false });
    expect(twin).toMatchObject({ cached: false, shared: true });
    expect(sample).toMatchObject({ cached: false, shared: false });
    const again = await salvo.call(request("same", 0));
    expect(again).toMatchObject({ cached: true, shared: false });
    await salvo.close();
  });
});

describe("keep: a paid answer written down before its slot is freed", () => {
  const yieldTurns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it("runs while the call holds its slot: at concurrency 1 the next call starts only once the answer is kept", async () => {
    const events: string[] = [];
    const provider = new CustomProvider(async (req) => {
      events.push(`call ${(req.body.messages as Array<{ content: string }>)[0]!.content}`);
      return { body: { ok: true } };
    });
    const salvo = new Salvo({ provider, concurrency: 1 });
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let keptFirst: () => void = () => {};
    const firstKept = new Promise<"kept">((resolve) => {
      keptFirst = () => resolve("kept");
    });
    const first = salvo.settle(request("one"), {
      keep: async (answer, attempt) => {
        events.push(`keep one (attempt ${attempt}, status ${answer.status})`);
        keptFirst();
        await held;
      },
    });
    const second = salvo.settle(request("two"), {
      keep: async () => {
        events.push("keep two");
      },
    });
    const both = Promise.all([first, second]).then(() => "settled" as const);
    expect(await Promise.race([firstKept, both])).toBe("kept");
    await yieldTurns(20);
    // The first answer is not yet written down: its slot is still held.
    expect(events).toEqual(["call one", "keep one (attempt 1, status 200)"]);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.ok && b.ok).toBe(true);
    expect(events).toEqual([
      "call one",
      "keep one (attempt 1, status 200)",
      "call two",
      "keep two",
    ]);
    await salvo.close();
  });

  it("is not called for an answer nobody paid for now (shared with a twin, or from the cache)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "salvo-call-layer-"));
    dirs.push(dir);
    const cache = await ResponseCache.open(dir);
    const salvo = new Salvo({ provider: answering(20), cache });
    const kept: string[] = [];
    const keep = (name: string) => async () => {
      kept.push(name);
    };
    await Promise.all([
      salvo.settle(request("same", 0), { keep: keep("leader") }),
      salvo.settle(request("same", 0), { keep: keep("twin") }),
    ]);
    await salvo.settle(request("same", 0), { keep: keep("from the cache") });
    expect(kept).toEqual(["leader"]);
    await salvo.close();
  });
});

describe("keep and the attempt's timeout", () => {
  it("writing the answer down is not the provider's time: a keep longer than the attempt's timeout does not make the call time out and be paid again", async () => {
    const clock = new FakeClock();
    let calls = 0;
    const provider = new CustomProvider(async (_req, { signal }) => {
      calls++;
      await clock.sleep(10, signal);
      return { body: { ok: true } };
    });
    const salvo = new Salvo({ provider, clock, concurrency: 1, timeoutMs: 50 });
    const attempts: number[] = [];
    const outcome = salvo.settle(request("slow disk"), {
      keep: async (_answer, attempt) => {
        attempts.push(attempt);
        await clock.sleep(200); // an fsync on a busy disk
      },
    });
    await clock.runAll();
    const settled = await outcome;
    expect(settled).toMatchObject({ ok: true, attempts: 1 });
    expect(calls).toBe(1);
    expect(attempts).toEqual([1]);
    await salvo.close();
  });
});

describe("keep that fails", () => {
  it("fails the call with a KeepFailedError naming the cause, and does not pay for the answer again", async () => {
    let calls = 0;
    const provider = new CustomProvider(async () => {
      calls++;
      return { body: { ok: true } };
    });
    const salvo = new Salvo({ provider, concurrency: 2 });
    const outcome = await salvo.settle(request("disk full"), {
      keep: () => {
        throw new Error("ENOSPC: no space left on device");
      },
    });
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error).toBeInstanceOf(KeepFailedError);
    expect(outcome.error.code).toBe("SALVO_KEEP_FAILED");
    expect(outcome.error.message).toContain("ENOSPC");
    expect(calls).toBe(1);
    await salvo.close();
  });
});

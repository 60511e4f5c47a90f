import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ClientError,
  QuotaExceededError,
  RateLimitError,
  ServerError,
  TimeoutError,
} from "../errors.ts";
import type { BatchItem } from "./input-line.ts";
import type { ItemOutcome, OutputLine } from "./output-line.ts";
import { type BatchEvent, runBatch } from "./run-batch.ts";

function inputLine(i: number): string {
  return JSON.stringify({
    custom_id: `c${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m", messages: [{ role: "user", content: `q${i}` }] },
  });
}

async function setup(lines: string[]) {
  const dir = await mkdtemp(join(tmpdir(), "salvo-run-"));
  const input = join(dir, "in.jsonl");
  await writeFile(input, `${lines.join("\n")}\n`);
  return { dir, input, output: join(dir, "out.jsonl") };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Answers `{echo: custom_id}` after a pseudo-random delay; records calls and peak concurrency. */
function fake(options: { fail?: (item: BatchItem) => boolean } = {}) {
  const calls: number[] = [];
  let inFlight = 0;
  const state = { calls, peak: 0 };
  const execute = async (item: BatchItem): Promise<ItemOutcome> => {
    calls.push(item.index);
    inFlight += 1;
    state.peak = Math.max(state.peak, inFlight);
    await sleep((item.index * 7) % 5);
    inFlight -= 1;
    if (options.fail?.(item)) throw new RateLimitError(undefined, { status: 429 });
    return {
      ok: true,
      value: { status: 200, body: { echo: item.customId } },
      attempts: 1,
      latencyMs: 2,
    };
  };
  return { state, execute };
}

async function outputOf(path: string): Promise<OutputLine[]> {
  const text = await readFile(path, "utf8");
  expect(text.endsWith("\n")).toBe(true);
  return text
    .slice(0, -1)
    .split("\n")
    .map((l) => JSON.parse(l) as OutputLine);
}

describe("runBatch", () => {
  it("runs every item, writes one line per item in input order, and removes the journal", async () => {
    const lines = Array.from({ length: 40 }, (_, i) => inputLine(i));
    lines.splice(
      5,
      0,
      "",
      '{"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}',
    );
    const { input, output } = await setup(lines);
    const { state, execute } = fake({ fail: (item) => item.customId === "c7" });
    const events: BatchEvent[] = [];
    const summary = await runBatch({
      input,
      output,
      execute,
      window: 8,
      concurrency: 3,
      onEvent: (e) => events.push(e),
    });
    expect(summary).toEqual({
      total: 41,
      succeeded: 39,
      failed: 1,
      invalid: 1,
      resumedFromOutput: 0,
      resumedFromJournal: 0,
      executed: 40,
      rerun: 0,
      retried: { transient: 0, permanent: 0, byCode: {} },
      changed: 0,
      interrupted: false,
    });
    expect(state.peak).toBeLessThanOrEqual(3);
    const out = await outputOf(output);
    expect(out.map((l) => l.custom_id)).toEqual([
      ...Array.from({ length: 5 }, (_, i) => `c${i}`),
      "bad",
      ...Array.from({ length: 35 }, (_, i) => `c${i + 5}`),
    ]);
    expect(out[5]).toMatchObject({
      line: 7,
      error: {
        code: "SALVO_INPUT_INVALID",
        message: `${input}:7: body.messages: expected a non-empty array of messages, got []`,
      },
    });
    expect(out[8]).toMatchObject({
      custom_id: "c7",
      response: null,
      error: { code: "SALVO_RATE_LIMITED", status: 429 },
    });
    expect(out[9]).toMatchObject({
      custom_id: "c8",
      response: { status_code: 200, body: { echo: "c8" } },
      error: null,
    });
    expect(existsSync(`${output}.journal`)).toBe(false);
    expect(events[0]?.type).toBe("scanned");
    expect(events.filter((e) => e.type === "item")).toHaveLength(41);

    // A rerun over the complete output calls only the item that failed transiently (a 429).
    const again = fake();
    const rerun = await runBatch({ input, output, execute: again.execute });
    expect(rerun).toMatchObject({
      resumedFromOutput: 8,
      resumedFromJournal: 32,
      executed: 1,
      succeeded: 40,
      failed: 0,
      invalid: 1,
      retried: { transient: 1, permanent: 0, byCode: { SALVO_RATE_LIMITED: 1 } },
      interrupted: false,
    });
    expect(again.state.calls).toEqual([8]);
    const after = await outputOf(output);
    expect(after.map((l) => l.custom_id)).toEqual(out.map((l) => l.custom_id));
    expect(after[8]).toMatchObject({ custom_id: "c7", error: null });

    // And once everything is answered, a rerun calls nothing.
    const third = fake();
    expect(await runBatch({ input, output, execute: third.execute })).toMatchObject({
      resumedFromOutput: 41,
      executed: 0,
    });
    expect(third.state.calls).toEqual([]);
  });

  it("refuses duplicate custom_ids (always) and invalid lines (strict) before any call or file", async () => {
    const { input, output } = await setup([inputLine(0), inputLine(1), inputLine(0), "{oops"]);
    const { state, execute } = fake();
    await expect(runBatch({ input, output, execute })).rejects.toMatchObject({
      code: "SALVO_INPUT_REJECTED",
      duplicates: [{ customId: "c0", firstLine: 1, line: 3 }],
      message: expect.stringContaining(`${input}:3: custom_id "c0" already used at line 1`),
    });
    const strict = await setup([inputLine(0), "{oops", "[]"]);
    const error = await runBatch({ ...strict, execute, strict: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "SALVO_INPUT_REJECTED", errorCount: 2 });
    expect((error as Error).message).toMatch(
      new RegExp(
        `2 invalid lines:\\n  ${strict.input}:2: JSON: .*\\n  ${strict.input}:3: line: expected a JSON object, got \\[\\]`,
      ),
    );
    expect(state.calls).toEqual([]);
    expect(existsSync(output) || existsSync(strict.output)).toBe(false);
  });

  it("on abort: stops admitting, records what finished, drops failures caused by the abort; a rerun completes without repeats", async () => {
    const { input, output } = await setup(Array.from({ length: 60 }, (_, i) => inputLine(i)));
    const controller = new AbortController();
    const calls: number[] = [];
    const first = await runBatch({
      input,
      output,
      window: 10,
      concurrency: 4,
      signal: controller.signal,
      execute: async (item, signal) => {
        calls.push(item.index);
        if (item.index === 19) controller.abort();
        // 16, 17 and 18 are still running at the abort: 16 and 18 give up, 17 answers anyway.
        if (item.index >= 16 && item.index <= 18 && !signal.aborted)
          await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        else await sleep(item.index % 3);
        if (signal.aborted && item.index % 2 === 0) throw signal.reason;
        return {
          ok: true,
          value: { status: 200, body: { echo: item.customId } },
          attempts: 1,
          latencyMs: 1,
        };
      },
    });
    expect(first).toMatchObject({ interrupted: true, executed: 20, succeeded: 18, failed: 0 });
    expect(existsSync(`${output}.journal`)).toBe(true);
    const recorded = first.succeeded;

    const second = fake();
    const rerun = await runBatch({ input, output, execute: second.execute });
    expect(rerun.interrupted).toBe(false);
    expect(rerun.resumedFromOutput + rerun.resumedFromJournal).toBe(recorded);
    expect(rerun.executed).toBe(60 - recorded);
    expect(second.state.calls.sort((a, b) => a - b)).toEqual([
      16,
      18,
      ...Array.from({ length: 40 }, (_, i) => i + 20),
    ]);
    const out = await outputOf(output);
    expect(out.map((l) => l.custom_id)).toEqual(Array.from({ length: 60 }, (_, i) => `c${i}`));
    expect(
      out.every((l) => (l.response?.body as { echo?: string } | undefined)?.echo === l.custom_id),
    ).toBe(true);
    expect(existsSync(`${output}.journal`)).toBe(false);
  });

  it("resolves interrupted at once when aborted before it starts", async () => {
    const { input, output } = await setup([inputLine(0)]);
    const { state, execute } = fake();
    const summary = await runBatch({ input, output, execute, signal: AbortSignal.abort() });
    expect(summary.interrupted).toBe(true);
    expect(state.calls).toEqual([]);
  });

  it("refuses to resume with other options; resumes over an input that grew; fresh starts over", async () => {
    const { input, output } = await setup(Array.from({ length: 10 }, (_, i) => inputLine(i)));
    const controller = new AbortController();
    await runBatch({
      input,
      output,
      signal: controller.signal,
      concurrency: 1,
      execute: async (item) => {
        if (item.index === 3) controller.abort();
        return { ok: true, value: { status: 200, body: {} }, attempts: 1, latencyMs: 1 };
      },
    });
    expect(existsSync(`${output}.journal`)).toBe(true);
    const { execute, state } = fake();
    await expect(
      runBatch({ input, output, execute, runKey: { temperature: 1 } }),
    ).rejects.toMatchObject({
      code: "SALVO_RESUME_REFUSED",
    });
    expect(state.calls).toEqual([]);
    await writeFile(input, `${inputLine(99)}\n`, { flag: "a" });
    const grown = await runBatch({ input, output, execute });
    expect(grown).toMatchObject({ total: 11, resumedFromOutput: 4, executed: 7 });
    expect(state.calls).toEqual([4, 5, 6, 7, 8, 9, 10]);
    const fresh = await runBatch({ input, output, execute, fresh: true });
    expect(fresh).toMatchObject({
      total: 11,
      executed: 11,
      resumedFromOutput: 0,
      resumedFromJournal: 0,
    });
  });

  it("refuses an existing output (without journal) that does not answer this input", async () => {
    const { input, output } = await setup([inputLine(0), inputLine(1)]);
    await writeFile(
      output,
      `${JSON.stringify({ id: "x", custom_id: "other", response: null, error: null, line: 1 })}\n`,
    );
    const { execute, state } = fake();
    await expect(runBatch({ input, output, execute })).rejects.toThrow(
      /its line 1 answers custom_id "other" at input line 1, but item 0 of .* is custom_id "c0" at line 1/,
    );
    expect(state.calls).toEqual([]);
  });

  it("fills the default model and validates its options", async () => {
    const { input, output } = await setup([
      JSON.stringify({
        custom_id: "a",
        params: { max_tokens: 5, messages: [{ role: "user", content: "x" }] },
      }),
    ]);
    const seen: BatchItem[] = [];
    await runBatch({
      input,
      output,
      defaultModel: "claude-x",
      execute: async (item) => {
        seen.push(item);
        return { ok: true, value: { status: 200, body: {} }, attempts: 1, latencyMs: 1 };
      },
    });
    expect(seen[0]?.request).toEqual({
      path: "/messages",
      body: { max_tokens: 5, messages: [{ role: "user", content: "x" }], model: "claude-x" },
    });
    await expect(
      runBatch({ input, output, execute: fake().execute, window: 0 }),
    ).rejects.toMatchObject({
      code: "SALVO_CONFIG_INVALID",
      message: "runBatch options: window: expected an integer >= 1, got 0",
    });
  });

  it("a rerun runs again the transient failures, and with retryFailed the permanent ones; answers never", async () => {
    const { input, output } = await setup(Array.from({ length: 10 }, (_, i) => inputLine(i)));
    const errors: Record<number, Error> = {
      2: new ServerError(undefined, { status: 500 }),
      4: new ClientError(undefined, { status: 400 }),
      6: new TimeoutError(),
      8: new QuotaExceededError(undefined, { status: 429 }),
    };
    const calls: number[] = [];
    const execute =
      (fail: boolean) =>
      async (item: BatchItem): Promise<ItemOutcome> => {
        calls.push(item.index);
        const error = errors[item.index];
        if (fail && error) throw error;
        return { ok: true, value: { status: 200, body: {} }, attempts: 1, latencyMs: 1 };
      };
    expect(await runBatch({ input, output, execute: execute(true) })).toMatchObject({
      succeeded: 6,
      failed: 4,
    });
    calls.length = 0;
    const rerun = await runBatch({ input, output, execute: execute(false) });
    expect(calls.sort()).toEqual([2, 6]);
    expect(rerun).toMatchObject({
      succeeded: 8,
      failed: 2,
      executed: 2,
      retried: { transient: 2, permanent: 0, byCode: { SALVO_SERVER_ERROR: 1, SALVO_TIMEOUT: 1 } },
    });
    calls.length = 0;
    const all = await runBatch({ input, output, execute: execute(false), retryFailed: true });
    expect(calls.sort()).toEqual([4, 8]);
    expect(all).toMatchObject({
      succeeded: 10,
      failed: 0,
      retried: {
        transient: 0,
        permanent: 2,
        byCode: { SALVO_CLIENT_ERROR: 1, SALVO_QUOTA_EXCEEDED: 1 },
      },
    });
    const lines = await outputOf(output);
    expect(lines.map((l) => [l.custom_id, l.error])).toEqual(
      Array.from({ length: 10 }, (_, i) => [`c${i}`, null]),
    );
  });

  it("refuses a second run on the same output in the same process, and lets it run once the first ends", async () => {
    const { input, output } = await setup(Array.from({ length: 5 }, (_, i) => inputLine(i)));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = async (): Promise<ItemOutcome> => {
      await gate;
      return { ok: true, value: { status: 200, body: {} }, attempts: 1, latencyMs: 1 };
    };
    let started!: () => void;
    const scanned = new Promise<void>((resolve) => {
      started = resolve;
    });
    const first = runBatch({ input, output, execute: slow, onEvent: () => started() });
    const { execute, state } = fake();
    await scanned;
    await expect(runBatch({ input, output, execute })).rejects.toMatchObject({
      code: "SALVO_LOCKED",
      holder: { pid: process.pid },
    });
    expect(state.calls).toEqual([]);
    release();
    expect(await first).toMatchObject({ succeeded: 5 });
    expect(existsSync(`${output}.lock`)).toBe(false);
    expect(await runBatch({ input, output, execute })).toMatchObject({ executed: 0 });
  });
});

describe("runBatch: an answer kept by execute", () => {
  it("is journaled before execute resolves, and is the item's line even if execute then fails", async () => {
    const { input, output } = await setup([inputLine(0), inputLine(1)]);
    const journaledBeforeReturn: boolean[] = [];
    const summary = await runBatch({
      input,
      output,
      execute: async (item, _signal, keep) => {
        const answer: ItemOutcome = {
          ok: true,
          value: { status: 200, body: { echo: item.customId } },
          attempts: 1,
          latencyMs: 2,
        };
        await keep(answer);
        const journal = await readFile(`${output}.journal`, "utf8");
        journaledBeforeReturn.push(journal.includes(`"i":${item.index},`));
        // A later failure (an attempt the scheduler had already timed out) does not undo it.
        if (item.index === 1) throw new TimeoutError();
        return answer;
      },
    });
    expect(journaledBeforeReturn).toEqual([true, true]);
    expect(summary).toMatchObject({ succeeded: 2, failed: 0 });
    const lines = await outputOf(output);
    expect(lines.map((l) => (l.response?.body as { echo?: string } | undefined)?.echo)).toEqual([
      "c0",
      "c1",
    ]);
  });
});

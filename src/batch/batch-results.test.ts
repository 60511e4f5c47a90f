import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProviderError } from "../errors.ts";
import { downloadBatch, indexOfCustomId } from "./batch-download.ts";
import { ResultSpool } from "./batch-results.ts";
import {
  type BatchState,
  fromRanges,
  loadBatchState,
  saveBatchState,
  toRanges,
} from "./batch-state.ts";
import type { JournalHeader } from "./journal.ts";
import type { ProviderBatchResult } from "./provider-batch-client.ts";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-batch-results-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const answer = (i: number) => ({
  i,
  batch: "batch_1",
  response: { status: 200, body: { n: i, text: "é".repeat(i) }, request_id: `req_${i}` },
});

describe("ResultSpool", () => {
  it("keeps results on disk and reads each back by item; a reopened spool knows them", async () => {
    const path = join(dir, "out.jsonl.batches.jsonl");
    const spool = await ResultSpool.open(path);
    await spool.append([answer(3), answer(1)]);
    await spool.append([answer(7)]);
    expect(await spool.get(1)).toEqual(answer(1));
    expect(await spool.get(7)).toEqual(answer(7));
    expect(await spool.get(2)).toBeUndefined();
    await spool.close();
    const again = await ResultSpool.open(path);
    expect([again.size, again.has(3), again.has(2)]).toEqual([3, true, false]);
    expect(await again.get(3)).toEqual(answer(3));
    await again.close();
  });

  it("cuts a torn last record (a kill mid-write) and appends after the whole ones", async () => {
    const path = join(dir, "spool.jsonl");
    await writeFile(
      path,
      `${JSON.stringify(answer(0))}\n${JSON.stringify(answer(1)).slice(0, 20)}`,
    );
    const spool = await ResultSpool.open(path);
    expect([spool.has(0), spool.has(1)]).toEqual([true, false]);
    await spool.append([answer(1)]);
    expect(await spool.get(1)).toEqual(answer(1));
    await spool.close();
    const lines = (await readFile(path, "utf8")).trim().split("\n");
    expect(lines.map((l) => JSON.parse(l).i)).toEqual([0, 1]);
  });
});

describe("downloadBatch", () => {
  it("a download cut off midway keeps what was appended; the retry fetches the rest, each item once", async () => {
    const spool = await ResultSpool.open(join(dir, "spool.jsonl"));
    const results: ProviderBatchResult[] = [
      ...Array.from({ length: 1200 }, (_, i) => ({
        customId: `i${i}`,
        response: {
          status: 200,
          body: { usage: { prompt_tokens: 1, completion_tokens: 2 } },
          requestId: undefined,
        },
      })),
      { customId: "i1200", notRun: "expired" as const },
      { customId: "not-ours", response: { status: 200, body: {}, requestId: undefined } },
    ];
    let attempts = 0;
    const client = {
      async *results(_id: string, _signal: AbortSignal) {
        attempts += 1;
        for (const [k, result] of results.entries()) {
          // The first attempt fails after 1,100 lines: two flushes of 500 are already on disk.
          if (attempts === 1 && k === 1100) throw new ProviderError("reset");
          yield result;
        }
      },
    };
    const pending = new Set(Array.from({ length: 1202 }, (_, i) => i));
    const done = await downloadBatch({
      client,
      batchId: "batch_1",
      pending,
      spool,
      outcome: "expired",
      failure: undefined,
      call: async (_operation, run) => {
        for (;;) {
          try {
            return await run(new AbortController().signal);
          } catch {
            // retried, as the backend's control calls are
          }
        }
      },
      spendOf: () => ({ usd: 0.5, tokens: 3 }),
    });
    expect(attempts).toBe(2);
    expect(done).toEqual({
      answered: 1200,
      errored: 0,
      notRun: 2,
      spent: { usd: 600, tokens: 3600 },
    });
    expect(pending.size).toBe(0);
    expect(spool.size).toBe(1202);
    expect((await spool.get(1200))?.not_run).toBe("expired");
    // Item 1201 was in the batch but the results never mention it: it did not run.
    expect((await spool.get(1201))?.not_run).toBe("missing");
    await spool.close();
    const lines = (await readFile(join(dir, "spool.jsonl"), "utf8")).trim().split("\n");
    expect(new Set(lines.map((l) => JSON.parse(l).i)).size).toBe(lines.length);
  });

  it("reads its own custom_ids only", () => {
    expect(indexOfCustomId("i42")).toBe(42);
    expect(Number.isNaN(indexOfCustomId("claim-42"))).toBe(true);
    expect(Number.isNaN(indexOfCustomId("i4x"))).toBe(true);
  });
});

describe("the state file", () => {
  const header: JournalHeader = {
    salvo_journal: 2,
    input: { path: "in.jsonl", bytes: 10, sha256: "a".repeat(64) },
    output: "out.jsonl",
    options_sha256: "b".repeat(64),
    created_at: "2025-01-01T00:00:00.000Z",
  };
  const state: BatchState = {
    salvo_provider_batches: 1,
    input: { sha256: "a".repeat(64), bytes: 10 },
    options_sha256: "b".repeat(64),
    provider: "openai",
    run_id: "abc",
    started_at: 1,
    deadline_at: null,
    chunks: [],
  };

  it("is read back as written, and refused for another input", async () => {
    const path = join(dir, "out.jsonl.batches.json");
    await saveBatchState(path, state);
    expect(await loadBatchState(path, header)).toEqual(state);
    await expect(
      loadBatchState(path, { ...header, input: { ...header.input, sha256: "c".repeat(64) } }),
    ).rejects.toMatchObject({ code: "SALVO_RESUME_REFUSED" });
    await appendFile(path, "garbage");
    await expect(loadBatchState(path, header)).rejects.toMatchObject({
      code: "SALVO_RESUME_REFUSED",
    });
    expect(await loadBatchState(join(dir, "none.json"), header)).toBeUndefined();
  });

  it("keeps item lists as ranges", () => {
    expect(toRanges([0, 1, 2, 5, 7, 8])).toEqual([
      [0, 2],
      [5, 5],
      [7, 8],
    ]);
    expect([...fromRanges(toRanges([3, 4, 9]))]).toEqual([3, 4, 9]);
  });
});

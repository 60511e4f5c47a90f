import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type InputEntry, isInvalid } from "./input-line.ts";
import { readInput, scanInput } from "./input-reader.ts";

const fixtures = join(import.meta.dirname, "../../test/fixtures/batch");

async function all(file: string, defaultModel?: string): Promise<InputEntry[]> {
  const out: InputEntry[] = [];
  for await (const entry of readInput(file, { defaultModel, chunkBytes: 64 })) out.push(entry);
  return out;
}

async function temp(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "salvo-input-"));
  const file = join(dir, "in.jsonl");
  await writeFile(file, content);
  return file;
}

describe("readInput", () => {
  it("reads the OpenAI Batch shape", async () => {
    const entries = await all(join(fixtures, "openai-batch.jsonl"));
    expect(
      entries.map((e) => [
        e.index,
        e.line,
        !isInvalid(e) && e.customId,
        !isInvalid(e) && e.request.path,
      ]),
    ).toEqual([
      [0, 1, "req-1", "/chat/completions"],
      [1, 2, "req-2", "/chat/completions"],
      [2, 3, "emb-1", "/embeddings"],
    ]);
  });

  it("reads the cookbook shape, with ids from metadata or the line", async () => {
    const entries = await all(join(fixtures, "openai-body.jsonl"));
    expect(entries.map((e) => !isInvalid(e) && [e.customId, e.request.path, e.metadata])).toEqual([
      ["row-1", "/chat/completions", { custom_id: "row-1", row: 1 }],
      ["line-2", "/chat/completions", undefined],
      ["line-3", "/embeddings", { row: 3 }],
    ]);
  });

  it("reads the Anthropic shape, filling the default model", async () => {
    const file = join(fixtures, "anthropic-batch.jsonl");
    const without = await all(file);
    expect(isInvalid(without[1]!) && without[1].error.message).toMatch(
      /anthropic-batch\.jsonl:2: params\.model: expected a model name/,
    );
    const entries = await all(file, "claude-default");
    expect(
      entries.map((e) => !isInvalid(e) && [e.provider, e.request.path, e.request.body.model]),
    ).toEqual([
      ["anthropic", "/messages", "claude-haiku-4-5"],
      ["anthropic", "/messages", "claude-default"],
    ]);
  });

  it("handles CRLF, skips blank lines (no index, no output line) and reads a last line without a newline", async () => {
    const entries = await all(join(fixtures, "crlf-no-final-newline.jsonl"));
    expect(entries.map((e) => [e.index, e.line, !isInvalid(e) && e.customId])).toEqual([
      [0, 1, "c-1"],
      [1, 4, "c-2"],
    ]);
  });

  it("keeps going after invalid lines; the shape comes from the first valid line", async () => {
    const file = await temp(
      [
        '{"nope"',
        '{"custom_id":"a","params":{"model":"m","max_tokens":1,"messages":[1]}}',
        '{"model":"m","messages":[1]}',
      ].join("\n"),
    );
    const entries = await all(file);
    expect(entries.map((e) => isInvalid(e))).toEqual([true, false, true]);
    const last = entries[2]!;
    expect(isInvalid(last) && last.error.message).toBe(
      `${file}:3: line: expected a anthropic-batch line like line 2 (one shape per file), got a openai-body line`,
    );
  });

  it("rejects a missing file", async () => {
    await expect(all(join(fixtures, "missing.jsonl"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("scanInput", () => {
  it("counts items, lines, invalid lines, reports duplicates with both lines, and hashes the file", async () => {
    const scan = await scanInput(join(fixtures, "mixed-errors.jsonl"));
    expect(scan).toMatchObject({
      shape: "openai-batch",
      total: 5,
      lines: 5,
      invalid: 3,
      duplicates: [{ customId: "ok-1", firstLine: 1, line: 3 }],
    });
    expect(scan.errors.map((e) => [e.line, e.field])).toEqual([
      [2, "JSON"],
      [4, "line"],
      [5, "body.messages"],
    ]);
    expect(scan.sha256).toMatch(/^[0-9a-f]{64}$/);
    const crlf = await scanInput(join(fixtures, "crlf-no-final-newline.jsonl"));
    expect(crlf).toMatchObject({ total: 2, lines: 4, invalid: 0, duplicates: [] });
  });

  it("keeps the first maxErrors errors and counts them all", async () => {
    const file = await temp(`${"[1]\n".repeat(30)}`);
    const scan = await scanInput(file, { maxErrors: 20 });
    expect(scan.invalid).toBe(30);
    expect(scan.errors).toHaveLength(20);
    expect(scan.errors[19]!.line).toBe(20);
    expect(scan.shape).toBeUndefined();
  });
});

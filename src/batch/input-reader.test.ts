import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type InputEntry, isInvalid } from "./input-line.ts";
import {
  DEFAULT_MAX_LINE_BYTES,
  type ReadInputOptions,
  readInput,
  scanInput,
} from "./input-reader.ts";

const fixtures = join(import.meta.dirname, "../../test/fixtures/batch");

async function all(
  file: string,
  defaultModel?: string,
  options: ReadInputOptions = {},
): Promise<InputEntry[]> {
  const out: InputEntry[] = [];
  for await (const entry of readInput(file, { defaultModel, chunkBytes: 64, ...options }))
    out.push(entry);
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
        '{"custom_id":"a","params":{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}}',
        '{"model":"m","messages":[{"role":"user","content":"x"}]}',
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

describe("input lines the run could not send as they are: errors at file:line", () => {
  const line = (id: string, content = "hi") =>
    JSON.stringify({
      custom_id: id,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [{ role: "user", content }] },
    });

  it("a line over maxLineBytes is refused at its line, without being held whole", async () => {
    const file = await temp([line("a"), line("b", "x".repeat(5000)), line("c")].join("\n"));
    const entries = await all(file, undefined, { maxLineBytes: 1000 });
    expect(entries.map((e) => [e.index, e.line, isInvalid(e)])).toEqual([
      [0, 1, false],
      [1, 2, true],
      [2, 3, false],
    ]);
    const long = entries[1]!;
    expect(isInvalid(long) && long.error.message).toBe(
      `${file}:2: line: expected a line of at most 1000 bytes (the largest request a provider accepts), got ${line("b", "x".repeat(5000)).length} bytes`,
    );
    // The last line, unterminated and too long, too.
    const tail = await temp(`${line("a")}\n${"y".repeat(3000)}`);
    const scan = await scanInput(tail, { maxLineBytes: 1000, chunkBytes: 64 });
    expect(scan.errors.map((e) => [e.line, e.field])).toEqual([[2, "line"]]);
  });

  it("the default limit is 32 MiB, the largest request body a provider accepts", async () => {
    expect(DEFAULT_MAX_LINE_BYTES).toBe(32 * 1024 * 1024);
    const dir = await mkdtemp(join(tmpdir(), "salvo-input-"));
    const file = join(dir, "in.jsonl");
    const [head, tail] = line("a", "CONTENT").split("CONTENT") as [string, string];
    const long = Buffer.alloc(DEFAULT_MAX_LINE_BYTES, "z");
    await writeFile(file, [head, long, `${tail}\n${line("b")}\n`]);
    const entries: InputEntry[] = [];
    for await (const entry of readInput(file)) entries.push(entry);
    expect(entries.map((e) => [e.line, isInvalid(e) && e.error.field])).toEqual([
      [1, "line"],
      [2, false],
    ]);
  });

  it("bytes that are not UTF-8 are an error at their line, not sent as U+FFFD", async () => {
    const good = Buffer.from(`${line("a")}\n`);
    const bad = Buffer.concat([
      Buffer.from(line("b", "caf").slice(0, -5)),
      Buffer.from([0xe9]), // Latin-1 é, inside the content string
      Buffer.from(line("b", "caf").slice(-5)),
    ]);
    const dir = await mkdtemp(join(tmpdir(), "salvo-input-"));
    const file = join(dir, "in.jsonl");
    await writeFile(file, Buffer.concat([good, bad, Buffer.from("\n"), good]));
    const entries = await all(file);
    const entry = entries[1]!;
    expect(isInvalid(entry) && entry.error.message).toBe(
      `${file}:2: line: expected UTF-8 text, got a byte that is not UTF-8 at byte ${bad.indexOf(0xe9) + 1} of the line`,
    );
    expect(entry.customId).toBe("b"); // still joined to its id in the output
    expect(isInvalid(entries[0]!) || isInvalid(entries[2]!)).toBe(false);
  });

  it("a custom_id repeated after an invalid line is a duplicate (it was missed)", async () => {
    const invalid = JSON.stringify({ custom_id: "dup", method: "GET" });
    const file = await temp([invalid, line("ok"), line("dup")].join("\n"));
    const scan = await scanInput(file);
    expect(scan.invalid).toBe(1);
    expect(scan.duplicates).toEqual([{ customId: "dup", firstLine: 1, line: 3 }]);
    const after = await temp([line("dup"), invalid].join("\n"));
    expect((await scanInput(after)).duplicates).toEqual([
      { customId: "dup", firstLine: 1, line: 2 },
    ]);
  });
});

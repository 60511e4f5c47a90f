import { isUtf8 } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { firstInvalidUtf8, splitLines, type TextLine } from "./line-splitter.ts";

async function* chunksOf(...parts: Array<string | Buffer>): AsyncGenerator<Buffer> {
  for (const part of parts) yield Buffer.isBuffer(part) ? part : Buffer.from(part);
}

async function collect(source: AsyncIterable<Buffer>): Promise<TextLine[]> {
  const out: TextLine[] = [];
  for await (const line of splitLines(source)) out.push(line);
  return out;
}

describe("splitLines", () => {
  it("splits \\n and \\r\\n lines and keeps a last line without a newline", async () => {
    const lines = await collect(chunksOf("a\r\nbb\n\nc"));
    expect(lines).toEqual([
      { line: 1, text: "a", end: 3, terminated: true },
      { line: 2, text: "bb", end: 6, terminated: true },
      { line: 3, text: "", end: 7, terminated: true },
      { line: 4, text: "c", end: 8, terminated: false },
    ]);
  });

  it("yields nothing for an empty file and no extra line after a final newline", async () => {
    expect(await collect(chunksOf())).toEqual([]);
    expect((await collect(chunksOf("x\n"))).map((l) => l.text)).toEqual(["x"]);
  });

  it("joins a line split over many chunks, a \\r\\n split between chunks, and UTF-8 split mid-character", async () => {
    const euro = Buffer.from("€"); // 3 bytes
    const long = "y".repeat(200_000);
    const lines = await collect(
      chunksOf(
        "ab",
        euro.subarray(0, 1),
        euro.subarray(1),
        "cd\r",
        "\n",
        long.slice(0, 5),
        long.slice(5),
        "\n",
      ),
    );
    expect(lines.map((l) => l.text)).toEqual(["ab€cd", long]);
  });

  it("drops a byte order mark on line 1 only", async () => {
    expect((await collect(chunksOf("\ufeffa\n\ufeffb"))).map((l) => l.text)).toEqual([
      "a",
      "\ufeffb",
    ]);
  });

  it("gives the same lines however the bytes are chunked", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.stringMatching(/^[a-z€\r]{0,8}$/), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 10 }),
        async (texts, sizes) => {
          const bytes = Buffer.from(texts.join("\n"));
          const parts: Buffer[] = [];
          for (let at = 0, k = 0; at < bytes.length; k++) {
            const size = sizes[k % sizes.length] ?? 1;
            parts.push(bytes.subarray(at, at + size));
            at += size;
          }
          const whole = await collect(chunksOf(bytes));
          const chunked = await collect(chunksOf(...parts));
          expect(chunked).toEqual(whole);
        },
      ),
    );
  });
});

describe("splitLines: limits and encoding", () => {
  it("yields a line over maxLineBytes with its size and no text, however it is chunked", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.stringMatching(/^[a-z€]{0,30}$/), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 0, max: 40 }),
        async (texts, size, max) => {
          const bytes = Buffer.from(texts.join("\n"));
          const chunks: Buffer[] = [];
          for (let at = 0; at < bytes.length; at += size)
            chunks.push(bytes.subarray(at, at + size));
          const lines: TextLine[] = [];
          for await (const line of splitLines(chunksOf(...chunks), { maxLineBytes: max }))
            lines.push(line);
          const joined = texts.join("\n");
          const expected = joined === "" ? [] : joined.replace(/\n$/, "").split("\n");
          expect(lines.map((l) => l.line)).toEqual(expected.map((_, i) => i + 1));
          lines.forEach((line, i) => {
            const length = Buffer.byteLength(expected[i]!);
            if (length > max) expect([line.text, line.tooLong]).toEqual(["", length]);
            else expect([line.text, line.tooLong]).toEqual([expected[i], undefined]);
          });
        },
      ),
    );
  });

  it("with checkUtf8, gives the offset of the first byte that is not UTF-8", async () => {
    const line = Buffer.concat([Buffer.from("ok €"), Buffer.from([0xc3, 0x28]), Buffer.from("x")]);
    const [bad] = await collect2(chunksOf(line, "\nfine\n"));
    expect(bad).toMatchObject({ line: 1, invalidUtf8At: 6, text: "ok €\ufffd(x" });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        const at = firstInvalidUtf8(bytes);
        expect(at === -1).toBe(isUtf8(bytes));
        if (at !== -1) expect(isUtf8(bytes.subarray(0, at))).toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (text) => {
        expect(firstInvalidUtf8(Buffer.from(text))).toBe(-1);
      }),
    );
  });
});

async function collect2(source: AsyncIterable<Buffer>): Promise<TextLine[]> {
  const out: TextLine[] = [];
  for await (const line of splitLines(source, { checkUtf8: true })) out.push(line);
  return out;
}

// Splits a byte stream into text lines without holding more than one line (plus one chunk) in
// memory, whatever the file size.

/** One line of a file, without its `\n` or `\r\n`. */
export type TextLine = {
  /** The 1-based line number in the file. */
  line: number;
  text: string;
  /** The byte offset just past this line's `\n` (or the end of the file). */
  end: number;
  /** Whether the line ended with `\n`; only a last line can be unterminated. */
  terminated: boolean;
};

const LF = 0x0a;
const CR = 0x0d;

/**
 * Yields every line of `chunks` in order. Handles `\n` and `\r\n` endings, a last line without
 * a newline, lines longer than any chunk (pieces are joined once, not concatenated per chunk),
 * and UTF-8 sequences split across chunks (a line is decoded only when whole). A UTF-8 byte order
 * mark at the start of line 1 is dropped. An empty file yields nothing; a file ending in `\n`
 * has no extra empty last line.
 */
export async function* splitLines(
  chunks: AsyncIterable<Buffer | string>,
): AsyncGenerator<TextLine> {
  let pieces: Buffer[] = [];
  let line = 0;
  let consumed = 0; // bytes of the stream before the current chunk
  const finish = (tail: Buffer, end: number, terminated: boolean): TextLine => {
    let bytes = pieces.length === 0 ? tail : Buffer.concat([...pieces, tail]);
    pieces = [];
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
    line += 1;
    let text = bytes.toString("utf8");
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return { line, text, end, terminated };
  };
  for await (const chunk of chunks) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(LF, start); nl !== -1; nl = buf.indexOf(LF, start)) {
      yield finish(buf.subarray(start, nl), consumed + nl + 1, true);
      start = nl + 1;
    }
    // Copy the rest: the stream may reuse its chunk buffers.
    if (start < buf.length) pieces.push(Buffer.from(buf.subarray(start)));
    consumed += buf.length;
  }
  if (pieces.length > 0) yield finish(Buffer.alloc(0), consumed, false);
}

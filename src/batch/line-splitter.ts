// Splits a byte stream into text lines without holding more than one line (plus one chunk) in
// memory, whatever the file size.
import { isUtf8 } from "node:buffer";

/** One line of a file, without its `\n` or `\r\n`. */
export type TextLine = {
  /** The 1-based line number in the file. */
  line: number;
  text: string;
  /** The byte offset just past this line's `\n` (or the end of the file). */
  end: number;
  /** Whether the line ended with `\n`; only a last line can be unterminated. */
  terminated: boolean;
  /**
   * With `maxLineBytes`: the line's length in bytes, when it is longer than that. Its bytes were
   * not kept and `text` is "".
   */
  tooLong?: number;
  /**
   * With `checkUtf8`: the 0-based byte offset in the line of the first byte that is not valid
   * UTF-8. `text` has U+FFFD in place of the bad bytes.
   */
  invalidUtf8At?: number;
};

export type SplitOptions = {
  /** Longer lines are not held in memory: they are yielded with `tooLong`. @default Infinity */
  maxLineBytes?: number | undefined;
  /** Report bytes that are not UTF-8 (`invalidUtf8At`) instead of decoding them silently. @default false */
  checkUtf8?: boolean | undefined;
};

const LF = 0x0a;
const CR = 0x0d;

/**
 * Yields every line of `chunks` in order. Handles `\n` and `\r\n` endings, a last line without
 * a newline, lines longer than any chunk (pieces are joined once, not concatenated per chunk),
 * and UTF-8 sequences split across chunks (a line is decoded only when whole). A UTF-8 byte order
 * mark at the start of line 1 is dropped. An empty file yields nothing; a file ending in `\n`
 * has no extra empty last line. Memory: one line (at most `maxLineBytes`) plus one chunk.
 */
export async function* splitLines(
  chunks: AsyncIterable<Buffer | string>,
  options: SplitOptions = {},
): AsyncGenerator<TextLine> {
  const maxLineBytes = options.maxLineBytes ?? Number.POSITIVE_INFINITY;
  let pieces: Buffer[] = [];
  let held = 0; // bytes in `pieces`
  let dropped = 0; // bytes of the current line not kept (it is too long), 0 while it fits
  let line = 0;
  let consumed = 0; // bytes of the stream before the current chunk
  const finish = (tail: Buffer, end: number, terminated: boolean): TextLine => {
    line += 1;
    const length = dropped > 0 ? dropped + tail.length : held + tail.length;
    if (length > maxLineBytes) {
      pieces = [];
      held = 0;
      dropped = 0;
      return { line, text: "", end, terminated, tooLong: length };
    }
    let bytes = pieces.length === 0 ? tail : Buffer.concat([...pieces, tail]);
    pieces = [];
    held = 0;
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
    let text = bytes.toString("utf8");
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const result: TextLine = { line, text, end, terminated };
    if (options.checkUtf8 && !isUtf8(bytes)) result.invalidUtf8At = firstInvalidUtf8(bytes);
    return result;
  };
  for await (const chunk of chunks) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(LF, start); nl !== -1; nl = buf.indexOf(LF, start)) {
      yield finish(buf.subarray(start, nl), consumed + nl + 1, true);
      start = nl + 1;
    }
    if (start < buf.length) {
      const rest = buf.length - start;
      if (dropped > 0 || held + rest > maxLineBytes) {
        // Too long: count the bytes, keep none.
        dropped = (dropped > 0 ? dropped : held) + rest;
        pieces = [];
        held = 0;
      } else {
        // Copy the rest: the stream may reuse its chunk buffers.
        pieces.push(Buffer.from(buf.subarray(start)));
        held += rest;
      }
    }
    consumed += buf.length;
  }
  if (pieces.length > 0 || dropped > 0) yield finish(Buffer.alloc(0), consumed, false);
}

/** The offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    // The sequence's length, and the range of its second byte (which rules out overlong forms,
    // surrogates and code points past U+10FFFF).
    let length = 0;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) low = 0xa0;
      if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) low = 0x90;
      if (b === 0xf4) high = 0x8f;
    } else return i;
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < low || c > high : c < 0x80 || c > 0xbf) return i;
    }
    i += length;
  }
  return -1;
}

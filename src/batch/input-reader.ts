// Streams a batch input file (JSONL) as requests, and pre-scans it (totals, invalid lines,
// duplicate custom_ids, content hash) before any call is made. Memory does not grow with the file,
// except the scan's set of custom_ids.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type DuplicateId, InputLineError } from "../errors.ts";
import { type InputEntry, type InputShape, isInvalid, parseInputLine } from "./input-line.ts";
import { splitLines } from "./line-splitter.ts";

/**
 * The longest input line accepted, in bytes: 32 MiB, the largest request body Anthropic's
 * Messages API accepts (and the simulator's limit). A longer line could not be sent to either
 * provider; it is refused at its line without being held in memory.
 */
export const DEFAULT_MAX_LINE_BYTES = 32 * 1024 * 1024;

export type ReadInputOptions = {
  /** Filled into a request without `model`; without it such a line is invalid. @default undefined */
  defaultModel?: string | undefined;
  /** Stops reading; the iteration rejects with the signal's reason. @default undefined */
  signal?: AbortSignal | undefined;
  /** Read chunk size, in bytes. Lines may be longer than this. @default 65_536 */
  chunkBytes?: number | undefined;
  /**
   * Read only the file's first `bytes` bytes (its size when it was scanned), so that a file
   * still being appended to yields the items the scan counted and no more. @default to the end
   */
  bytes?: number | undefined;
  /** A longer line is an invalid line (SALVO_INPUT_INVALID at its line). @default DEFAULT_MAX_LINE_BYTES */
  maxLineBytes?: number | undefined;
};

/** The file's shape as detected so far; updated by `entriesOf` as it reads. */
type ShapeState = { shape: InputShape | undefined };

async function* entriesOf(
  file: string,
  chunks: AsyncIterable<Buffer>,
  options: ReadInputOptions,
  state: ShapeState = { shape: undefined },
): AsyncGenerator<InputEntry> {
  const { defaultModel } = options;
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  let shape: InputShape | undefined;
  let shapeLine: number | undefined;
  let index = 0;
  for await (const { line, text, tooLong, invalidUtf8At } of splitLines(chunks, {
    maxLineBytes,
    checkUtf8: true,
  })) {
    if (tooLong !== undefined) {
      const error = new InputLineError({
        file,
        line,
        field: "line",
        expected: `a line of at most ${maxLineBytes} bytes (the largest request a provider accepts)`,
        gotText: `${tooLong} bytes`,
      });
      yield { index: index++, line, customId: undefined, error };
      continue;
    }
    // Blank lines (empty or only whitespace) are skipped: they get no index and no output line.
    if (text.trim() === "") continue;
    const parsed = parseInputLine(text, { file, line, index, shape, shapeLine, defaultModel });
    if (invalidUtf8At !== undefined) {
      // Sending the text with U+FFFD in place of the bad bytes would change the request
      // silently; JSON text must be UTF-8 (RFC 8259). Its custom_id, if readable, is kept.
      const error = new InputLineError({
        file,
        line,
        field: "line",
        expected: "UTF-8 text",
        gotText: `a byte that is not UTF-8 at byte ${invalidUtf8At + 1} of the line`,
      });
      yield { index: index++, line, customId: parsed.entry.customId, error };
      continue;
    }
    if (shape === undefined && parsed.shape !== undefined) {
      shape = parsed.shape;
      shapeLine = line;
      state.shape = shape;
    }
    index += 1;
    yield parsed.entry;
  }
}

function open(file: string, options: ReadInputOptions): AsyncIterable<Buffer> {
  if (options.bytes === 0) return (async function* () {})();
  return createReadStream(file, {
    highWaterMark: options.chunkBytes ?? 65_536,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.bytes === undefined ? {} : { end: options.bytes - 1 }), // `end` is inclusive
  });
}

/**
 * Yields one entry per non-blank line of `file`, in file order: a `BatchItem`, or an
 * `InvalidLine` whose `error` names `file:line`, the field, what was expected and what was found.
 * The shape is detected per file from the first valid line; a later line of another shape is
 * invalid. Blank lines yield nothing. Rejects on I/O errors (missing file, ...) and on abort.
 */
export function readInput(
  file: string,
  options: ReadInputOptions = {},
): AsyncGenerator<InputEntry> {
  return entriesOf(file, open(file, options), options);
}

export type ScanInputOptions = ReadInputOptions & {
  /** How many invalid lines to keep in `errors`; all are counted. @default 20 */
  maxErrors?: number | undefined;
};

/** What a pass over the whole input found. */
export type InputScan = {
  /** The detected shape; `undefined` when no line is valid. */
  shape: InputShape | undefined;
  /** Items (non-blank lines): the number of output lines a complete run writes. */
  total: number;
  /** Lines in the file, blank ones included. */
  lines: number;
  /** How many lines are invalid. */
  invalid: number;
  /** The first `maxErrors` invalid lines' errors, in file order. */
  errors: InputLineError[];
  /** Every repeated custom_id (a line that repeats an earlier line's id), in file order. */
  duplicates: DuplicateId[];
  /** The file's size, in bytes. */
  bytes: number;
  /** SHA-256 of the whole file, hex: identifies the input for resume. */
  sha256: string;
};

/**
 * Reads the whole file once, keeping only counts, the first errors and the set of custom_ids, so
 * the caller can report totals, refuse duplicates and (`--strict`) stop before any call.
 */
export async function scanInput(file: string, options: ScanInputOptions = {}): Promise<InputScan> {
  const maxErrors = options.maxErrors ?? 20;
  const hash = createHash("sha256");
  let bytes = 0;
  let lines = 0;
  let lastByte = 10;
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of open(file, options)) {
      hash.update(chunk);
      bytes += chunk.length;
      // Counting newlines here, not in the splitter, also counts blank lines.
      for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines += 1;
      if (chunk.length > 0) lastByte = chunk[chunk.length - 1] ?? 10;
      yield chunk;
    }
  }
  const scan: Omit<InputScan, "bytes" | "sha256" | "lines"> = {
    shape: undefined,
    total: 0,
    invalid: 0,
    errors: [],
    duplicates: [],
  };
  const firstLineOf = new Map<string, number>();
  const state: ShapeState = { shape: undefined };
  for await (const entry of entriesOf(file, hashed(), options, state)) {
    scan.total += 1;
    if (isInvalid(entry)) {
      scan.invalid += 1;
      if (scan.errors.length < maxErrors) scan.errors.push(entry.error);
    }
    // An invalid line's custom_id counts too: its output line carries it, so a second line with
    // the same id could not be told apart from it.
    const id = entry.customId;
    if (id === undefined) continue;
    const first = firstLineOf.get(id);
    if (first === undefined) firstLineOf.set(id, entry.line);
    else scan.duplicates.push({ customId: id, firstLine: first, line: entry.line });
  }
  // A last line without a newline is a line too.
  if (lastByte !== 10) lines += 1;
  return { ...scan, shape: state.shape, bytes, sha256: hash.digest("hex"), lines };
}

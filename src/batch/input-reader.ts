// Streams a batch input file (JSONL) as requests, and pre-scans it (totals, invalid lines,
// duplicate custom_ids, content hash) before any call is made. Memory does not grow with the file,
// except the scan's set of custom_ids.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { DuplicateId, InputLineError } from "../errors.ts";
import { type InputEntry, type InputShape, isInvalid, parseInputLine } from "./input-line.ts";
import { splitLines } from "./line-splitter.ts";

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
};

/** The file's shape as detected so far; updated by `entriesOf` as it reads. */
type ShapeState = { shape: InputShape | undefined };

async function* entriesOf(
  file: string,
  chunks: AsyncIterable<Buffer>,
  defaultModel: string | undefined,
  state: ShapeState = { shape: undefined },
): AsyncGenerator<InputEntry> {
  let shape: InputShape | undefined;
  let shapeLine: number | undefined;
  let index = 0;
  for await (const { line, text } of splitLines(chunks)) {
    // Blank lines (empty or only whitespace) are skipped: they get no index and no output line.
    if (text.trim() === "") continue;
    const parsed = parseInputLine(text, { file, line, index, shape, shapeLine, defaultModel });
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
  return entriesOf(file, open(file, options), options.defaultModel);
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
  for await (const entry of entriesOf(file, hashed(), options.defaultModel, state)) {
    scan.total += 1;
    if (isInvalid(entry)) {
      scan.invalid += 1;
      if (scan.errors.length < maxErrors) scan.errors.push(entry.error);
      continue;
    }
    const first = firstLineOf.get(entry.customId);
    if (first === undefined) firstLineOf.set(entry.customId, entry.line);
    else scan.duplicates.push({ customId: entry.customId, firstLine: first, line: entry.line });
  }
  // A last line without a newline is a line too.
  if (lastByte !== 10) lines += 1;
  return { ...scan, shape: state.shape, bytes, sha256: hash.digest("hex"), lines };
}

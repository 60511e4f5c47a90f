// The errors the batch file layer raises. They extend SalvoError with stable codes; they live here
// until the lead moves them into src/errors.ts (their codes and fields will not change).

import { SalvoError } from "../errors.ts";

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Where and why one input line is not a valid request. */
export type InputLineErrorDetails = {
  /** The input file's path, as given. */
  file: string;
  /** The 1-based line of the file. */
  line: number;
  /** The field at fault, e.g. `body.messages`, `params.max_tokens`, `custom_id`; `JSON` for a parse error. */
  field: string;
  /** What a valid value looks like, e.g. `a non-empty array`. */
  expected: string;
  /** The value that was found (abbreviated in the message). */
  got?: unknown;
  /** Shown instead of `got` when the problem is not a value, e.g. the JSON parser's message. */
  gotText?: string;
};

/**
 * One line of a batch input file is not a valid request. Message shape:
 * `<file>:<line>: <field>: expected <expected>, got <got>`. In a run, it becomes that item's
 * output line (`error.code` = `SALVO_INPUT_INVALID`) instead of stopping the run, unless `strict`.
 */
export class InputLineError extends SalvoError {
  override readonly code = "SALVO_INPUT_INVALID";
  readonly file: string;
  readonly line: number;
  readonly field: string;
  readonly expected: string;
  readonly got: unknown;
  constructor(details: InputLineErrorDetails) {
    super(
      `${details.file}:${details.line}: ${details.field}: expected ${details.expected}, got ${
        details.gotText ?? show(details.got)
      }`,
    );
    this.name = "InputLineError";
    this.file = details.file;
    this.line = details.line;
    this.field = details.field;
    this.expected = details.expected;
    this.got = details.got;
  }
}

/** Two input lines with the same `custom_id`. */
export type DuplicateId = {
  customId: string;
  /** The 1-based line where the id first appeared. */
  firstLine: number;
  /** The 1-based line that repeats it. */
  line: number;
};

/**
 * The input file was refused before any call was made: duplicate `custom_id`s (always), or invalid
 * lines under `strict`. `errors` holds the first few problems; `errorCount` counts them all.
 */
export class InputRejectedError extends SalvoError {
  override readonly code = "SALVO_INPUT_REJECTED";
  readonly file: string;
  /** The first invalid lines (at most `maxErrors` of the scan), in file order. */
  readonly errors: readonly InputLineError[];
  /** How many lines are invalid in all. */
  readonly errorCount: number;
  /** Every repeated `custom_id`, with both lines. */
  readonly duplicates: readonly DuplicateId[];
  constructor(details: {
    file: string;
    errors: readonly InputLineError[];
    errorCount: number;
    duplicates: readonly DuplicateId[];
  }) {
    const parts: string[] = [];
    if (details.errorCount > 0) {
      const more = details.errorCount - details.errors.length;
      parts.push(
        `${details.errorCount} invalid line${details.errorCount === 1 ? "" : "s"}:`,
        ...details.errors.map((e) => `  ${e.message}`),
      );
      if (more > 0) parts.push(`  ... and ${more} more`);
    }
    if (details.duplicates.length > 0) {
      parts.push(
        `${details.duplicates.length} duplicate custom_id${details.duplicates.length === 1 ? "" : "s"}:`,
        ...details.duplicates
          .slice(0, 20)
          .map(
            (d) =>
              `  ${details.file}:${d.line}: custom_id ${JSON.stringify(d.customId)} already used at line ${d.firstLine}`,
          ),
      );
      if (details.duplicates.length > 20)
        parts.push(`  ... and ${details.duplicates.length - 20} more`);
    }
    super(`${details.file} was refused; no call was made.\n${parts.join("\n")}`);
    this.name = "InputRejectedError";
    this.file = details.file;
    this.errors = details.errors;
    this.errorCount = details.errorCount;
    this.duplicates = details.duplicates;
  }
}

/**
 * An existing output or journal cannot be resumed: it was written for another input or other
 * options, or it is corrupt. Nothing was called or changed; `--fresh` starts over.
 */
export class ResumeRefusedError extends SalvoError {
  override readonly code = "SALVO_RESUME_REFUSED";
  /** The file that could not be resumed (the output or its journal). */
  readonly file: string;
  constructor(file: string, reason: string) {
    super(
      `cannot resume ${file}: ${reason}. Rerun with --fresh to start over (this deletes the output and its journal), or choose another --output.`,
    );
    this.name = "ResumeRefusedError";
    this.file = file;
  }
}

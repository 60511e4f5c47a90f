// Finds where an interrupted batch run stopped: the complete, in-order prefix of the output and
// the journaled answers past it. Torn tails (a kill mid-write, or a power loss) are cut off.

import { createReadStream } from "node:fs";
import { rm, stat, truncate } from "node:fs/promises";
import { ResumeRefusedError } from "../errors.ts";
import { isJournalHeader, isJournalRecord, Journal, type JournalHeader } from "./journal.ts";
import { splitLines } from "./line-splitter.ts";
import { isRerun, type Redo } from "./output-line.ts";

export type ResumeOptions = {
  /** The output path. */
  output: string;
  /** The journal path. @default `${output}.journal` */
  journal?: string | undefined;
  /** The header this run would write; an existing journal must match it (`created_at` aside). */
  header: JournalHeader;
  /** Items in the input: an output with more lines, or a record past it, is refused. */
  total: number;
  /** Delete the output and the journal and start over. @default false */
  fresh?: boolean | undefined;
  /** Stops reading; rejects with the signal's reason. @default undefined */
  signal?: AbortSignal | undefined;
  /**
   * Change nothing (a dry run): no file is cut, created or deleted; the state is what a real
   * resume would find. @default false
   */
  readOnly?: boolean | undefined;
  /**
   * Which existing lines (output or journal, as parsed JSON) are not done: their items are run
   * again. Called with the item's index. @default lines of items a budget stopped (`isRerun`)
   */
  redo?: ((index: number, line: unknown) => Redo | undefined) | undefined;
};

/** Where a run resumes. */
export type ResumeState = {
  /** Complete lines in the output: items `0 .. doneInOutput - 1` are done and written. */
  doneInOutput: number;
  /** Output lines (JSON text) of journaled items with index >= `doneInOutput`, by index. */
  journaled: Map<number, string>;
  /** `custom_id` of each output line, by index: the runner checks them against the input. */
  outputIds: Array<string | null>;
  /** The input line each output line answers, by index. */
  outputLines: number[];
  /** How the output's lines ended. */
  outputCounts: { succeeded: number; failed: number; invalid: number };
  /** Whether a usable journal exists (append to it) or a new one must be created. */
  journalExists: boolean;
  /** Bytes cut from the end of the output and the journal (torn or unparsable last lines). */
  truncatedBytes: { output: number; journal: number };
  /**
   * Output lines of items that were not attempted and run again (`isRerun`: over budget); they
   * are also in `redo`.
   */
  rerun: number;
  /**
   * Items with a line (in the output or the journal) that `redo` says to run again, and why. The
   * output was cut at the first such line, the complete lines after it moved to the journal first.
   */
  redo: Map<number, Redo>;
};

/** `start` is the byte offset where the line begins (after the last accepted line). */
type LineCheck = (text: string, line: number, start: number) => boolean;

/**
 * Reads `path` line by line, passing each newline-terminated line to `check`. The valid length is
 * the end of the last line `check` accepted; what follows it may only be lines `check` rejects or
 * an unterminated line (a torn tail). A rejected line followed by an accepted one is corruption:
 * refused with its line number. A missing file reads as empty.
 */
async function readValidPrefix(
  path: string,
  check: LineCheck,
  signal: AbortSignal | undefined,
): Promise<{ exists: boolean; size: number; validLength: number; badLine: number | undefined }> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      return { exists: false, size: 0, validLength: 0, badLine: undefined };
    throw error;
  }
  let validLength = 0;
  let rejected: number | undefined;
  const chunks = createReadStream(path, { ...(signal ? { signal } : {}) });
  for await (const { line, text, end, terminated } of splitLines(chunks)) {
    if (!terminated) {
      rejected ??= line;
      break;
    }
    if (!check(text, line, validLength)) {
      rejected ??= line;
      continue;
    }
    if (rejected !== undefined)
      throw new ResumeRefusedError(
        path,
        `line ${rejected} is not a valid record (the file is corrupt)`,
      );
    validLength = end;
  }
  return { exists: true, size, validLength, badLine: rejected };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * What of a header must match to resume: the answer-changing options; and for a version-1 journal
 * (whose lines carry no request digest to check each against the input) the input's content.
 */
function sameRun(found: JournalHeader, header: JournalHeader): boolean {
  if (found.options_sha256 !== header.options_sha256) return false;
  return (
    found.salvo_journal !== 1 ||
    (found.input.sha256 === header.input.sha256 && found.input.bytes === header.input.bytes)
  );
}

function describe(h: JournalHeader): string {
  return `input ${h.input.path} (${h.input.bytes} bytes, sha256 ${h.input.sha256.slice(0, 12)}), options ${h.options_sha256.slice(0, 12)}`;
}

/**
 * Prepares a resume (or, with `fresh`, a fresh start). Reads the journal first: a header written
 * with other options (or, for a version-1 journal, for another input) is refused
 * (ResumeRefusedError) before anything is changed. Then cuts torn tails off both files (so later
 * appends start on a line boundary), checks the output's lines are in input order, and collects
 * the journaled lines the output lacks (the last record of an index wins: a later run redid it).
 * An output without a journal must be whole (no torn tail): it is then a finished run, or not
 * Salvo's, and is refused rather than cut. The caller checks each output line's `custom_id` and
 * `line` against the input (`outputIds`, `outputLines`) before calling anything.
 *
 * A line that `redo` says to run again (a budget stopped it, its input line changed, it failed
 * transiently...) is not done: the output is cut at the first such line, after the complete lines
 * behind it that stay done have been appended to the journal and synced (so a crash in between
 * loses nothing), and the rerun writes them back from the journal in order while it calls the
 * items to redo. A journaled line to redo is dropped the same way.
 */
export async function prepareResume(options: ResumeOptions): Promise<ResumeState> {
  const { output, header, total, signal } = options;
  const journal = options.journal ?? `${output}.journal`;
  const redo =
    options.redo ??
    ((_index: number, line: unknown): Redo | undefined =>
      isRerun(line) ? { reason: "budget", code: undefined } : undefined);
  const state: ResumeState = {
    doneInOutput: 0,
    journaled: new Map(),
    outputIds: [],
    outputLines: [],
    outputCounts: { succeeded: 0, failed: 0, invalid: 0 },
    journalExists: false,
    truncatedBytes: { output: 0, journal: 0 },
    rerun: 0,
    redo: new Map(),
  };
  const readOnly = options.readOnly ?? false;
  if (options.fresh) {
    if (readOnly) return state;
    await rm(output, { force: true });
    await rm(journal, { force: true });
    return state;
  }

  // The journal: a header, then records. Records are kept as parsed JSON until the output is read.
  const records = new Map<number, unknown>();
  let headerSeen = false;
  const journalRead = await readValidPrefix(
    journal,
    (text, line) => {
      const value = parse(text);
      if (line === 1) {
        if (!isJournalHeader(value)) return false;
        if (!sameRun(value, header))
          throw new ResumeRefusedError(
            journal,
            `it was written for ${describe(value)}, but this run has ${describe(header)}`,
          );
        headerSeen = true;
        return true;
      }
      if (!isJournalRecord(value) || value.i < 0) return false;
      if (value.i >= total)
        throw new ResumeRefusedError(
          journal,
          `line ${line} records item ${value.i}, but the input has ${total}`,
        );
      records.delete(value.i); // the last record of an index is the newest
      records.set(value.i, value.line);
      return true;
    },
    signal,
  );
  if (journalRead.exists && !headerSeen) {
    // Killed before the header was whole: nothing was journaled yet.
    if (!readOnly) await rm(journal, { force: true });
  } else if (journalRead.exists) {
    state.journalExists = true;
    if (journalRead.validLength < journalRead.size) {
      if (!readOnly) await truncate(journal, journalRead.validLength);
      state.truncatedBytes.journal = journalRead.size - journalRead.validLength;
    }
  }

  // The output: complete lines, in input order. From the first line to redo on, the complete
  // lines are carried (by item index) instead of counted as done.
  let lastLine = 0;
  let lines = 0;
  let cutAt: number | undefined;
  const carried = new Map<number, unknown>();
  const outputRead = await readValidPrefix(
    output,
    (text, line, start) => {
      const value = parse(text) as Record<string, unknown> | undefined;
      if (typeof value !== "object" || value === null || !("error" in value)) return false;
      const inputLine = value.line;
      const customId = value.custom_id;
      if (typeof inputLine !== "number" || (typeof customId !== "string" && customId !== null))
        return false;
      if (inputLine <= lastLine)
        throw new ResumeRefusedError(
          output,
          `line ${line} answers input line ${inputLine}, after input line ${lastLine}: it is not in input order`,
        );
      lastLine = inputLine;
      const index = lines++;
      // An index past the input's end is refused below (the output has more lines than items).
      const again = index < total ? redo(index, value) : undefined;
      if (again !== undefined) {
        cutAt ??= start;
        state.redo.set(index, again);
        return true;
      }
      if (cutAt !== undefined) {
        carried.set(index, value);
        return true;
      }
      state.outputIds.push(customId);
      state.outputLines.push(inputLine);
      const error = value.error as { code?: unknown } | null;
      if (error === null) state.outputCounts.succeeded += 1;
      else if (error.code === "SALVO_INPUT_INVALID") state.outputCounts.invalid += 1;
      else state.outputCounts.failed += 1;
      return true;
    },
    signal,
  );
  // A rejected last line was pushed nowhere; only accepted lines count.
  state.doneInOutput = state.outputIds.length;
  // Without a journal no run was in progress (a run journals before it writes, and deletes the
  // journal only once the output is complete), so a bad tail means this is not a Salvo output:
  // refuse rather than cut a user's file.
  if (!state.journalExists && outputRead.badLine !== undefined)
    throw new ResumeRefusedError(
      output,
      `it has no journal and its line ${outputRead.badLine} is not a complete Salvo output line, so it may not be a Salvo output`,
    );
  if (lines > total)
    throw new ResumeRefusedError(
      output,
      `it has ${lines} lines but the input has only ${total} items`,
    );
  // A journal record is newer than the output's line for its index (a run journals, then writes).
  for (const [index, value] of carried) if (!records.has(index)) records.set(index, value);
  const toCarry: Array<[number, unknown]> = [];
  for (const [index, value] of carried)
    if (records.get(index) === value && redo(index, value) === undefined)
      toCarry.push([index, value]);
  if (cutAt !== undefined && toCarry.length > 0 && !readOnly) {
    // Durable in the journal before they leave the output.
    const writer = await Journal.open(journal, state.journalExists ? undefined : header, {
      fsync: true,
    });
    try {
      const appended = toCarry.map(([index, value]) => writer.append(index, JSON.stringify(value)));
      await writer.flush();
      await Promise.all(appended);
    } finally {
      await writer.close();
    }
    state.journalExists = true;
  }
  const cut = cutAt ?? outputRead.validLength;
  if (cut < outputRead.size) {
    if (!readOnly) await truncate(output, cut);
    state.truncatedBytes.output = outputRead.size - outputRead.validLength;
  }

  for (const [index, line] of records) {
    if (index < state.doneInOutput) continue;
    const again = redo(index, line);
    if (again === undefined) {
      state.journaled.set(index, JSON.stringify(line));
      state.redo.delete(index);
    } else state.redo.set(index, again);
  }
  for (const again of state.redo.values()) if (again.reason === "budget") state.rerun += 1;
  return state;
}

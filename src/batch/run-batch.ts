// The batch driver: input file -> calls -> ordered output file, crash-safe and resumable. It knows
// no scheduler: the caller's `execute` makes the call (through the real scheduler in the CLI, a
// fake in tests).
//
// Crash-safety invariant: each completed item's output line reaches the journal before the output,
// the output only ever grows by whole lines in input order, and a rerun takes every item from
// the output prefix, then the journal, before calling anything. So after a kill -9 at any moment
// (even mid-write), a rerun yields every line exactly once, in input order, and no item whose
// answer had reached the journal is called again: only the items in flight at the kill are.
// An `execute` that journals its answer through `keep` while the call still holds its slot
// (the CLI does) makes "in flight" mean at most the concurrency limit: an answer is never
// paid for, its slot freed, and the next call begun before it is in the journal.
//
// What a rerun runs again on purpose (`redoOf`): lines that failed transiently (permanent
// failures too under `retryFailed`), lines of items a budget stopped, and lines whose input was
// edited since (each output line carries its request's SHA-256). Never an answer to the same
// request. One run per output at a time (`RunLock`).

import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { ConfigError, InputRejectedError, ResumeRefusedError } from "../errors.ts";
import { type BatchItem, isInvalid } from "./input-line.ts";
import { type InputScan, readInput, scanInput } from "./input-reader.ts";
import { Journal, type JournalHeader } from "./journal.ts";
import { OrderedWriter } from "./ordered-writer.ts";
import {
  formatOutputLine,
  type ItemOutcome,
  invalidDigest,
  invalidOutputLine,
  itemError,
  outputLine,
  type Redo,
  type RedoReason,
  redoOf,
  requestDigest,
} from "./output-line.ts";
import { prepareResume, type ResumeState } from "./resume.ts";
import { RunLock } from "./run-lock.ts";

export type RunBatchOptions = {
  /** The input JSONL path (OpenAI Batch, cookbook body + metadata, or Anthropic batch lines). */
  input: string;
  /** The output JSONL path; its journal is `<output>.journal`. */
  output: string;
  /**
   * Makes one item's call and resolves with how it ended (rejecting counts as a failure with the
   * error's code). `signal` aborts on the caller's signal or a fatal batch error: the call should
   * then settle promptly. A failure that settles after the abort is not recorded (the item is
   * redone on resume); a success is.
   *
   * `keep` journals a successful outcome at once: an `execute` that calls it while the call
   * still holds its concurrency slot (Salvo's `keep` option) bounds the answers paid for and
   * not yet journaled, at a kill, by the concurrency limit. A kept outcome is the item's line,
   * whatever `execute` resolves with afterwards (an answer that arrived is kept).
   */
  execute: (
    item: BatchItem,
    signal: AbortSignal,
    keep: (outcome: ItemOutcome) => Promise<void>,
  ) => Promise<ItemOutcome>;
  /**
   * The caller already holds the output's lock (`RunLock.acquire(output, \`${output}.lock\`)`),
   * taken before it did work of its own on this output (the batch backend submits provider
   * batches first), and releases it: runBatch takes none. @default false
   */
  lockHeld?: boolean | undefined;
  /** Delete an existing output and journal and start over, instead of resuming. @default false */
  fresh?: boolean | undefined;
  /**
   * On a rerun, also run again the lines that failed for good (400, 401, 403, 404, quota, context
   * too long: see `failureKind`). Lines that failed transiently (timeouts, network errors, 5xx,
   * 429/529 after their attempts) are run again whatever this says; answers never are.
   * @default false
   */
  retryFailed?: boolean | undefined;
  /** Refuse the whole input (InputRejectedError) if any line is invalid, before any call. @default false */
  strict?: boolean | undefined;
  /** The model for requests that name none; a line without either is invalid. @default undefined */
  defaultModel?: string | undefined;
  /**
   * Any JSON value naming the options that change answers (provider, base URL, model overrides,
   * temperature...). With `defaultModel` it is hashed into the journal header: a resume with a
   * different value is refused. @default undefined
   */
  runKey?: unknown;
  /**
   * How many items may be admitted ahead of the oldest unwritten one; bounds the reorder buffer
   * and, with `concurrency`, the calls in flight. @default 1024 (items)
   */
  window?: number | undefined;
  /** Most `execute` calls in flight at once. @default the window */
  concurrency?: number | undefined;
  /** fsync the journal after each batch of records (survives power loss, not just kill -9). @default false */
  fsync?: boolean | undefined;
  /** How many invalid lines an InputRejectedError lists (all are counted). @default 20 */
  maxErrors?: number | undefined;
  /** Stops admitting items; in-flight calls get it and settle; resolves with `interrupted: true`. */
  signal?: AbortSignal | undefined;
  /** Progress events. A listener that throws is ignored: progress must not stop a run. */
  onEvent?: ((event: BatchEvent) => void) | undefined;
};

export type BatchEvent =
  /** The input was scanned: totals, invalid lines, duplicates. */
  | { type: "scanned"; scan: InputScan }
  /** The output and journal were read: `doneInOutput` items are done, `journaled` more are known. */
  | {
      type: "resumed";
      doneInOutput: number;
      journaled: number;
      truncatedBytes: ResumeState["truncatedBytes"];
      /** Items an earlier run did not attempt (over budget), run now. */
      rerun: number;
      /** Items with a line to run again (over budget, changed, failed), by reason. */
      redo: Record<RedoReason, number>;
    }
  /** One item's line was handed to the output writer. */
  | {
      type: "item";
      index: number;
      customId: string | null;
      line: number;
      status: "succeeded" | "failed" | "invalid";
      /** Where its line came from: a call now, the journal of an earlier run, or the input (invalid). */
      source: "executed" | "journal" | "input";
      /** Why an item that had a line is run again (see `RedoReason`); absent for a first run. */
      redo?: RedoReason | undefined;
    };

/** What a run did. `succeeded + failed + invalid` = lines in the output. */
export type BatchSummary = {
  /** Items in the input (non-blank lines). */
  total: number;
  /** Output lines with an answer. */
  succeeded: number;
  /** Output lines with a failed call. */
  failed: number;
  /** Output lines for invalid input lines. */
  invalid: number;
  /** Items already in the output when this run started. */
  resumedFromOutput: number;
  /** Items written from the journal without a call. */
  resumedFromJournal: number;
  /** `execute` calls made by this run. */
  executed: number;
  /** Items an earlier run did not attempt (its budget stopped it), run again by this one. */
  rerun: number;
  /**
   * Items an earlier run ended with a failure, run again by this one: `transient` ones always,
   * `permanent` ones under `retryFailed`; `byCode` counts them by their earlier error code.
   */
  retried: { transient: number; permanent: number; byCode: Record<string, number> };
  /**
   * Items whose input line was edited after an earlier run answered (or refused) it: the old line
   * is replaced by a new call's (or, for a line now invalid, by its error line).
   */
  changed: number;
  /** The signal stopped the run; rerun to resume. The journal is kept. */
  interrupted: boolean;
};

/** JSON with sorted keys, so the options hash does not depend on key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null)
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(value) ?? "null";
}

/** The journal header of a run of `options` over a scanned input (what a resume must match). */
export function journalHeader(
  options: Pick<RunBatchOptions, "input" | "output" | "defaultModel" | "runKey">,
  scan: Pick<InputScan, "bytes" | "sha256">,
): JournalHeader {
  return {
    salvo_journal: 2,
    input: { path: options.input, bytes: scan.bytes, sha256: scan.sha256 },
    output: options.output,
    options_sha256: createHash("sha256")
      .update(canonical({ defaultModel: options.defaultModel, runKey: options.runKey }))
      .digest("hex"),
    created_at: new Date().toISOString(),
  };
}

/**
 * The digest of each item of the scanned input, by index (`requestDigest`, or `invalidDigest` for
 * an invalid line): 32 bytes per item, outside the JS heap.
 */
async function inputDigests(
  input: string,
  scan: Pick<InputScan, "bytes" | "total">,
  defaultModel: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const digests = Buffer.alloc(scan.total * 32);
  for await (const entry of readInput(input, { defaultModel, bytes: scan.bytes, signal })) {
    if (entry.index >= scan.total) break;
    const digest = isInvalid(entry) ? invalidDigest(entry.error.message) : requestDigest(entry);
    digest.copy(digests, entry.index * 32);
  }
  return digests;
}

export type BatchResumeOptions = Pick<
  RunBatchOptions,
  "input" | "output" | "defaultModel" | "fresh" | "retryFailed" | "signal"
> & {
  /** The input's scan (its size bounds what is read). */
  scan: InputScan;
  /** This run's journal header (`journalHeader`). */
  header: JournalHeader;
  /** The journal path. @default `${output}.journal` */
  journal?: string | undefined;
  /** Change no file (a dry run). @default false */
  readOnly?: boolean | undefined;
};

/**
 * Where a run of `options` resumes (`prepareResume`), with the batch driver's rule for which
 * existing lines to run again: a budget stopped them, their input line changed since (its
 * request's digest differs), or they failed transiently (or, with `retryFailed`, at all). For a
 * dry run (`readOnly`) as for a real one.
 */
export async function prepareBatchResume(options: BatchResumeOptions): Promise<ResumeState> {
  const { scan } = options;
  const digests = options.fresh
    ? Buffer.alloc(0)
    : await inputDigests(options.input, scan, options.defaultModel, options.signal);
  return prepareResume({
    output: options.output,
    journal: options.journal,
    header: options.header,
    total: scan.total,
    fresh: options.fresh,
    signal: options.signal,
    readOnly: options.readOnly,
    redo: (index, line) =>
      redoOf(line, digests.subarray(index * 32, index * 32 + 32), {
        retryFailed: options.retryFailed,
      }),
  });
}

function positiveInteger(field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1)
    throw new ConfigError({
      field,
      expected: "an integer >= 1",
      got: value,
      where: "runBatch options",
    });
  return value;
}

function statusOf(line: string): "succeeded" | "failed" | "invalid" {
  const error = (JSON.parse(line) as { error: { code?: unknown } | null }).error;
  return error === null ? "succeeded" : error.code === "SALVO_INPUT_INVALID" ? "invalid" : "failed";
}

/**
 * Runs a batch file: scans the input (duplicate custom_ids, and under `strict` any invalid line,
 * refuse it before any call), resumes from the output and journal (or starts fresh), then streams
 * the items: those already done are skipped, journaled ones are written without a call, invalid
 * ones get an error line, the rest go to `execute`. Each outcome is journaled, then written in
 * input order. After a complete run the journal is deleted.
 *
 * One run at a time per output: a second one (in any process on this host, or one whose lock it
 * cannot check on another host) is refused with RunLockedError before anything is read or
 * changed. The lock, `<output>.lock`, is released when the run ends; a killed run's lock is taken
 * over at once by the next run.
 *
 * Rejects with RunLockedError, InputRejectedError, ResumeRefusedError, ConfigError, or an I/O error (after the
 * calls in flight have settled and everything completed is journaled).
 */
export async function runBatch(options: RunBatchOptions): Promise<BatchSummary> {
  if (options.lockHeld) return runLocked(options);
  // One run per output, taken before any file is read or changed (--fresh deletes files).
  const lock = await RunLock.acquire(options.output, `${options.output}.lock`, {
    purpose: "salvo run",
    field: "output",
  });
  try {
    return await runLocked(options);
  } finally {
    await lock.release();
  }
}

async function runLocked(options: RunBatchOptions): Promise<BatchSummary> {
  const { input, output, execute, signal } = options;
  const window = positiveInteger("window", options.window, 1024);
  const concurrency = positiveInteger("concurrency", options.concurrency, window);
  const journalPath = `${output}.journal`;
  const emit = (event: BatchEvent): void => {
    try {
      options.onEvent?.(event);
    } catch {
      // Ignored on purpose: see `onEvent`.
    }
  };
  const summary: BatchSummary = {
    total: 0,
    succeeded: 0,
    failed: 0,
    invalid: 0,
    resumedFromOutput: 0,
    resumedFromJournal: 0,
    executed: 0,
    rerun: 0,
    retried: { transient: 0, permanent: 0, byCode: {} },
    changed: 0,
    interrupted: false,
  };

  // 1. Scan and resume. Nothing is called or written yet; an abort here just returns.
  let scan: InputScan;
  let resume: ResumeState;
  let journal: Journal;
  try {
    scan = await scanInput(input, {
      defaultModel: options.defaultModel,
      maxErrors: options.maxErrors,
      signal,
    });
    summary.total = scan.total;
    emit({ type: "scanned", scan });
    if (scan.duplicates.length > 0 || (options.strict && scan.invalid > 0))
      throw new InputRejectedError({
        file: input,
        errors: options.strict ? scan.errors : [],
        errorCount: options.strict ? scan.invalid : 0,
        duplicates: scan.duplicates,
      });
    const header = journalHeader(options, scan);
    resume = await prepareBatchResume({
      ...options,
      journal: journalPath,
      scan,
      header,
      signal,
    });
    const redo: Record<RedoReason, number> = { budget: 0, changed: 0, transient: 0, permanent: 0 };
    for (const again of resume.redo.values()) redo[again.reason] += 1;
    emit({
      type: "resumed",
      doneInOutput: resume.doneInOutput,
      journaled: resume.journaled.size,
      truncatedBytes: resume.truncatedBytes,
      rerun: resume.rerun,
      redo,
    });
    if (signal?.aborted) throw signal.reason;
    journal = await Journal.open(journalPath, resume.journalExists ? undefined : header, {
      fsync: options.fsync,
    });
  } catch (error) {
    if (signal?.aborted) return { ...summary, interrupted: true };
    throw error;
  }
  summary.resumedFromOutput = resume.doneInOutput;
  summary.rerun = resume.rerun;
  summary.succeeded = resume.outputCounts.succeeded;
  summary.failed = resume.outputCounts.failed;
  summary.invalid = resume.outputCounts.invalid;

  let writer: OrderedWriter;
  try {
    writer = await OrderedWriter.open(output, { startIndex: resume.doneInOutput, window });
  } catch (error) {
    await journal.close();
    throw error;
  }

  // 2. Stream the items. `stop` aborts on the caller's signal or on a fatal error.
  const fatal = new AbortController();
  const stop = signal ? AbortSignal.any([signal, fatal.signal]) : fatal.signal;
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    failure ??= { error };
    fatal.abort(error);
  };
  let wakeUp: (() => void) | undefined;
  const wake = (): void => {
    const resolve = wakeUp;
    wakeUp = undefined;
    resolve?.();
  };
  stop.addEventListener("abort", wake, { once: true });
  const waitUntil = async (ready: () => boolean): Promise<void> => {
    while (!ready() && !stop.aborted)
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
      });
  };
  const tasks = new Set<Promise<void>>();
  let inFlight = 0;
  const count = (status: "succeeded" | "failed" | "invalid"): void => {
    summary[status] += 1;
  };
  /** Counts an item run again once its new line is written (an interrupted redo is not counted). */
  const countRedo = (again: Redo | undefined): void => {
    if (again === undefined || again.reason === "budget") return;
    if (again.reason === "changed") {
      summary.changed += 1;
      return;
    }
    summary.retried[again.reason] += 1;
    const code = again.code ?? "unknown";
    summary.retried.byCode[code] = (summary.retried.byCode[code] ?? 0) + 1;
  };

  const run = async (item: BatchItem): Promise<void> => {
    const started = performance.now();
    // The first success `execute` kept (journaled while its call held its slot), and its line.
    let kept = undefined as { outcome: ItemOutcome; text: string } | undefined;
    let keeping = undefined as Promise<void> | undefined;
    // Once the item has its line (a deadline or an abort settled it first), a late answer is
    // not journaled beside it.
    let recorded = false;
    const keep = (outcome: ItemOutcome): Promise<void> => {
      if (kept === undefined && !recorded && outcome.ok) {
        const text = formatOutputLine(outputLine(item, outcome));
        kept = { outcome, text };
        keeping = journal.append(item.index, text);
      }
      // A failed write fails the run below, not the call.
      return keeping?.catch(() => undefined) ?? Promise.resolve();
    };
    let outcome: ItemOutcome;
    try {
      outcome = await execute(item, stop, keep);
    } catch (error) {
      outcome = {
        ok: false,
        error: itemError(error),
        attempts: 1,
        latencyMs: performance.now() - started,
      };
    }
    let text: string;
    if (kept !== undefined) {
      await keeping; // rethrows a failed write of the kept line
      outcome = kept.outcome;
      text = kept.text;
    } else {
      // Stopped, not finished: leave it to the next run rather than record a failure.
      if (!outcome.ok && stop.aborted) return;
      recorded = true;
      text = formatOutputLine(outputLine(item, outcome));
      await journal.append(item.index, text);
    }
    writer.put(item.index, text);
    const status = outcome.ok ? "succeeded" : "failed";
    count(status);
    const again = resume.redo.get(item.index);
    countRedo(again);
    emit({
      type: "item",
      index: item.index,
      customId: item.customId,
      line: item.line,
      status,
      source: "executed",
      redo: again?.reason,
    });
  };

  try {
    // Only what the scan read: an input still growing yields the scanned items (the next run
    // takes the rest), never items past the totals this run reported and checked.
    for await (const entry of readInput(input, {
      defaultModel: options.defaultModel,
      bytes: scan.bytes,
    })) {
      if (stop.aborted) break;
      const { index } = entry;
      if (index < resume.doneInOutput) {
        const customId = isInvalid(entry) ? (entry.customId ?? null) : entry.customId;
        if (resume.outputIds[index] !== customId || resume.outputLines[index] !== entry.line)
          throw new ResumeRefusedError(
            output,
            `its line ${index + 1} answers custom_id ${JSON.stringify(resume.outputIds[index])} at input line ${resume.outputLines[index]}, but item ${index} of ${input} is custom_id ${JSON.stringify(customId)} at line ${entry.line}`,
          );
        continue;
      }
      await waitUntil(() => index < writer.nextIndex + window);
      if (stop.aborted) break;
      if (isInvalid(entry)) {
        writer.put(index, formatOutputLine(invalidOutputLine(entry)));
        count("invalid");
        const again = resume.redo.get(index);
        countRedo(again);
        emit({
          type: "item",
          index,
          customId: entry.customId ?? null,
          line: entry.line,
          status: "invalid",
          source: "input",
          redo: again?.reason,
        });
        continue;
      }
      const journaled = resume.journaled.get(index);
      if (journaled !== undefined) {
        // A kept answer must be this item's: the input may have changed since it was kept (lines
        // carried over a budget stop are journaled under the current input's header).
        const kept = JSON.parse(journaled) as { custom_id?: unknown; line?: unknown };
        if (kept.custom_id !== entry.customId || kept.line !== entry.line)
          throw new ResumeRefusedError(
            output,
            `its journal answers custom_id ${JSON.stringify(kept.custom_id)} at input line ${String(kept.line)} for item ${index}, but item ${index} of ${input} is custom_id ${JSON.stringify(entry.customId)} at line ${entry.line}`,
          );
        writer.put(index, journaled);
        const status = statusOf(journaled);
        count(status);
        summary.resumedFromJournal += 1;
        emit({
          type: "item",
          index,
          customId: entry.customId,
          line: entry.line,
          status,
          source: "journal",
        });
        continue;
      }
      await waitUntil(() => inFlight < concurrency);
      if (stop.aborted) break;
      inFlight += 1;
      summary.executed += 1;
      const task = run(entry)
        .catch(fail)
        .finally(() => {
          inFlight -= 1;
          tasks.delete(task);
          wake();
        });
      tasks.add(task);
    }
  } catch (error) {
    fail(error);
  }

  // 3. Let the calls in flight settle, then flush. Everything completed is now journaled.
  while (tasks.size > 0) await Promise.all(tasks);
  stop.removeEventListener("abort", wake);
  const complete = failure === undefined && !stop.aborted && writer.nextIndex === summary.total;
  try {
    await journal.close();
  } catch (error) {
    fail(error);
  }
  try {
    // fsync before the journal goes: the output alone must then hold every line.
    await writer.close({ fsync: complete });
  } catch (error) {
    fail(error);
  }
  if (failure !== undefined) throw failure.error;
  if (complete) await rm(journalPath, { force: true });
  return { ...summary, interrupted: !complete };
}

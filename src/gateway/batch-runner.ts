// Runs the gateway's batches: each request goes through the gateway's own call path (the tenant's
// limits and budget, the upstream's scheduler, under the real-time limits, behind interactive
// calls), a window of them at a time, and each answer is appended to the batch's results file
// (fsynced, a group of answers per write) before it counts. A gateway killed and restarted
// resumes every batch from its results file: a request answered before the kill is never sent
// again; only those in flight at the kill run twice. When every request has an answer (or the
// batch was cancelled, or its 24 h window closed) the batch is finalised: the requests never run
// get their `batch_cancelled` / `batch_expired` record, and an OpenAI batch its output and error
// files.

import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { ResultSpool, type SpooledResult } from "../batch/batch-results.ts";
import { splitLines } from "../batch/line-splitter.ts";
import type { BatchStatus, BatchStore, StoredBatch } from "./batch-store.ts";

/** One request of a batch, as stored (normalised for both APIs). */
export type BatchLine = { index: number; customId: string; body: Record<string, unknown> };

/** What the gateway did with one request of a batch. */
export type LineOutcome =
  /** An answer (or the error the request ended with): recorded. */
  | { kind: "answered"; status: number; body: unknown; requestId: string | undefined }
  /** Stopped by the gateway's shutdown: not recorded, it runs again after a restart. */
  | { kind: "stopped" };

/** Runs one request through the gateway; never rejects. */
export type LineExecutor = (
  batch: StoredBatch,
  line: BatchLine,
  signal: AbortSignal,
) => Promise<LineOutcome>;

export type BatchRunnerOptions = {
  store: BatchStore;
  execute: LineExecutor;
  /**
   * A batch's requests unrecorded at once (sent, or answered and being recorded): a kill pays
   * again for at most this many. A number, or one per batch (the gateway gives its upstream's
   * concurrency limit, so that a batch never holds more than the upstream can serve). @default 64
   */
  window?: number | ((batch: StoredBatch) => number) | undefined;
  /** Epoch ms. @default Date.now */
  now?: (() => number) | undefined;
  /** A batch that could not be run (an I/O error): it stays as it was and resumes on restart. */
  onError?: ((batch: StoredBatch, error: unknown) => void) | undefined;
};

/** What an ended batch's requests came to. */
type Counts = NonNullable<StoredBatch["counts"]>;

type Run = {
  batch: StoredBatch;
  /** Answers so far: 2xx and not. */
  succeeded: number;
  errored: number;
  cancelled: boolean;
  done: Promise<void>;
};

const TERMINAL: ReadonlySet<BatchStatus> = new Set(["completed", "failed", "cancelled", "expired"]);

export class BatchRunner {
  readonly #o: BatchRunnerOptions;
  readonly #runs = new Map<string, Run>();
  /** Aborted by `close`: requests in flight stop, unrecorded. */
  readonly #stop = new AbortController();
  #draining = false;

  constructor(options: BatchRunnerOptions) {
    this.#o = options;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** Starts (or, after a restart, resumes) a batch that has not ended. */
  start(batch: StoredBatch): void {
    if (TERMINAL.has(batch.status) || this.#runs.has(batch.id) || this.#draining) return;
    const run: Run = {
      batch,
      succeeded: 0,
      errored: 0,
      cancelled: batch.status === "cancelling",
      done: Promise.resolve(),
    };
    this.#runs.set(batch.id, run);
    run.done = this.#run(run)
      .catch((error: unknown) => this.#o.onError?.(batch, error))
      .finally(() => this.#runs.delete(batch.id));
  }

  /** Answers so far of a batch being run: for its `request_counts`. */
  progress(id: string): { succeeded: number; errored: number } | undefined {
    const run = this.#runs.get(id);
    return run === undefined ? undefined : { succeeded: run.succeeded, errored: run.errored };
  }

  /**
   * Cancels a batch: no request is sent any more, those in flight finish (and count), then it
   * ends `cancelled`. Only a batch validating or in progress can be; the status it has otherwise.
   */
  async cancel(batch: StoredBatch): Promise<BatchStatus | undefined> {
    if (batch.status !== "validating" && batch.status !== "in_progress") return batch.status;
    batch.status = "cancelling";
    batch.cancellingAt = this.#now();
    await this.#o.store.saveBatch(batch);
    const run = this.#runs.get(batch.id);
    if (run !== undefined) run.cancelled = true;
    else this.start(batch);
    return undefined;
  }

  /** Sends no more requests (a shutdown begins); those in flight finish and are recorded. */
  drain(): void {
    this.#draining = true;
  }

  /** Stops: requests still in flight are aborted (unrecorded: they run again on restart). */
  async close(): Promise<void> {
    this.#draining = true;
    this.#stop.abort(new Error("the gateway is closing"));
    await Promise.all([...this.#runs.values()].map((r) => r.done));
  }

  async #run(run: Run): Promise<void> {
    const { store } = this.#o;
    const batch = run.batch;
    const results = store.resultsPath(batch.id);
    for await (const record of readResults(results))
      if (record.response && record.response.status < 300) run.succeeded += 1;
      else if (record.response) run.errored += 1;
    if (batch.status === "validating") {
      batch.status = "in_progress";
      batch.inProgressAt = this.#now();
      await store.saveBatch(batch);
    }
    const spool = await ResultSpool.open(results);
    try {
      const appender = new GroupAppender(spool);
      const windowOption = this.#o.window ?? 64;
      const window = () =>
        Math.max(1, typeof windowOption === "number" ? windowOption : windowOption(batch));
      let inFlight = 0;
      let wake: (() => void) | undefined;
      const slot = () =>
        new Promise<void>((resolve) => {
          wake = resolve;
        });
      const stopped = () =>
        this.#draining ||
        run.cancelled ||
        this.#now() >= batch.expiresAt ||
        this.#stop.signal.aborted;
      const tasks = new Set<Promise<void>>();
      for await (const line of readLines(store.inputPath(batch.id))) {
        if (spool.has(line.index)) continue;
        while (inFlight >= window() && !stopped()) await slot();
        if (stopped()) break;
        inFlight += 1;
        const task = (async () => {
          const outcome = await this.#o.execute(batch, line, this.#stop.signal);
          if (outcome.kind === "answered") {
            await appender.append({
              i: line.index,
              batch: batch.id,
              response: {
                status: outcome.status,
                body: outcome.body,
                request_id: outcome.requestId ?? null,
              },
            });
            if (outcome.status < 300) run.succeeded += 1;
            else run.errored += 1;
          }
        })().finally(() => {
          inFlight -= 1;
          tasks.delete(task);
          wake?.();
        });
        tasks.add(task);
      }
      while (tasks.size > 0) await Promise.all(tasks);
      const complete = spool.size >= batch.total;
      const expired = !complete && this.#now() >= batch.expiresAt;
      // A shutdown stopped it: it resumes on restart.
      if (this.#stop.signal.aborted || (!complete && !run.cancelled && !expired)) return;
      await this.#finalize(
        batch,
        spool,
        run.cancelled ? "cancelled" : expired ? "expired" : "completed",
      );
    } finally {
      await spool.close();
    }
  }

  /** Ends a batch: records for the requests never run, the output files, the final status. */
  async #finalize(batch: StoredBatch, spool: ResultSpool, ending: BatchStatus): Promise<void> {
    const { store } = this.#o;
    if (batch.provider === "openai") {
      batch.status = "finalizing";
      batch.finalizingAt = this.#now();
      await store.saveBatch(batch);
    }
    const notRun: SpooledResult[] = [];
    for await (const line of readLines(store.inputPath(batch.id)))
      if (!spool.has(line.index))
        notRun.push({
          i: line.index,
          batch: batch.id,
          not_run: ending === "cancelled" ? "cancelled" : "expired",
        });
    await spool.append(notRun);
    const counts: Counts = { succeeded: 0, errored: 0, expired: 0, cancelled: 0 };
    for await (const record of readResults(store.resultsPath(batch.id)))
      if (record.response) counts[record.response.status < 300 ? "succeeded" : "errored"] += 1;
      else counts[record.not_run === "cancelled" ? "cancelled" : "expired"] += 1;
    if (batch.provider === "openai") await this.#writeFiles(batch);
    batch.counts = counts;
    batch.status = ending;
    batch.endedAt = this.#now();
    await store.saveBatch(batch);
  }

  /** An OpenAI batch's output file (2xx answers) and error file (the rest), in answer order. */
  async #writeFiles(batch: StoredBatch): Promise<void> {
    const { store } = this.#o;
    const ids: string[] = [];
    for await (const line of readLines(store.inputPath(batch.id))) ids[line.index] = line.customId;
    const output: string[] = [];
    const errors: string[] = [];
    for await (const record of readResults(store.resultsPath(batch.id))) {
      const base = { id: `batch_req_${randomBytes(16).toString("hex")}`, custom_id: ids[record.i] };
      const response = record.response;
      if (response)
        (response.status < 300 ? output : errors).push(
          JSON.stringify({
            ...base,
            response: {
              status_code: response.status,
              request_id: response.request_id,
              body: response.body,
            },
            error: null,
          }),
        );
      else
        errors.push(
          JSON.stringify({
            ...base,
            response: null,
            error:
              record.not_run === "cancelled"
                ? {
                    code: "batch_cancelled",
                    message: "This request was not executed because the batch was cancelled.",
                  }
                : {
                    code: "batch_expired",
                    message:
                      "This request could not be executed before the completion window expired.",
                  },
          }),
        );
    }
    const file = async (lines: string[], kind: string) =>
      lines.length === 0
        ? null
        : (
            await store.addFile(
              batch.tenant,
              `${batch.id}_${kind}.jsonl`,
              "batch_output",
              `${lines.join("\n")}\n`,
            )
          ).id;
    batch.outputFileId = await file(output, "output");
    batch.errorFileId = await file(errors, "error");
  }
}

/** The stored requests of a batch, in order. */
export async function* readLines(path: string): AsyncGenerator<BatchLine> {
  let index = 0;
  for await (const { text } of splitLines(createReadStream(path))) {
    if (text === "") continue;
    const value = JSON.parse(text) as { custom_id: string; body: Record<string, unknown> };
    yield { index: index++, customId: value.custom_id, body: value.body };
  }
}

/** A batch's results, in the order they were recorded (a torn last record is skipped). */
export async function* readResults(path: string): AsyncGenerator<SpooledResult> {
  try {
    await stat(path);
  } catch {
    return;
  }
  for await (const { text, terminated } of splitLines(createReadStream(path))) {
    if (!terminated) return;
    yield JSON.parse(text) as SpooledResult;
  }
}

/** Appends results in groups: every result that arrives while a write is under way goes in the next. */
class GroupAppender {
  readonly #spool: ResultSpool;
  #pending: Array<{ record: SpooledResult; resolve: () => void; reject: (e: unknown) => void }> =
    [];
  #writing = false;

  constructor(spool: ResultSpool) {
    this.#spool = spool;
  }

  append(record: SpooledResult): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.#pending.push({ record, resolve, reject });
    });
    if (!this.#writing) void this.#write();
    return done;
  }

  async #write(): Promise<void> {
    this.#writing = true;
    while (this.#pending.length > 0) {
      const group = this.#pending.splice(0);
      try {
        await this.#spool.append(group.map((g) => g.record));
        for (const g of group) g.resolve();
      } catch (error) {
        for (const g of group) g.reject(error);
      }
    }
    this.#writing = false;
  }
}

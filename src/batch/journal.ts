// The crash-safety journal of a batch run: `<output>.journal`, one JSON record per completed
// item, appended the moment its answer arrives and never rewritten.
//
// Format (JSONL, mode 0600):
//   line 1, the header:  {"salvo_journal":2,"input":{path,bytes,sha256},"output":...,"options_sha256":...,"created_at":...}
//   then one record per completed item: {"i":<index>,"line":<the item's output line, as JSON>}
// Records are in completion order, not index order; an index appears at most once per run, and
// if it appears twice (a later run redid an item) either record is a valid answer.

import { constants } from "node:fs";
import { type FileHandle, open, writeFile } from "node:fs/promises";

/**
 * Identifies the run a journal belongs to; a resume with other options is refused. Version 2
 * (lines carry `request_sha256`, checked line by line against the input) resumes over an input
 * that grew or was edited; a version-1 journal needs the very same input.
 */
export type JournalHeader = {
  salvo_journal: 1 | 2;
  input: {
    /** The input path as given (informative: a moved input with the same content resumes). */
    path: string;
    /** The input's size, in bytes. */
    bytes: number;
    /** SHA-256 of the whole input as scanned, hex. */
    sha256: string;
  };
  /** The output path as given (informative). */
  output: string;
  /** SHA-256 of the canonical JSON of the options that change answers (model, run key). */
  options_sha256: string;
  /** When the journal was created, ISO 8601. */
  created_at: string;
};

export type JournalOptions = {
  /**
   * fsync after each batch of records (group commit), so records survive an OS crash or power
   * loss, not just a killed process. @default false
   */
  fsync?: boolean | undefined;
};

type Waiter = { resolve: () => void; reject: (error: unknown) => void };

/**
 * Appends records on an O_APPEND fd: every record appended in one tick goes out in one `write`.
 * `append` resolves once its record's write has returned (and been fsynced, with `fsync`), so the
 * caller may then write the same line to the output. A failed write rejects every waiting append
 * and every later one.
 */
export class Journal {
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #fsync: boolean;
  #queue: string[] = [];
  #waiters: Waiter[] = [];
  #flushing: Promise<void> | undefined;
  #scheduled = false;
  #error: unknown;
  #closed = false;

  private constructor(path: string, handle: FileHandle, fsync: boolean) {
    this.path = path;
    this.#handle = handle;
    this.#fsync = fsync;
  }

  /**
   * Creates a new journal with `header` as its first line (failing if the file exists), or, with
   * `header` undefined, opens an existing one for appending. Mode 0600.
   */
  static async open(
    path: string,
    header: JournalHeader | undefined,
    options: JournalOptions = {},
  ): Promise<Journal> {
    if (header !== undefined)
      await writeFile(path, `${JSON.stringify(header)}\n`, { flag: "wx", mode: 0o600 });
    const handle = await open(path, constants.O_WRONLY | constants.O_APPEND, 0o600);
    if (options.fsync && header !== undefined) await handle.sync();
    return new Journal(path, handle, options.fsync ?? false);
  }

  /** Appends the record `{i: index, line}`; `line` is an output line's JSON text. */
  append(index: number, line: string): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#closed) return Promise.reject(new Error("Journal: append after close"));
    // The output line is embedded as JSON, not as a string, so the journal stays readable;
    // JSON.stringify(JSON.parse(line)) gives `line` back exactly.
    this.#queue.push(`{"i":${index},"line":${line}}\n`);
    const done = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        void this.flush().catch(() => {}); // the error reaches every waiter
      });
    }
    return done;
  }

  /** Writes every queued record; resolves when they are in the file. */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
    if (this.#queue.length > 0) {
      this.#flushing = this.#write().finally(() => {
        this.#flushing = undefined;
      });
      await this.#flushing;
    }
    if (this.#error !== undefined) throw this.#error;
  }

  async #write(): Promise<void> {
    const records = this.#queue;
    const waiters = this.#waiters;
    this.#queue = [];
    this.#waiters = [];
    try {
      if (this.#error !== undefined) throw this.#error;
      const data = Buffer.from(records.join(""));
      for (let offset = 0; offset < data.length; ) {
        const { bytesWritten } = await this.#handle.write(data, offset, data.length - offset);
        offset += bytesWritten;
      }
      if (this.#fsync) await this.#handle.sync();
      for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      this.#error ??= error;
      for (const waiter of waiters) waiter.reject(this.#error);
    }
  }

  /** Flushes and closes the fd. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } finally {
      this.#closed = true;
      await this.#handle.close();
    }
  }
}

/** One journal record as read back. */
export type JournalRecord = { i: number; line: unknown };

/** Whether a parsed JSON value is a journal header. */
export function isJournalHeader(value: unknown): value is JournalHeader {
  return (
    typeof value === "object" &&
    value !== null &&
    [1, 2].includes((value as { salvo_journal?: unknown }).salvo_journal as number)
  );
}

/** Whether a parsed JSON value is a journal record. */
export function isJournalRecord(value: unknown): value is JournalRecord {
  return (
    typeof value === "object" &&
    value !== null &&
    Number.isInteger((value as { i?: unknown }).i) &&
    typeof (value as { line?: unknown }).line === "object" &&
    (value as { line?: unknown }).line !== null
  );
}

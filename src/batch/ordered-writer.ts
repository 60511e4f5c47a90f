// Writes lines that complete in any order to a file strictly in index order, as soon as the
// prefix is complete, holding at most a bounded window of early lines.

import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

export type OrderedWriterOptions = {
  /** The index of the first line this writer appends (earlier ones are already in the file). @default 0 */
  startIndex?: number | undefined;
  /**
   * How far ahead of the next line to write an index may be: `put(i)` needs
   * `i < nextIndex + window`, so at most `window - 1` lines wait in memory. @default 1024 (lines)
   */
  window?: number | undefined;
};

/**
 * An append-only writer that restores input order. `put(index, line)` takes each line once, in
 * any order; lines are written as soon as every earlier index has been put. Lines that become
 * ready together (in one tick, or while a write is in progress) go out in one `write` on an
 * O_APPEND fd. A write error (ENOSPC, EIO, ...) is kept: `put`, `drain` and `close` throw it.
 */
export class OrderedWriter {
  readonly #handle: FileHandle;
  readonly #window: number;
  /** Lines that arrived before an earlier one, by index. Never more than `window - 1`. */
  readonly #early = new Map<number, string>();
  /** Lines whose predecessors are all put, waiting for the next write, in order. */
  #ready: string[] = [];
  #next: number;
  #written: number;
  #pump: Promise<void> | undefined;
  #scheduled = false;
  #error: unknown;
  #closed = false;

  private constructor(handle: FileHandle, startIndex: number, window: number) {
    this.#handle = handle;
    this.#next = startIndex;
    this.#written = startIndex;
    this.#window = window;
  }

  /** Opens (creating, mode 0600) `path` for appending. */
  static async open(path: string, options: OrderedWriterOptions = {}): Promise<OrderedWriter> {
    const window = options.window ?? 1024;
    const startIndex = options.startIndex ?? 0;
    if (!Number.isInteger(window) || window < 1)
      throw new RangeError(`window: expected an integer >= 1, got ${window}`);
    const handle = await open(
      path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
      0o600,
    );
    return new OrderedWriter(handle, startIndex, window);
  }

  /** The next index the file is waiting for; every index below it has been put. */
  get nextIndex(): number {
    return this.#next;
  }

  /** Lines held because an earlier index has not been put yet. */
  get pending(): number {
    return this.#early.size;
  }

  /** Indices whose line has reached the file (`write` returned), counting `startIndex`. */
  get written(): number {
    return this.#written;
  }

  /**
   * Takes the line for `index` (one JSON text, no newline). Throws a RangeError for an index
   * already put, below `nextIndex`, or outside the window; throws an earlier write error.
   */
  put(index: number, line: string): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#closed) throw new Error("OrderedWriter: put after close");
    if (index < this.#next || this.#early.has(index))
      throw new RangeError(`OrderedWriter: index ${index} was already put`);
    if (index >= this.#next + this.#window)
      throw new RangeError(
        `OrderedWriter: index ${index} is outside the window (next ${this.#next}, window ${this.#window})`,
      );
    if (index !== this.#next) {
      this.#early.set(index, line);
      return;
    }
    this.#ready.push(line);
    this.#next += 1;
    for (let early = this.#early.get(this.#next); early !== undefined; ) {
      this.#early.delete(this.#next);
      this.#ready.push(early);
      this.#next += 1;
      early = this.#early.get(this.#next);
    }
    this.#schedule();
  }

  /** Defers the write to the end of the tick, so lines completing together share one write. */
  #schedule(): void {
    if (this.#scheduled || this.#pump !== undefined) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#startPump();
    });
  }

  #startPump(): void {
    if (this.#pump !== undefined || this.#ready.length === 0 || this.#error !== undefined) return;
    this.#pump = this.#writeAll().finally(() => {
      this.#pump = undefined;
    });
  }

  async #writeAll(): Promise<void> {
    try {
      while (this.#ready.length > 0) {
        const batch = this.#ready;
        this.#ready = [];
        const data = Buffer.from(`${batch.join("\n")}\n`);
        for (let offset = 0; offset < data.length; ) {
          const { bytesWritten } = await this.#handle.write(data, offset, data.length - offset);
          offset += bytesWritten;
        }
        this.#written += batch.length;
      }
    } catch (error) {
      this.#error = error;
    }
  }

  /** Resolves once every line that is ready has been written; rejects with a write error. */
  async drain(): Promise<void> {
    this.#startPump();
    while (this.#pump !== undefined) {
      await this.#pump;
      this.#startPump();
    }
    if (this.#error !== undefined) throw this.#error;
  }

  /**
   * Writes every ready line, optionally fsyncs, and closes the fd. Lines still waiting for an
   * earlier index are dropped (`pending` says how many): the caller keeps them elsewhere (the
   * journal). Rejects with a write, fsync or close error.
   */
  async close(options: { fsync?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    try {
      await this.drain();
      if (options.fsync) await this.#handle.sync();
    } finally {
      this.#closed = true;
      await this.#handle.close();
    }
  }
}

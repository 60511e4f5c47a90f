// One appender per file per process: whole lines, one `write()` per batch on an O_APPEND
// descriptor, never a rewrite, fsync by policy with group commit, and nothing dropped.
//
// Contracts:
// - `write(text)` takes whole lines (each ending in `\n`) and resolves once they are written
//   (`fsync: "none" | "interval"`) or written and fdatasync'ed (`"always"`). Lines of one `write`
//   are never split across batches, and batches keep the order of the calls.
// - A batch is everything queued since the last one (up to `maxBatchBytes`), written with ONE
//   `writeSync` on an O_APPEND fd: on a local filesystem other processes' batches land before
//   or after it, never inside it. Writes are synchronous on purpose: what the writer accepted is
//   either in the kernel or still in the queue, so an `exit` handler can always finish the job.
// - The queue is bounded (`maxQueueBytes`): a `write` that fills it drains it at once,
//   synchronously, so a producer that never awaits is held up instead of growing memory.
// - A failed write or fsync is fatal for the file (the kernel may have dropped the data):
//   pending and later writes reject with AuditWriteError.
// - One instance per real path per process (`acquireLineWriter`, reference-counted).
import {
  closeSync,
  fchmodSync,
  fdatasync,
  fdatasyncSync,
  openSync,
  realpathSync,
  writeSync,
} from "node:fs";
import { AuditClosedError, AuditWriteError, ConfigError } from "../errors.ts";
import { onExitFlush } from "./exit-flush.ts";
import { findTornTail, type TornTail } from "./torn-tail.ts";

/** When appended data is fdatasync'ed. */
export type FsyncPolicy = "none" | "interval" | "always";

export type LineWriterOptions = {
  /**
   * `none`: never (the OS decides; a power loss may lose recent lines). `interval`: at most
   * `fsyncIntervalMs` after a write. `always`: every append resolves only once synced (group
   * commit: one fdatasync covers every line written while the previous one ran).
   * @default "interval"
   */
  fsync?: FsyncPolicy | undefined;
  /** With `fsync: "interval"`, the longest time written data stays unsynced, ms. @default 100 */
  fsyncIntervalMs?: number | undefined;
  /** The largest single `write()`, bytes (a bigger single append is written alone). @default 1_048_576 */
  maxBatchBytes?: number | undefined;
  /** Queued bytes that make `write` drain synchronously before returning. @default 8_388_608 */
  maxQueueBytes?: number | undefined;
  /** Permissions of a file this writer creates. @default 0o600 */
  mode?: number | undefined;
};

type Resolved = Required<LineWriterOptions>;

const DEFAULTS: Resolved = {
  fsync: "interval",
  fsyncIntervalMs: 100,
  maxBatchBytes: 1_048_576,
  maxQueueBytes: 8_388_608,
  mode: 0o600,
};

type Waiter = { resolve: () => void; reject: (error: unknown) => void };

function resolveOptions(options: LineWriterOptions): Resolved {
  const resolved = { ...DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (resolved as Record<string, unknown>)[key] = value;
  }
  if (!["none", "interval", "always"].includes(resolved.fsync)) {
    throw new ConfigError({
      field: "fsync",
      expected: "none, interval or always",
      got: resolved.fsync,
    });
  }
  for (const key of ["fsyncIntervalMs", "maxBatchBytes", "maxQueueBytes"] as const) {
    if (!Number.isFinite(resolved[key]) || resolved[key] <= 0) {
      throw new ConfigError({ field: key, expected: "a number > 0", got: resolved[key] });
    }
  }
  return resolved;
}

const registry = new Map<string, LineWriter>();

/**
 * The process's writer for `path` (created 0600 if missing). Each call adds a reference;
 * `close()` releases one and the last closes the file. The first opener's options apply.
 */
export function acquireLineWriter(path: string, options: LineWriterOptions = {}): LineWriter {
  const resolved = resolveOptions(options);
  let fd: number;
  try {
    fd = openSync(path, "a+", resolved.mode);
  } catch (error) {
    // A missing directory, no permission, a directory at that path: the user's to fix.
    throw new ConfigError(
      {
        field: "audit log",
        expected:
          "a file Salvo can create and append to, in a directory that exists and that it may write",
        got: (error as Error).message,
        where: path,
      },
      { cause: error },
    );
  }
  const real = realpathSync(path);
  const existing = registry.get(real);
  if (existing) {
    closeSync(fd);
    existing.retain();
    return existing;
  }
  const writer = new LineWriter(fd, real, resolved);
  registry.set(real, writer);
  return writer;
}

export class LineWriter {
  /** The file's real path. */
  readonly path: string;
  /** The torn last line found when the file was opened (not yet healed by anyone). */
  readonly tornTail: TornTail | undefined;
  readonly #options: Resolved;
  #fd: number;
  #refs = 1;
  #queue: string[] = [];
  #queueWaiters: Waiter[] = [];
  /** Per queued text, how many waiters it ends (lets a batch resolve exactly its own writes). */
  #queueBytes = 0;
  #scheduled = false;
  /** Written, waiting for the next fdatasync (`always`). */
  #unsynced: Waiter[] = [];
  #syncing = false;
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;
  #failure: AuditWriteError | undefined;
  #closed = false;
  #removeExitFlush: () => void;
  /** Bytes this writer has written; batches written. */
  bytesWritten = 0;
  batches = 0;

  constructor(fd: number, path: string, options: Resolved) {
    this.#fd = fd;
    this.path = path;
    this.#options = options;
    try {
      fchmodSync(fd, options.mode);
    } catch {
      // Not the owner: keep the file's permissions.
    }
    this.tornTail = findTornTail(fd);
    this.#removeExitFlush = onExitFlush(() => this.flushSync());
  }

  retain(): void {
    this.#refs++;
  }

  get fsyncPolicy(): FsyncPolicy {
    return this.#options.fsync;
  }

  /** Appends whole lines; resolves when written (and synced, with `fsync: "always"`). */
  write(text: string): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new AuditClosedError());
    let waiter: Waiter | undefined;
    const promise = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    this.#queue.push(text);
    this.#queueWaiters.push(waiter!);
    this.#queueBytes += text.length;
    if (this.#queueBytes >= this.#options.maxQueueBytes) this.#drain();
    else this.#schedule();
    return promise;
  }

  /** Writes (and, unless `fsync: "none"`, syncs) everything queued, synchronously. */
  flushSync(): void {
    if (this.#failure || this.#fd < 0) return;
    this.#drain();
    if (this.#options.fsync !== "none" && this.#dirty) {
      try {
        fdatasyncSync(this.#fd);
        this.#dirty = false;
        this.#settleSynced(this.#unsynced.splice(0));
      } catch (error) {
        this.#fail(error);
      }
    }
  }

  /** Releases one reference; the last one drains, syncs and closes the file. */
  async close(): Promise<void> {
    if (--this.#refs > 0) return;
    this.#closed = true;
    registry.delete(this.path);
    this.#drain();
    await this.#waitSyncIdle();
    this.flushSync();
    if (this.#timer) clearTimeout(this.#timer);
    this.#removeExitFlush();
    if (this.#fd >= 0) {
      closeSync(this.#fd);
      this.#fd = -1;
    }
    if (this.#failure) throw this.#failure;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#drain();
    });
  }

  #drain(): void {
    while (this.#queue.length > 0 && !this.#failure) {
      let n = 0;
      let bytes = 0;
      while (n < this.#queue.length) {
        const size = this.#queue[n]!.length;
        if (n > 0 && bytes + size > this.#options.maxBatchBytes) break;
        bytes += size;
        n++;
      }
      const texts = this.#queue.splice(0, n);
      const waiters = this.#queueWaiters.splice(0, n);
      this.#queueBytes -= bytes;
      const buffer = Buffer.from(n === 1 ? texts[0]! : texts.join(""), "utf8");
      try {
        this.#writeAll(buffer);
      } catch (error) {
        this.#fail(error, waiters);
        return;
      }
      this.#dirty = true;
      if (this.#options.fsync === "always") this.#unsynced.push(...waiters);
      else for (const waiter of waiters) waiter.resolve();
    }
    if (this.#options.fsync === "always") this.#startSync();
    else if (this.#options.fsync === "interval" && this.#dirty && !this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#startSync();
      }, this.#options.fsyncIntervalMs);
      this.#timer.unref();
    }
  }

  #writeAll(buffer: Buffer): void {
    let offset = 0;
    while (offset < buffer.length) {
      // A short write on a regular file is rare (disk full, a signal); the rest goes in a second
      // write, which another process's batch could precede. Loop rather than lose it.
      offset += writeSync(this.#fd, buffer, offset, buffer.length - offset);
    }
    this.bytesWritten += buffer.length;
    this.batches++;
  }

  /** Group commit: one fdatasync for everything written before it started. */
  #startSync(): void {
    if (this.#syncing || !this.#dirty || this.#fd < 0 || this.#failure) return;
    this.#syncing = true;
    this.#dirty = false;
    const covered = this.#unsynced.splice(0);
    fdatasync(this.#fd, (error) => {
      this.#syncing = false;
      if (error) {
        this.#fail(error, covered);
        return;
      }
      this.#settleSynced(covered);
      if (this.#options.fsync === "always") this.#startSync();
      this.#notifySyncIdle();
    });
  }

  #settleSynced(waiters: Waiter[]): void {
    for (const waiter of waiters) waiter.resolve();
  }

  #syncIdle: Array<() => void> = [];
  #waitSyncIdle(): Promise<void> {
    if (!this.#syncing) return Promise.resolve();
    return new Promise((resolve) => this.#syncIdle.push(resolve));
  }
  #notifySyncIdle(): void {
    if (this.#syncing) return;
    for (const resolve of this.#syncIdle.splice(0)) resolve();
  }

  #fail(cause: unknown, inFlight: Waiter[] = []): void {
    this.#failure ??= new AuditWriteError(
      `writing ${this.path} failed: ${(cause as Error).message}`,
      { path: this.path },
      { cause },
    );
    const failure = this.#failure;
    for (const waiter of [
      ...inFlight,
      ...this.#unsynced.splice(0),
      ...this.#queueWaiters.splice(0),
    ]) {
      waiter.reject(failure);
    }
    this.#queue = [];
    this.#queueBytes = 0;
    this.#notifySyncIdle();
  }
}

// The results the provider's batches gave, kept in `<output>.batches.jsonl` from the moment they
// are downloaded until the batch driver has written them to the output: one JSON record per
// item, appended and fsynced before the batch is marked downloaded, so a crash after a download
// never downloads (or pays) again. Memory holds an index (item -> offset), not the answers.
import { createReadStream } from "node:fs";
import { type FileHandle, open, stat, truncate } from "node:fs/promises";
import { splitLines } from "./line-splitter.ts";

/** One item's result, as downloaded. */
export type SpooledResult = {
  /** The item's input index. */
  i: number;
  /** The provider's batch id. */
  batch: string;
  /** The provider answered: HTTP status, body, request id. */
  response?: { status: number; body: unknown; request_id: string | null } | undefined;
  /** It never ran: the batch expired, was cancelled or failed first; `missing`: no result line. */
  not_run?: "expired" | "cancelled" | "failed" | "missing" | undefined;
  message?: string | undefined;
};

export class ResultSpool {
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #index = new Map<number, { offset: number; length: number }>();
  #size: number;

  private constructor(path: string, handle: FileHandle, size: number) {
    this.path = path;
    this.#handle = handle;
    this.#size = size;
  }

  /** Opens (creating, 0600) the spool; a torn last record (a kill mid-write) is cut off. */
  static async open(path: string): Promise<ResultSpool> {
    const index = new Map<number, { offset: number; length: number }>();
    let valid = 0;
    let size = 0;
    try {
      size = (await stat(path)).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    if (size > 0) {
      let start = 0;
      for await (const { text, end, terminated } of splitLines(createReadStream(path))) {
        if (!terminated) break;
        let record: SpooledResult | undefined;
        try {
          record = JSON.parse(text) as SpooledResult;
        } catch {
          break;
        }
        if (!Number.isInteger(record?.i)) break;
        index.set(record.i, { offset: start, length: end - start - 1 });
        start = end;
        valid = end;
      }
      if (valid < size) await truncate(path, valid);
    }
    const handle = await open(path, "a+", 0o600);
    const spool = new ResultSpool(path, handle, valid);
    for (const [i, at] of index) spool.#index.set(i, at);
    return spool;
  }

  /** Items with a result. */
  get size(): number {
    return this.#index.size;
  }

  has(index: number): boolean {
    return this.#index.has(index);
  }

  /** The item's result, read back from the file. */
  async get(index: number): Promise<SpooledResult | undefined> {
    const at = this.#index.get(index);
    if (at === undefined) return undefined;
    const buffer = Buffer.alloc(at.length);
    await this.#handle.read(buffer, 0, at.length, at.offset);
    return JSON.parse(buffer.toString("utf8")) as SpooledResult;
  }

  /** Appends results in one write and fsyncs: durable once this resolves. */
  async append(records: readonly SpooledResult[]): Promise<void> {
    if (records.length === 0) return;
    const texts = records.map((r) => JSON.stringify(r));
    const data = Buffer.from(`${texts.join("\n")}\n`);
    for (let offset = 0; offset < data.length; ) {
      const { bytesWritten } = await this.#handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
    await this.#handle.sync();
    let at = this.#size;
    records.forEach((record, k) => {
      const length = Buffer.byteLength(texts[k]!);
      this.#index.set(record.i, { offset: at, length });
      at += length + 1;
    });
    this.#size = at;
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}

// The gateway's batch state directory (`salvo serve --state DIR`): uploaded files, batches and
// their results, on disk, so that a gateway killed mid-batch and restarted goes on where it was.
//
//   DIR/files/<id>.json      a file's metadata (written atomically, after its content)
//   DIR/files/<id>.data      its content
//   DIR/batches/<id>.json    a batch: tenant, provider, status, times, counts (atomic)
//   DIR/batches/<id>.input.jsonl    its requests, checked and normalised ({custom_id, body})
//   DIR/batches/<id>.results.jsonl  one record per request answered, fsynced (ResultSpool)
//
// Everything is 0600 in 0700 directories; every object names its tenant, and only that tenant
// sees it.
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../pipeline/atomic-write.ts";

/** A file of the Files API. */
export type StoredFile = {
  id: string;
  tenant: string;
  bytes: number;
  /** Epoch ms. */
  createdAt: number;
  filename: string;
  /** `batch` (uploaded), `batch_output` (a batch's output or error file). */
  purpose: string;
};

export type BatchStatus =
  | "validating"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "failed"
  | "cancelling"
  | "cancelled"
  | "expired";

/** A batch of either API, as kept. Times are epoch ms. */
export type StoredBatch = {
  id: string;
  tenant: string;
  /** Which API it was created through, and so which wire its requests speak. */
  provider: "openai" | "anthropic";
  status: BatchStatus;
  createdAt: number;
  expiresAt: number;
  inProgressAt: number | null;
  finalizingAt: number | null;
  /** When it ended, however it ended. */
  endedAt: number | null;
  cancellingAt: number | null;
  /** Requests in the batch. */
  total: number;
  /** OpenAI: the endpoint every request goes to (`/v1/chat/completions`...). */
  endpoint: string;
  /** OpenAI: the uploaded input file, the output and error files, metadata, validation errors. */
  inputFileId: string | null;
  outputFileId: string | null;
  errorFileId: string | null;
  metadata: Record<string, string> | null;
  errors: Array<{ code: string; message: string; param: string | null; line: number | null }>;
  /** The model of the requests, when one (OpenAI's `model`). */
  model: string | null;
  /** How the requests ended, once the batch has. */
  counts: { succeeded: number; errored: number; expired: number; cancelled: number } | null;
};

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `length` random base-62 characters. */
export function randomId(length: number): string {
  let id = "";
  for (const byte of randomBytes(length)) id += ALPHABET[byte % 62];
  return id;
}

/** Ids are read from paths and URLs: only these characters. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,80}$/;

export class BatchStore {
  readonly dir: string;
  readonly #files = new Map<string, StoredFile>();
  readonly #batches = new Map<string, StoredBatch>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Reads what the state directory holds. It is created (0700) by the first file or batch
   * stored: a gateway that serves none leaves nothing behind.
   */
  static async open(dir: string): Promise<BatchStore> {
    const store = new BatchStore(dir);
    for (const name of await names(join(dir, "files"))) {
      if (!name.endsWith(".json")) continue;
      const file = await readJson<StoredFile>(join(dir, "files", name));
      if (file !== undefined) store.#files.set(file.id, file);
    }
    const batches: StoredBatch[] = [];
    for (const name of await names(join(dir, "batches"))) {
      if (!name.endsWith(".json")) continue;
      const batch = await readJson<StoredBatch>(join(dir, "batches", name));
      if (batch !== undefined) batches.push(batch);
    }
    batches.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
    for (const batch of batches) store.#batches.set(batch.id, batch);
    return store;
  }

  // --- files ---

  /** Stores a file: its content, then its metadata (a crash between leaves no visible file). */
  async addFile(
    tenant: string,
    filename: string,
    purpose: string,
    content: string,
  ): Promise<StoredFile> {
    const file: StoredFile = {
      id: `file-${randomId(24)}`,
      tenant,
      bytes: Buffer.byteLength(content),
      createdAt: Date.now(),
      filename,
      purpose,
    };
    await this.#ensureDirs();
    await writeFileAtomic(this.#dataPath(file.id), content);
    await writeFileAtomic(this.#metaPath(file.id), `${JSON.stringify(file)}\n`);
    this.#files.set(file.id, file);
    return file;
  }

  /** The file if `tenant` may see it. */
  file(id: string, tenant: string): StoredFile | undefined {
    const file = SAFE_ID.test(id) ? this.#files.get(id) : undefined;
    return file?.tenant === tenant ? file : undefined;
  }

  content(file: StoredFile): Promise<Buffer> {
    return readFile(this.#dataPath(file.id));
  }

  async deleteFile(file: StoredFile): Promise<void> {
    this.#files.delete(file.id);
    await rm(this.#metaPath(file.id), { force: true });
    await rm(this.#dataPath(file.id), { force: true });
  }

  /** A tenant's files, newest first. */
  files(tenant: string): StoredFile[] {
    return [...this.#files.values()].filter((f) => f.tenant === tenant).reverse();
  }

  // --- batches ---

  /** A new batch's id, in the provider's shape. */
  newBatchId(provider: "openai" | "anthropic"): string {
    return provider === "openai"
      ? `batch_${randomBytes(16).toString("hex")}`
      : `msgbatch_${randomId(24)}`;
  }

  /** Stores a new batch: its normalised requests first, then its record. */
  async addBatch(batch: StoredBatch, lines: readonly string[]): Promise<void> {
    await this.#ensureDirs();
    await writeFileAtomic(
      this.inputPath(batch.id),
      lines.length === 0 ? "" : `${lines.join("\n")}\n`,
    );
    await this.saveBatch(batch);
  }

  /** Replaces a batch's record atomically. */
  async saveBatch(batch: StoredBatch): Promise<void> {
    await writeFileAtomic(
      join(this.dir, "batches", `${batch.id}.json`),
      `${JSON.stringify(batch)}\n`,
    );
    this.#batches.set(batch.id, batch);
  }

  /** The batch if `tenant` may see it (and it was made through `provider`'s API). */
  batch(id: string, tenant: string, provider: "openai" | "anthropic"): StoredBatch | undefined {
    const batch = SAFE_ID.test(id) ? this.#batches.get(id) : undefined;
    return batch?.tenant === tenant && batch.provider === provider ? batch : undefined;
  }

  /** A tenant's batches of one API, newest first. */
  batches(tenant: string, provider: "openai" | "anthropic"): StoredBatch[] {
    return [...this.#batches.values()]
      .filter((b) => b.tenant === tenant && b.provider === provider)
      .reverse();
  }

  /** Every batch, oldest first (to resume them). */
  all(): StoredBatch[] {
    return [...this.#batches.values()];
  }

  async deleteBatch(batch: StoredBatch): Promise<void> {
    this.#batches.delete(batch.id);
    await rm(join(this.dir, "batches", `${batch.id}.json`), { force: true });
    await rm(this.inputPath(batch.id), { force: true });
    await rm(this.resultsPath(batch.id), { force: true });
  }

  inputPath(id: string): string {
    return join(this.dir, "batches", `${id}.input.jsonl`);
  }

  resultsPath(id: string): string {
    return join(this.dir, "batches", `${id}.results.jsonl`);
  }

  async #ensureDirs(): Promise<void> {
    await mkdir(join(this.dir, "files"), { recursive: true, mode: 0o700 });
    await mkdir(join(this.dir, "batches"), { recursive: true, mode: 0o700 });
  }

  #metaPath(id: string): string {
    return join(this.dir, "files", `${id}.json`);
  }

  #dataPath(id: string): string {
    return join(this.dir, "files", `${id}.data`);
  }
}

/** The names in a directory; none when it does not exist yet. */
async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    // A record that cannot be read was never whole (they are written atomically): skipped.
    return undefined;
  }
}

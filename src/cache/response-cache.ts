// The persistent response cache: successful answers by request fingerprint, in a directory that
// several processes may share. Storage is cacache (npm's own content-addressed cache): content
// is written to a temporary file and renamed into place, and each index entry is one appended
// line carrying its own hash, so a process killed mid-write leaves at worst a temporary file or
// a torn index line that readers skip, never a wrong answer; content is checked against its
// integrity hash on every read.
//
// Entries expire: each carries `expires_at` (the writer's TTL), checked on read; `clear` with
// `expiredOnly` prunes them. Only successful answers are stored (the caller's rule), and what is
// stored is the answer as the provider sent it, with its usage and request id.
import { constants } from "node:fs";
import { access, chmod, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import cacache from "cacache";
import { CacheError } from "../errors.ts";
import type { TokenUsage } from "../providers/provider.ts";
import { FINGERPRINT_VERSION } from "./fingerprint.ts";

/** What is stored of an answer. */
export type StoredAnswer = {
  status: number;
  body: unknown;
  usage: TokenUsage | undefined;
  requestId: string | undefined;
};

/** An entry's metadata, kept in cacache's index line beside the content's hash. */
export type EntryMetadata = {
  v: number;
  /** When it was stored, ms since the epoch. */
  stored_at: number;
  /** When it expires, ms since the epoch; null: never. */
  expires_at: number | null;
  provider: string;
  model: string | undefined;
  /** What the call that produced it cost, USD; null when its price was unknown. */
  cost_usd: number | null;
};

/** A fresh entry found by `get`. */
export type CacheHit = { answer: StoredAnswer; metadata: EntryMetadata };

export type ResponseCacheOptions = {
  /** How long a stored answer stays fresh, ms. @default Infinity (never expires) */
  ttlMs?: number | undefined;
  /**
   * Wall-clock time, ms since the epoch, for `stored_at` and expiry (entries outlive processes,
   * so a monotonic clock will not do). @default Date.now
   */
  now?: (() => number) | undefined;
  /**
   * Told about a failed read or write (a full disk, a permission change mid-run). The call
   * itself is not failed for it: a read error is a miss and a write error loses only the entry.
   * @default emits a process warning
   */
  onError?: ((error: unknown, operation: "get" | "put") => void) | undefined;
};

/** What `stats` found. */
export type CacheStats = {
  dir: string;
  /** Keys with a stored answer (the latest entry of each). */
  entries: number;
  /** Of them, expired. */
  expired: number;
  /** Bytes of content referenced by the entries. */
  bytes: number;
  /** Oldest and newest `stored_at`, ms since the epoch; undefined when empty. */
  oldest: number | undefined;
  newest: number | undefined;
  /** What the stored answers cost when they were called, USD (entries with a known price). */
  storedCostUsd: number;
};

/** This run's use of the cache. */
export type CacheCounters = { hits: number; misses: number; stored: number; errors: number };

const KEY_PREFIX = `salvo/v${FINGERPRINT_VERSION}/`;

// Where cacache puts an entry's files: its own path functions (public in its lib/, which has no
// `exports` map), so the files can be made private (0600) even in a directory that already
// existed with looser permissions; cacache itself creates them with the process umask.
const require = createRequire(import.meta.url);
const cacheVersion = (
  require("cacache/package.json") as { "cache-version": Record<string, string> }
)["cache-version"];
const contentPath = require("cacache/lib/content/path.js") as (
  dir: string,
  integrity: string,
) => string;
const { bucketPath } = require("cacache/lib/entry-index.js") as {
  bucketPath: (dir: string, key: string) => string;
};
/** The directories cacache writes in, under the cache directory. */
const CACACHE_DIRS = [`content-v${cacheVersion.content}`, `index-v${cacheVersion.index}`, "tmp"];

function isMetadata(value: unknown): value is EntryMetadata {
  const m = value as Partial<EntryMetadata> | undefined;
  return typeof m === "object" && m !== null && typeof m.stored_at === "number";
}

export class ResponseCache {
  readonly dir: string;
  readonly ttlMs: number;
  readonly counters: CacheCounters = { hits: 0, misses: 0, stored: 0, errors: 0 };
  readonly #now: () => number;
  readonly #onError: (error: unknown, operation: "get" | "put") => void;
  /** Writes not finished yet: `flush()` waits for them. */
  readonly #writing = new Set<Promise<void>>();

  private constructor(dir: string, options: ResponseCacheOptions) {
    this.dir = dir;
    this.ttlMs = options.ttlMs ?? Number.POSITIVE_INFINITY;
    this.#now = options.now ?? Date.now;
    this.#onError =
      options.onError ??
      ((error, operation) =>
        process.emitWarning(
          `salvo: response cache ${operation} failed in ${dir}: ${(error as Error).message}`,
        ));
  }

  /**
   * Opens (creating if needed) the cache in `dir`. Rejects with CacheError if the directory
   * cannot be created or written, before any call is made.
   */
  static async open(dir: string, options: ResponseCacheOptions = {}): Promise<ResponseCache> {
    if (options.ttlMs !== undefined && !(options.ttlMs > 0))
      throw new CacheError(`the cache TTL must be > 0 ms, got ${options.ttlMs}`, { dir });
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await access(dir, constants.W_OK | constants.R_OK | constants.X_OK);
      // The directory may be the user's and readable by others: what Salvo stores in it is
      // kept in subdirectories only its owner can enter, whatever their files' modes.
      for (const sub of CACACHE_DIRS) {
        await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
        await chmod(join(dir, sub), 0o700);
      }
    } catch (error) {
      throw new CacheError(
        `cannot use ${dir} as the response cache: ${(error as Error).message}; expected a directory Salvo can create and write`,
        { dir },
        { cause: error },
      );
    }
    return new ResponseCache(dir, options);
  }

  /** The fresh answer stored for a fingerprint, or undefined (missing, expired, corrupt). */
  async get(fingerprint: string): Promise<CacheHit | undefined> {
    const key = KEY_PREFIX + fingerprint;
    try {
      const { data, metadata } = await cacache.get(this.dir, key);
      if (!isMetadata(metadata) || this.#expired(metadata)) {
        this.counters.misses += 1;
        return undefined;
      }
      const answer = JSON.parse(data.toString("utf8")) as StoredAnswer;
      this.counters.hits += 1;
      return { answer, metadata };
    } catch (error) {
      this.counters.misses += 1;
      const code = (error as { code?: unknown }).code;
      if (code === "ENOENT") return undefined;
      if (code === "EINTEGRITY" || error instanceof SyntaxError) {
        // Damaged content (a disk fault, a hand edit): drop the entry; the call is made again.
        await cacache.rm.entry(this.dir, key).catch(() => {});
        return undefined;
      }
      this.counters.errors += 1;
      this.#onError(error, "get");
      return undefined;
    }
  }

  /**
   * Resolves once every write started so far has finished (stored or reported to `onError`): a
   * run that ends waits for its answers to reach the cache instead of leaving writes behind it.
   */
  async flush(): Promise<void> {
    while (this.#writing.size > 0) await Promise.all(this.#writing);
  }

  /** Stores a successful answer. Never rejects: a failed write is reported to `onError`. */
  put(
    fingerprint: string,
    answer: StoredAnswer,
    details: { provider: string; model: string | undefined; costUsd: number | undefined },
  ): Promise<void> {
    const writing = this.#put(fingerprint, answer, details).finally(() =>
      this.#writing.delete(writing),
    );
    this.#writing.add(writing);
    return writing;
  }

  async #put(
    fingerprint: string,
    answer: StoredAnswer,
    details: { provider: string; model: string | undefined; costUsd: number | undefined },
  ): Promise<void> {
    const now = this.#now();
    const metadata: EntryMetadata = {
      v: FINGERPRINT_VERSION,
      stored_at: now,
      expires_at: Number.isFinite(this.ttlMs) ? now + this.ttlMs : null,
      provider: details.provider,
      model: details.model,
      cost_usd: details.costUsd ?? null,
    };
    try {
      const key = KEY_PREFIX + fingerprint;
      const integrity = await cacache.put(this.dir, key, JSON.stringify(answer), { metadata });
      // 0600 like every file Salvo writes (cacache creates them with the umask, often 0644).
      await Promise.all([
        chmod(contentPath(this.dir, integrity), 0o600),
        chmod(bucketPath(this.dir, key), 0o600),
      ]);
      this.counters.stored += 1;
    } catch (error) {
      this.counters.errors += 1;
      this.#onError(error, "put");
    }
  }

  /** Counts the entries, their size and their age. */
  async stats(): Promise<CacheStats> {
    const stats: CacheStats = {
      dir: this.dir,
      entries: 0,
      expired: 0,
      bytes: 0,
      oldest: undefined,
      newest: undefined,
      storedCostUsd: 0,
    };
    for (const entry of Object.values(await this.#list())) {
      stats.entries += 1;
      stats.bytes += entry.size ?? 0;
      const metadata = entry.metadata;
      if (!isMetadata(metadata)) continue;
      if (this.#expired(metadata)) stats.expired += 1;
      stats.storedCostUsd += metadata.cost_usd ?? 0;
      stats.oldest = Math.min(stats.oldest ?? metadata.stored_at, metadata.stored_at);
      stats.newest = Math.max(stats.newest ?? metadata.stored_at, metadata.stored_at);
    }
    return stats;
  }

  /**
   * Removes every entry (or, with `expiredOnly`, the expired ones), then deletes the content no
   * entry refers to any more. Resolves with how many entries were removed.
   */
  async clear(options: { expiredOnly?: boolean | undefined } = {}): Promise<number> {
    const entries = await this.#list();
    let removed = 0;
    if (!options.expiredOnly) {
      removed = Object.keys(entries).length;
      await cacache.rm.all(this.dir);
      return removed;
    }
    for (const [key, entry] of Object.entries(entries)) {
      if (!isMetadata(entry.metadata) || !this.#expired(entry.metadata)) continue;
      await cacache.rm.entry(this.dir, key);
      removed += 1;
    }
    await cacache.verify(this.dir);
    return removed;
  }

  async #list(): Promise<cacache.ls.Cache> {
    const all = await cacache.ls(this.dir);
    const ours: cacache.ls.Cache = {};
    for (const [key, entry] of Object.entries(all))
      if (key.startsWith(KEY_PREFIX)) ours[key] = entry;
    return ours;
  }

  #expired(metadata: EntryMetadata): boolean {
    return metadata.expires_at !== null && this.#now() >= metadata.expires_at;
  }
}

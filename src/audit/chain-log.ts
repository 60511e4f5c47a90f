// A hash-chained JSONL log (format in chain-record.ts): the engine under the call log and the
// decision log.
//
// Several writers, one file: each process's log is its own *segment* of the file, identified by
// a random `writer` id and chained on its own (genesis at seq 0, then 1, 2, ...). Segments
// interleave at batch granularity (one O_APPEND write per batch), so no lock is needed and a
// segment's order is the order of `append` calls in that process. `salvo verify` checks every
// segment; checkpoints commit to a segment's size and head.
//
// Contracts:
// - `append` assigns `seq` and `prev` synchronously, in call order, so the chain order is the
//   order of `append` calls; it resolves with `{seq, hash}` once the line is written (and synced
//   under `fsync: "always"`).
// - Nothing that looks like a configured secret is ever written: a body containing one is
//   rewritten with `[REDACTED]` before it is hashed.
// - Opening heals a torn last line (see torn-tail.ts): the new segment's genesis names it.
// - A checkpoint reaches the checkpoint file only after the records it covers reached the log.

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { AuditClosedError, AuditRecordError, ConfigError } from "../errors.ts";
import { registeredSecrets, SecretScrubber } from "../providers/secret-scrubber.ts";
import { encodeRecord, GENESIS_PREV, RESERVED_FIELDS } from "./chain-record.ts";
import { type Checkpoint, HMAC_KEY_ENV, makeCheckpoint } from "./checkpoint.ts";
import { onExitFlush } from "./exit-flush.ts";
import { acquireLineWriter, type LineWriter, type LineWriterOptions } from "./line-writer.ts";

export type ChainLogOptions = LineWriterOptions & {
  /** What the log holds, recorded in each genesis: `calls`, `decisions`, ... @default "records" */
  kind?: string | undefined;
  /** Records between two checkpoints. @default 1000 */
  checkpointEvery?: number | undefined;
  /** The longest time between checkpoints while records arrive, ms. @default 60_000 */
  checkpointIntervalMs?: number | undefined;
  /**
   * Where checkpoints are also written, one JSON line each, to ship elsewhere; `false` for none.
   * @default `${path}.checkpoints`
   */
  checkpointFile?: string | false | undefined;
  /** The HMAC key for checkpoints. @default env SALVO_AUDIT_HMAC_KEY; none: checkpoints unsigned */
  hmacKey?: string | undefined;
  /** Where the default key and the default secrets are read. @default process.env */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * Strings that must never reach the file (API keys), besides the keys of every provider this
   * process built (`registeredSecrets`), which are always masked. @default every value (8+
   * characters) of an environment variable whose name ends in _KEY, _TOKEN, _SECRET or _PASSWORD
   */
  secrets?: readonly string[] | undefined;
};

/** Where an appended record landed in its chain. */
export type AppendResult = { writer: string; seq: number; hash: string };

export function secretsFromEnv(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.entries(env)
    .filter(
      ([name, value]) =>
        /(_KEY|_TOKEN|_SECRET|_PASSWORD)$/i.test(name) && (value?.length ?? 0) >= 8,
    )
    .map(([, value]) => value!);
}

const chains = new Map<string, ChainLog>();

/** The process's chained log at `path` (one per real path; each call adds a reference). */
export function openChainLog(path: string, options: ChainLogOptions = {}): ChainLog {
  const writer = acquireLineWriter(path, options);
  const existing = chains.get(writer.path);
  if (existing) {
    void writer.close(); // drops the extra reference only
    const kind = options.kind ?? "records";
    if (existing.kind !== kind) {
      throw new ConfigError({
        field: "kind",
        expected: `"${existing.kind}" (the log is open as that)`,
        got: kind,
        where: path,
      });
    }
    existing.retain();
    return existing;
  }
  const chain = new ChainLog(writer, options);
  chains.set(writer.path, chain);
  return chain;
}

export class ChainLog {
  /** This process's segment id. */
  readonly writerId = randomBytes(16).toString("hex");
  readonly kind: string;
  readonly #writer: LineWriter;
  readonly #checkpointWriter: LineWriter | undefined;
  readonly #every: number;
  readonly #key: string | undefined;
  readonly #secrets: string[];
  #registered: readonly string[] = [];
  /** The external checkpoint writes queued so far, settled (close waits for them). */
  #externalWrites: Promise<unknown> = Promise.resolve();
  #allSecrets: readonly string[] = [];
  #seq = 0;
  #head = GENESIS_PREV;
  #sinceCheckpoint = 0;
  #refs = 1;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #removeExitFlush: () => void;

  constructor(writer: LineWriter, options: ChainLogOptions) {
    this.#writer = writer;
    this.kind = options.kind ?? "records";
    this.#every = options.checkpointEvery ?? 1000;
    if (!Number.isInteger(this.#every) || this.#every < 1) {
      throw new ConfigError({
        field: "checkpointEvery",
        expected: "an integer >= 1",
        got: this.#every,
      });
    }
    const env = options.env ?? process.env;
    this.#key = options.hmacKey ?? (env[HMAC_KEY_ENV] || undefined);
    this.#secrets = (options.secrets ?? secretsFromEnv(env)).filter((s) => s.length > 0);
    this.#allSecrets = this.#secrets;
    const checkpointFile = options.checkpointFile ?? `${writer.path}.checkpoints`;
    this.#checkpointWriter =
      checkpointFile === false ? undefined : acquireLineWriter(checkpointFile, options);
    const torn = this.#checkpointWriter?.tornTail;
    if (torn)
      void this.#checkpointWriter!.write(`\n${JSON.stringify({ salvo_torn_tail: torn })}\n`);
    const recovered = writer.tornTail;
    this.#append(
      "genesis",
      {
        schema: "salvo-log/v1",
        log: this.kind,
        pid: process.pid,
        host: hostname(),
        ...(this.#key === undefined ? {} : { key_id: makeCheckpoint("", 0, "", this.#key).key_id }),
        ...(recovered ? { recovered } : {}),
      },
      recovered ? "\n" : "",
    ).written.catch(() => {});
    const intervalMs = options.checkpointIntervalMs ?? 60_000;
    this.#timer = setInterval(() => {
      if (this.#sinceCheckpoint > 0) this.checkpoint().catch(() => {});
    }, intervalMs);
    this.#timer.unref();
    this.#removeExitFlush = onExitFlush(() => this.#flushAtExit());
  }

  retain(): void {
    this.#refs++;
  }

  /** The file's real path. */
  get path(): string {
    return this.#writer.path;
  }

  /** Records appended to this segment so far (genesis and checkpoints included). */
  get size(): number {
    return this.#seq;
  }

  /** The hash of this segment's last record. */
  get head(): string {
    return this.#head;
  }

  /** Appends a record of `type` with `fields` (which may not use the chain's reserved names). */
  append(type: string, fields: Readonly<Record<string, unknown>>): Promise<AppendResult> {
    try {
      return this.enqueue(type, fields).written;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Like `append`, but returns the record's place in the chain at once (it is fixed when the
   * record is queued) with `written`, which resolves as `append` does. Throws AuditRecordError
   * or AuditClosedError synchronously.
   */
  enqueue(
    type: string,
    fields: Readonly<Record<string, unknown>>,
  ): AppendResult & { written: Promise<AppendResult> } {
    if (this.#closed) throw new AuditClosedError();
    for (const key of Object.keys(fields)) {
      if (RESERVED_FIELDS.has(key)) {
        throw new AuditRecordError(`the field "${key}" is reserved by the chain`);
      }
    }
    if (type === "genesis" || type === "checkpoint") {
      throw new AuditRecordError(`the record type "${type}" is reserved`);
    }
    return this.#append(type, fields);
  }

  /** Writes a checkpoint of everything appended so far, inline and to the checkpoint file. */
  async checkpoint(): Promise<Checkpoint> {
    const checkpoint = this.#checkpointNow();
    await checkpoint.written;
    return checkpoint.checkpoint;
  }

  /** Releases one reference; the last writes a final checkpoint, drains, syncs and closes. */
  async close(): Promise<void> {
    if (--this.#refs > 0) return;
    this.#closed = true;
    chains.delete(this.#writer.path);
    clearInterval(this.#timer);
    this.#removeExitFlush();
    if (this.#sinceCheckpoint > 0) this.#checkpointNow();
    try {
      await this.#writer.close();
    } finally {
      await this.#externalWrites;
      await this.#checkpointWriter?.close();
    }
  }

  #checkpointNow(): { checkpoint: Checkpoint; written: Promise<unknown> } {
    const checkpoint = makeCheckpoint(this.writerId, this.#seq, this.#head, this.#key);
    this.#sinceCheckpoint = 0;
    const { writer: _writer, ...fields } = checkpoint;
    const inline = this.#append("checkpoint", fields).written;
    const line = `${JSON.stringify({ log: this.#writer.path, ts: new Date().toISOString(), ...checkpoint })}\n`;
    // The external copy is written once the log holds every record it covers, so after a crash
    // it is never ahead of the log (which `salvo verify` would rightly call a truncation).
    const checkpointWriter = this.#checkpointWriter;
    const external = checkpointWriter && inline.then(() => checkpointWriter.write(line));
    if (external) this.#externalWrites = this.#externalWrites.then(() => external).catch(() => {});
    return { checkpoint, written: Promise.all([inline, external]) };
  }

  #append(
    type: string,
    fields: Readonly<Record<string, unknown>>,
    prefix = "",
  ): AppendResult & { written: Promise<AppendResult> } {
    const seq = this.#seq;
    const body = {
      ...fields,
      type,
      writer: this.writerId,
      seq,
      prev: this.#head,
      ts: new Date().toISOString(),
    };
    let { line, hash } = encodeRecord(body);
    const secrets = this.#secretsNow();
    if (secrets.some((secret) => line.includes(JSON.stringify(secret).slice(1, -1)))) {
      // Configured secrets may be short: every non-empty one is masked (iteratively, any depth).
      ({ line, hash } = encodeRecord(new SecretScrubber(secrets, 1).value(body)));
    }
    this.#seq = seq + 1;
    this.#head = hash;
    const written = this.#writer.write(prefix + line);
    if (type !== "checkpoint" && ++this.#sinceCheckpoint >= this.#every) this.#checkpointNow();
    const result = { writer: this.writerId, seq, hash };
    return { ...result, written: written.then(() => result) };
  }

  /** The configured secrets and the providers' keys registered so far (some may come later). */
  #secretsNow(): readonly string[] {
    const registered = registeredSecrets();
    if (registered !== this.#registered) {
      this.#registered = registered;
      this.#allSecrets = [...new Set([...this.#secrets, ...registered])];
    }
    return this.#allSecrets;
  }

  #flushAtExit(): void {
    if (!this.#closed && this.#sinceCheckpoint > 0) {
      try {
        this.#checkpointNow().written.catch(() => {});
      } catch {
        // The exit must go on.
      }
    }
    this.#writer.flushSync();
    this.#checkpointWriter?.flushSync();
  }
}

// A pipeline's run directory: everything a run leaves behind, and what lets a rerun resume.
//
//   metadata.json   which pipeline and input it is for (SHA-256 of each), status, counts; written
//                   atomically (temp file, fsync, rename), so it is never seen torn
//   journal.jsonl   one line per succeeded task, appended (O_APPEND, one writer) the moment the
//                   task succeeds, while its call still holds its slot, and before any dependant
//                   starts; never rewritten
//   outputs/<stage>/<key>.json   one file per task that ended, replaced atomically
//   report.json     the run's report, at the end
//   report.html     the same report as a page: stages, tasks over time, the critical path
//
// A rerun on the same directory reuses every task in the journal. A directory made for another
// definition or input is refused (RunDirRefusedError) unless the run is `fresh`, which deletes
// these files (and nothing else) first. One run at a time per directory: `run.lock` names the
// run that holds it; a second run is refused (RunLockedError) before anything is read.
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import canonicalize from "canonicalize";
import { acquireLineWriter, type LineWriter } from "../audit/line-writer.ts";
import { RunLock } from "../batch/run-lock.ts";
import { ConfigError, RunDirRefusedError } from "../errors.ts";
import { removeTempFiles, writeFileAtomic } from "./atomic-write.ts";
import type { RunStatus, TaskRecord, TaskStatus } from "./task-record.ts";

export const METADATA_FILE = "metadata.json";
export const JOURNAL_FILE = "journal.jsonl";
export const OUTPUTS_DIR = "outputs";
export const REPORT_FILE = "report.json";
export const REPORT_HTML_FILE = "report.html";
/** Held by the run using the directory (see `RunLock`). */
export const LOCK_FILE = "run.lock";

/** What a run directory is for. */
export type RunIdentity = {
  name: string;
  /** SHA-256 (hex) of the definition's canonical JSON (`describeDefinition`). */
  definitionSha256: string;
  /** SHA-256 (hex) of the input's canonical JSON (RFC 8785). */
  inputSha256: string;
};

export type TaskCounts = Record<TaskStatus, number> & { total: number; reused: number };

export type RunMetadata = {
  salvo_pipeline: 1;
  name: string;
  definition_sha256: string;
  input_sha256: string;
  created_at: string;
  updated_at: string;
  /** Runs started in this directory (1 for the first). */
  runs: number;
  status: "running" | RunStatus;
  /** Per stage: its tasks, and how many have ended in this run or were reused. */
  stages: Array<{ name: string; tasks: number; ended: number }>;
  tasks: TaskCounts;
};

/** SHA-256 of a JSON value's canonical form; a value that is not JSON is a ConfigError. */
export function jsonSha256(value: unknown, field: string): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch {
    text = undefined;
  }
  if (text === undefined)
    throw new ConfigError({
      field,
      expected: "JSON data (a run directory identifies its run by a hash of it)",
      got: typeof value,
    });
  return createHash("sha256").update(text).digest("hex");
}

/** A file name for a task key: the key itself when it is a plain name, else a slug and a hash. */
export function outputFileName(key: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(key) && !key.endsWith(".tmp")) return `${key}.json`;
  const slug = key.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 60);
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 10);
  return `${slug}-${hash}.json`;
}

function isRecord(value: unknown): value is TaskRecord {
  const v = value as Partial<TaskRecord> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.task === "string" &&
    typeof v.stage === "string" &&
    typeof v.key === "string" &&
    v.status === "succeeded"
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

export class RunDir {
  readonly dir: string;
  readonly #journal: LineWriter;
  readonly #lock: RunLock;
  #metadata: RunMetadata;
  #metadataWrite: Promise<void> = Promise.resolve();

  private constructor(dir: string, journal: LineWriter, metadata: RunMetadata, lock: RunLock) {
    this.dir = dir;
    this.#journal = journal;
    this.#metadata = metadata;
    this.#lock = lock;
  }

  /**
   * Opens (or creates) the run directory for `identity`: refuses one made for another pipeline
   * or input, or one with a journal but no metadata (not a Salvo run directory), unless `fresh`
   * (which first deletes the run's files). Returns the journaled tasks, by id, to reuse; a torn
   * last journal line is cut off. `stages` are the run's stages and their task counts.
   */
  static async open(
    dir: string,
    identity: RunIdentity,
    options: { fresh?: boolean | undefined; stages: Array<{ name: string; tasks: number }> },
  ): Promise<{ runDir: RunDir; journaled: Map<string, TaskRecord> }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // One run per directory, before any file in it is read or changed.
    const lock = await RunLock.acquire(dir, join(dir, LOCK_FILE), {
      purpose: "salvo pipeline",
      field: "run directory",
    });
    try {
      return await RunDir.#open(dir, identity, options, lock);
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  static async #open(
    dir: string,
    identity: RunIdentity,
    options: { fresh?: boolean | undefined; stages: Array<{ name: string; tasks: number }> },
    lock: RunLock,
  ): Promise<{ runDir: RunDir; journaled: Map<string, TaskRecord> }> {
    const metadataPath = join(dir, METADATA_FILE);
    const journalPath = join(dir, JOURNAL_FILE);
    if (options.fresh) {
      // metadata.json last: a kill midway leaves a directory that is still ours (see below).
      for (const name of [JOURNAL_FILE, OUTPUTS_DIR, REPORT_FILE, REPORT_HTML_FILE, METADATA_FILE])
        await rm(join(dir, name), { recursive: true, force: true });
    }
    const previous = await readMetadata(dir, metadataPath);
    if (previous === undefined && (await exists(journalPath))) {
      // An empty journal without metadata is a first run killed before its metadata was renamed
      // into place (Salvo before this fix created the journal first): nothing was kept in it.
      if ((await stat(journalPath)).size > 0)
        throw new RunDirRefusedError(dir, `it has a ${JOURNAL_FILE} but no ${METADATA_FILE}`);
      await rm(journalPath, { force: true });
    }
    if (previous !== undefined) checkIdentity(dir, previous, identity);
    const journaled = previous === undefined ? new Map() : await readJournal(dir, journalPath);

    const now = new Date().toISOString();
    const metadata: RunMetadata = {
      salvo_pipeline: 1,
      name: identity.name,
      definition_sha256: identity.definitionSha256,
      input_sha256: identity.inputSha256,
      created_at: previous?.created_at ?? now,
      updated_at: now,
      runs: (previous?.runs ?? 0) + 1,
      status: "running",
      stages: options.stages.map((s) => ({ name: s.name, tasks: s.tasks, ended: 0 })),
      tasks: {
        total: options.stages.reduce((n, s) => n + s.tasks, 0),
        succeeded: 0,
        failed: 0,
        skipped: 0,
        cancelled: 0,
        reused: 0,
      },
    };
    await mkdir(join(dir, OUTPUTS_DIR), { recursive: true, mode: 0o700 });
    // Temporary files of atomic writes a killed run left behind (this run holds the lock, so no
    // other writer is using any).
    await removeTempFiles(dir);
    await removeTempFiles(join(dir, OUTPUTS_DIR), 1);
    // metadata.json exists before the journal does: a journal without it is not ours.
    await writeFileAtomic(metadataPath, `${JSON.stringify(metadata, null, 2)}\n`);
    const runDir = new RunDir(
      dir,
      acquireLineWriter(journalPath, { fsync: "interval" }),
      metadata,
      lock,
    );
    return { runDir, journaled };
  }

  get metadata(): Readonly<RunMetadata> {
    return this.#metadata;
  }

  /**
   * Journals a succeeded task's record now (before its output file): what `record` does later
   * for it is then only the output file.
   */
  async journal(record: TaskRecord): Promise<void> {
    await this.#journal.write(`${JSON.stringify(record)}\n`);
  }

  /**
   * Writes a task's output file and, for a succeeded task that was not reused, its journal line
   * (unless `journaled` says `journal` already wrote it); resolves once both are written (the
   * journal line before any dependant may start).
   */
  async record(record: TaskRecord, options: { journaled?: boolean } = {}): Promise<void> {
    const stageDir = join(this.dir, OUTPUTS_DIR, record.stage);
    await mkdir(stageDir, { recursive: true, mode: 0o700 });
    const output = join(stageDir, outputFileName(record.key));
    const write =
      record.reused && (await exists(output))
        ? undefined
        : writeFileAtomic(output, `${JSON.stringify(record, null, 2)}\n`, { fsync: false });
    const journal =
      record.status === "succeeded" && !record.reused && options.journaled !== true
        ? this.#journal.write(`${JSON.stringify(record)}\n`)
        : undefined;
    // Both settle before this returns (a failed journal write leaves no output write running).
    const [journaled, written] = await Promise.allSettled([journal, write]);
    if (journaled.status === "rejected") throw journaled.reason;
    if (written.status === "rejected") throw written.reason;
  }

  /** Merges `patch` into metadata.json and writes it atomically (writes are serialized). */
  updateMetadata(patch: Partial<RunMetadata>): Promise<void> {
    this.#metadata = { ...this.#metadata, ...patch, updated_at: new Date().toISOString() };
    const text = `${JSON.stringify(this.#metadata, null, 2)}\n`;
    const path = join(this.dir, METADATA_FILE);
    // Serialized, but each write stands on its own: one that failed (a full disk for a moment)
    // is reported to its caller and does not fail every later one. It rewrites the whole file.
    const write = this.#metadataWrite.catch(() => {}).then(() => writeFileAtomic(path, text));
    this.#metadataWrite = write;
    return write;
  }

  /** Writes report.json atomically. */
  writeReport(report: unknown): Promise<void> {
    return writeFileAtomic(join(this.dir, REPORT_FILE), `${JSON.stringify(report, null, 2)}\n`);
  }

  /** Writes report.html (the HTML report's page) atomically. */
  writeHtmlReport(html: string): Promise<void> {
    return writeFileAtomic(join(this.dir, REPORT_HTML_FILE), html);
  }

  /** Flushes and closes the journal; waits for metadata writes; releases the directory's lock. */
  async close(): Promise<void> {
    try {
      await this.#metadataWrite;
    } finally {
      try {
        await this.#journal.close();
      } finally {
        await this.#lock.release();
      }
    }
  }
}

async function readMetadata(dir: string, path: string): Promise<RunMetadata | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let value: Partial<RunMetadata> | undefined;
  try {
    value = JSON.parse(text) as Partial<RunMetadata>;
  } catch {
    value = undefined;
  }
  if (value?.salvo_pipeline !== 1)
    throw new RunDirRefusedError(dir, `its ${METADATA_FILE} is not a Salvo pipeline's`);
  return value as RunMetadata;
}

function checkIdentity(dir: string, previous: RunMetadata, identity: RunIdentity): void {
  const problems: string[] = [];
  if (previous.name !== identity.name)
    problems.push(
      `pipeline ${JSON.stringify(previous.name)}, not ${JSON.stringify(identity.name)}`,
    );
  if (previous.definition_sha256 !== identity.definitionSha256)
    problems.push(
      `a pipeline definition with sha256 ${previous.definition_sha256.slice(0, 12)}, not ${identity.definitionSha256.slice(0, 12)} (the definition changed)`,
    );
  if (previous.input_sha256 !== identity.inputSha256)
    problems.push(
      `an input with sha256 ${previous.input_sha256.slice(0, 12)}, not ${identity.inputSha256.slice(0, 12)} (the input changed)`,
    );
  if (problems.length > 0)
    throw new RunDirRefusedError(dir, `it was created for ${problems.join(", and ")}`);
}

/**
 * The journal's records by task id. A torn last line (a kill mid-write, a power loss) and invalid
 * lines after the last valid one are cut off; an invalid line followed by a valid one is
 * corruption, refused with its line number.
 */
async function readJournal(dir: string, path: string): Promise<Map<string, TaskRecord>> {
  const records = new Map<string, TaskRecord>();
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return records;
    throw error;
  }
  let validLength = 0;
  let badLine: number | undefined;
  let start = 0;
  for (let line = 1; start < data.length; line++) {
    const end = data.indexOf(0x0a, start);
    if (end < 0) break; // a torn last line
    let value: unknown;
    try {
      value = JSON.parse(data.subarray(start, end).toString("utf8"));
    } catch {
      value = undefined;
    }
    if (isRecord(value)) {
      if (badLine !== undefined)
        throw new RunDirRefusedError(
          dir,
          `line ${badLine} of its ${JOURNAL_FILE} is not a task record (the journal is corrupt)`,
        );
      records.set(value.task, value);
      validLength = end + 1;
    } else {
      badLine ??= line;
    }
    start = end + 1;
  }
  if (validLength < data.length) await truncate(path, validLength);
  return records;
}

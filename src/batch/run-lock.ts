// One run at a time on an output file or a pipeline's run directory: a lock file beside it that
// names its holder (pid, host, since when), and that a killed holder does not leave behind.
//
// How: the lock file is created whole, atomically, by link(2) of a complete temporary file (the
// classic NFS-safe exclusive create: link fails with EEXIST if the name exists, on every local
// filesystem and on NFS, where O_EXCL was long unreliable). A second run finds it and refuses at
// once, naming the holder. A lock whose holder is dead is taken over at once, with no timeout: on
// the same host (same boot, same pid namespace) a holder is dead when its pid is gone, is a
// zombie, or now belongs to another process (its start time in /proc differs: pid reuse), or the
// machine has rebooted since. So `kill -9` then a rerun works immediately.
//
// Why not a lease renewed by its holder (proper-lockfile's mtime heartbeat): a killed holder's
// lease blocks every rerun until it expires, and a paused holder (SIGSTOP, a laptop asleep) loses
// a lease it still acts on. Why not flock(2): Node has no binding without a native module, and
// flock is advisory-only on NFS. The cost of this choice: a holder on another host (a run
// directory on NFS shared by two machines) cannot be checked from here, so its lock is honoured
// until it is released or deleted by hand; the message says so.
//
// Taking over a dead holder's lock is serialized by a second lock (`<lock>.break`), and a lock is
// only ever removed by a process that read the dead holder's token in it just before, so two
// reruns racing for one stale lock cannot both win.
import { randomBytes } from "node:crypto";
import { link, open, readdir, readFile, readlink, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { ConfigError, type LockHolder, RunLockedError, SalvoError } from "../errors.ts";

/** The lock file's content. */
type LockRecord = LockHolder & {
  salvo_lock: 1;
  /** What holds it (`salvo run`, `salvo pipeline`, or the library). */
  purpose: string;
  /** Unique per acquisition: a lock is released or broken only by whoever read this token. */
  token: string;
  /** /proc/sys/kernel/random/boot_id: a holder from an earlier boot is dead. */
  boot_id?: string | undefined;
  /** The pid namespace (`/proc/self/ns/pid`): pids of another namespace cannot be checked. */
  pid_ns?: string | undefined;
  /** The holder's start time in clock ticks since boot (/proc/<pid>/stat field 22): detects pid reuse. */
  start_ticks?: string | undefined;
};

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
}

/** A process's state letter and start time from /proc (Linux); undefined elsewhere or if gone. */
async function procStat(pid: number): Promise<{ state: string; start: string } | undefined> {
  const text = await readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // `pid (comm) state ppid ...`: comm may hold spaces and parentheses; the rest follows the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const start = fields[19]; // field 22 of the whole line
  return state === undefined || start === undefined ? undefined : { state, start };
}

async function selfIdentity(): Promise<Pick<LockRecord, "boot_id" | "pid_ns" | "start_ticks">> {
  const [boot, ns, stat] = await Promise.all([
    readText("/proc/sys/kernel/random/boot_id"),
    readlink("/proc/self/ns/pid").catch(() => undefined),
    procStat(process.pid),
  ]);
  return { boot_id: boot, pid_ns: ns, start_ticks: stat?.start };
}

/** Whether a pid names a live process here: kill(pid, 0) succeeds or is refused (EPERM). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether the holder of a lock is certainly dead. Only a holder on this host, in this boot and
 * this pid namespace can be checked; any other is presumed alive.
 */
async function holderIsDead(holder: LockRecord, self: Awaited<ReturnType<typeof selfIdentity>>) {
  if (holder.host !== hostname()) return false;
  if (holder.boot_id !== undefined && self.boot_id !== undefined)
    if (holder.boot_id !== self.boot_id) return true;
  if (holder.pid_ns !== undefined && self.pid_ns !== undefined && holder.pid_ns !== self.pid_ns)
    return false;
  if (!pidExists(holder.pid)) return true;
  const stat = await procStat(holder.pid);
  if (stat === undefined) return false; // no /proc: the pid exists, presume it is the holder
  if (stat.state === "Z" || stat.state === "X") return true; // killed, not yet reaped
  return holder.start_ticks !== undefined && holder.start_ticks !== stat.start;
}

function parseRecord(text: string | undefined): LockRecord | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<LockRecord>;
    if (
      value.salvo_lock === 1 &&
      Number.isInteger(value.pid) &&
      typeof value.host === "string" &&
      typeof value.token === "string"
    )
      return value as LockRecord;
  } catch {
    // not a lock record
  }
  return undefined;
}

const isCode = (error: unknown, ...codes: string[]) =>
  codes.includes((error as NodeJS.ErrnoException).code ?? "");

/** Creates `path` holding `text`, atomically and exclusively; false if it exists. */
async function createExclusive(path: string, text: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(temp, "wx", 0o600);
  try {
    await handle.writeFile(text, "utf8");
  } finally {
    await handle.close();
  }
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if (isCode(error, "EEXIST")) return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => {});
  }
}

/** Removes temporary files of this lock left by processes killed while creating them. */
async function removeDeadTemps(lockFile: string): Promise<void> {
  const prefix = `${basename(lockFile)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(lockFile));
  } catch {
    return;
  }
  for (const name of names) {
    const match = /^(\d+)\.[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length));
    if (!name.startsWith(prefix) || match === null) continue;
    if (!pidExists(Number(match[1]))) await unlink(join(dirname(lockFile), name)).catch(() => {});
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type RunLockOptions = {
  /** What takes the lock, recorded in it (e.g. `salvo run`). @default "salvo" */
  purpose?: string | undefined;
  /** The option naming the target, for the error when the lock cannot be created. @default "lock" */
  field?: string | undefined;
};

/**
 * An exclusive lock on a run's target (an output file, a run directory), held by this process
 * until `release`. See the module comment for how a dead holder's lock is taken over.
 */
export class RunLock {
  readonly target: string;
  readonly lockFile: string;
  readonly #token: string;
  #released = false;

  private constructor(target: string, lockFile: string, token: string) {
    this.target = target;
    this.lockFile = lockFile;
    this.#token = token;
  }

  /**
   * Takes the lock `lockFile` for `target`. Rejects with RunLockedError, naming the holder, if a
   * live process holds it (this process included: one run per target, even in one program); with
   * ConfigError if the lock cannot be created there (a missing or read-only directory).
   */
  static async acquire(
    target: string,
    lockFile: string,
    options: RunLockOptions = {},
  ): Promise<RunLock> {
    const self = await selfIdentity();
    const token = randomBytes(12).toString("hex");
    const record: LockRecord = {
      salvo_lock: 1,
      pid: process.pid,
      host: hostname(),
      since: new Date().toISOString(),
      purpose: options.purpose ?? "salvo",
      token,
      ...self,
    };
    const text = `${JSON.stringify(record)}\n`;
    try {
      // Each pass either takes the lock, refuses, or removes one dead holder's lock: a few suffice.
      for (let pass = 0; pass < 50; pass++) {
        if (await createExclusive(lockFile, text)) {
          // Proof against the one race the break lock cannot exclude (its own holder killed).
          if (parseRecord(await readText(lockFile))?.token !== token) continue;
          await removeDeadTemps(lockFile);
          return new RunLock(target, lockFile, token);
        }
        const holder = parseRecord(await readText(lockFile));
        if (holder === undefined) {
          if ((await readText(lockFile)) === undefined) continue; // released meanwhile
          throw new ConfigError({
            field: "lock file",
            expected: `a Salvo lock file (delete it if no salvo run is using ${target})`,
            got: (await readText(lockFile))?.slice(0, 60),
            where: lockFile,
          });
        }
        if (!(await holderIsDead(holder, self)))
          throw new RunLockedError(target, lockFile, {
            pid: holder.pid,
            host: holder.host,
            since: holder.since,
          });
        await breakLock(lockFile, holder.token, text, self);
      }
    } catch (error) {
      if (isCode(error, "ENOENT", "ENOTDIR", "EACCES", "EPERM", "EROFS"))
        throw new ConfigError(
          {
            field: options.field ?? "lock",
            expected: "a path in an existing, writable directory",
            got: target,
            where: `the lock file ${lockFile}: ${(error as Error).message}`,
          },
          { cause: error },
        );
      throw error;
    }
    throw new SalvoError(
      `could not take the lock ${lockFile} for ${target}: it keeps changing hands`,
    );
  }

  /** Removes the lock file, if it is still this lock's. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    if (parseRecord(await readText(this.lockFile))?.token === this.#token)
      await unlink(this.lockFile).catch(() => {});
  }
}

/**
 * Removes a dead holder's lock file, if it still holds `deadToken`, under `<lock>.break` so that
 * only one process at a time may remove it.
 */
async function breakLock(
  lockFile: string,
  deadToken: string,
  text: string,
  self: Awaited<ReturnType<typeof selfIdentity>>,
): Promise<void> {
  const breaker = `${lockFile}.break`;
  if (!(await createExclusive(breaker, text))) {
    // Another process is taking it over right now, or died doing so.
    const other = parseRecord(await readText(breaker));
    if (other !== undefined && (await holderIsDead(other, self)))
      await unlink(breaker).catch(() => {});
    else await sleep(20);
    return;
  }
  try {
    if (parseRecord(await readText(lockFile))?.token === deadToken)
      await unlink(lockFile).catch((error: unknown) => {
        if (!isCode(error, "ENOENT")) throw error;
      });
  } finally {
    await unlink(breaker).catch(() => {});
  }
}

// Checks a batch run's paths before any file is touched or any call is made: the input can be
// read, every file the run writes can be written, and no two of them are the same file (an output
// that is the input, a report that is the call log...). A run refused here has changed nothing.
import { constants, type Stats } from "node:fs";
import { access, open, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { ConfigError } from "../errors.ts";

export type BatchPaths = {
  input: string;
  output: string;
  report?: string | undefined;
  audit?: string | undefined;
  cache?: string | undefined;
};

type Checked = {
  /** The option that names it, for messages. */
  option: string;
  path: string;
  /** The file's real path (symbolic links resolved), existing or not. */
  real: string;
  /** device:inode of an existing file, so that hard links are found too. */
  inode: string | undefined;
};

function refuse(option: string, expected: string, got: unknown, cause?: unknown): never {
  throw new ConfigError({ field: option, expected, got, where: "command line" }, { cause });
}

async function statOf(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The real path of `path`, which may not exist yet (its directory must). */
async function realPathOf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    try {
      return join(await realpath(dirname(path)), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

async function checked(option: string, path: string, stats: Stats | undefined): Promise<Checked> {
  return {
    option,
    path,
    real: await realPathOf(path),
    inode: stats === undefined ? undefined : `${stats.dev}:${stats.ino}`,
  };
}

/** A file the run writes: a regular file or nothing yet, in a directory it may write to. */
async function writable(
  option: string,
  path: string,
  kind: "file" | "directory" = "file",
): Promise<Checked> {
  const stats = await statOf(path);
  if (stats !== undefined) {
    if (kind === "file" && !stats.isFile())
      refuse(
        option,
        `a regular file Salvo can write (and read back to resume), not ${stats.isDirectory() ? "a directory" : "a device, pipe or socket"}`,
        path,
      );
    if (kind === "directory" && !stats.isDirectory())
      refuse(option, "a directory (or a path where one can be made)", path);
    try {
      await access(path, constants.W_OK | constants.R_OK);
    } catch (error) {
      refuse(option, `a ${kind} Salvo may read and write (permission denied)`, path, error);
    }
    return checked(option, path, stats);
  }
  // It will be created: its directory must exist (for a cache, some ancestor) and be writable.
  let dir = dirname(resolve(path));
  let dirStats = await statOf(dir);
  if (kind === "directory")
    while (dirStats === undefined && dirname(dir) !== dir) {
      dir = dirname(dir);
      dirStats = await statOf(dir);
    }
  if (dirStats === undefined)
    refuse(option, `a path in an existing directory (${dir} does not exist)`, path);
  if (!dirStats.isDirectory()) refuse(option, `a path in a directory (${dir} is not one)`, path);
  try {
    await access(dir, constants.W_OK);
  } catch (error) {
    refuse(option, `a path in a directory Salvo may write to (${dir} is read-only)`, path, error);
  }
  return checked(option, path, undefined);
}

/**
 * Refuses, with a ConfigError naming the option and the path, an input that cannot be read or is
 * not a regular file, a file to write that cannot be written, and any two paths that are the same
 * file (the output's journal and the call log's checkpoints included).
 */
export async function checkBatchPaths(paths: BatchPaths): Promise<void> {
  const input = await statOf(paths.input);
  if (input === undefined) refuse("input", "an existing JSONL file", paths.input);
  if (!input.isFile())
    refuse(
      "input",
      `a regular JSONL file (it is read twice: once to check it, once to run it), not ${input.isDirectory() ? "a directory" : "a device, pipe or socket"}`,
      paths.input,
    );
  try {
    await access(paths.input, constants.R_OK);
  } catch (error) {
    refuse("input", "a file Salvo may read (permission denied)", paths.input, error);
  }
  const files: Checked[] = [await checked("input", paths.input, input)];
  files.push(await writable("--output", paths.output));
  files.push(await writable("--output's journal", `${paths.output}.journal`));
  if (paths.report !== undefined) files.push(await writable("--report", paths.report));
  if (paths.audit !== undefined) {
    files.push(await writable("--audit", paths.audit));
    files.push(await writable("--audit's checkpoints", `${paths.audit}.checkpoints`));
  }
  if (paths.cache !== undefined) files.push(await writable("--cache", paths.cache, "directory"));
  for (let i = 0; i < files.length; i++)
    for (let j = i + 1; j < files.length; j++) {
      const a = files[i]!;
      const b = files[j]!;
      const same = a.real === b.real || (a.inode !== undefined && a.inode === b.inode);
      const inside =
        paths.cache !== undefined &&
        (b.option === "--cache" || a.option === "--cache") &&
        (a.real.startsWith(`${b.real}/`) || b.real.startsWith(`${a.real}/`));
      if (same || inside)
        refuse(
          b.option,
          `a path of its own: it is ${same ? "the same file as" : "inside"} ${a.option} (${a.path}), which the run would ${a.option === "input" ? "read" : "write"}`,
          b.path,
        );
    }
}

/** The first line of a file (at most 1 MiB of it), or undefined for an empty or missing file. */
async function firstLine(path: string): Promise<string | undefined> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    const buffer = Buffer.alloc(1 << 20);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead === 0) return undefined;
    const text = buffer.subarray(0, bytesRead).toString("utf8");
    const end = text.indexOf("\n");
    return end < 0 ? text : text.slice(0, end);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  } finally {
    await handle?.close();
  }
}

function parsesAs(line: string, test: (value: Record<string, unknown>) => boolean): boolean {
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === "object" && value !== null && test(value as Record<string, unknown>);
  } catch {
    return false;
  }
}

/**
 * `--fresh` removes the output and its journal: only when they are Salvo's own. An output whose
 * first line is not an output line (`custom_id` with `response` or `error`), or a journal without
 * Salvo's header, is some other file at that path, and is refused, not deleted.
 */
export async function checkFreshTargets(output: string): Promise<void> {
  const outputLine = await firstLine(output);
  if (
    outputLine !== undefined &&
    !parsesAs(outputLine, (v) => "custom_id" in v && ("response" in v || "error" in v))
  )
    refuse(
      "--fresh",
      "an --output that Salvo wrote (its lines answer custom_ids): --fresh deletes it, and this file is not Salvo's; choose another --output",
      output,
    );
  const journal = `${output}.journal`;
  const journalLine = await firstLine(journal);
  if (journalLine !== undefined && !parsesAs(journalLine, (v) => "salvo_journal" in v))
    refuse(
      "--fresh",
      "a journal that Salvo wrote: --fresh deletes it, and this file is not Salvo's; move it away or choose another --output",
      journal,
    );
}

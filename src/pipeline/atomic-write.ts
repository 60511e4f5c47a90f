// Whole-file writes that are never seen torn: the text goes to a temporary file beside the
// target, is fsynced (when asked), and replaces the target with one rename. A reader sees the old
// file or the new one, whatever kills the writer; with `fsync`, the new one survives a power loss
// once this resolves.
import { randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export type AtomicWriteOptions = {
  /** fsync the file before the rename and the directory after it. @default true */
  fsync?: boolean | undefined;
  /** Permissions of the file. @default 0o600 */
  mode?: number | undefined;
};

const TEMP_SUFFIX = ".tmp";
/** `.<name>.<12 hex digits>.tmp`: the temporary files `writeFileAtomic` makes. */
const TEMP_NAME = /^\..+\.[0-9a-f]{12}\.tmp$/;

/**
 * Deletes the temporary files `writeFileAtomic` left in `dir` (and, with `depth`, in that many
 * levels of subdirectories) when its process was killed between creating and renaming them.
 * Only for a directory no other writer is using (its owner holds a lock on it).
 */
export async function removeTempFiles(dir: string, depth = 0): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isFile() && TEMP_NAME.test(entry.name)) await rm(path, { force: true });
    else if (entry.isDirectory() && depth > 0) await removeTempFiles(path, depth - 1);
  }
}

/** Replaces `path` with `text` atomically. */
export async function writeFileAtomic(
  path: string,
  text: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const fsync = options.fsync ?? true;
  const temp = join(
    dirname(path),
    `.${basename(path)}.${randomBytes(6).toString("hex")}${TEMP_SUFFIX}`,
  );
  const handle = await open(temp, "wx", options.mode ?? 0o600);
  try {
    try {
      await handle.writeFile(text, "utf8");
      if (fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  if (fsync) await syncDirectory(dirname(path));
}

/** Makes a rename or a new entry in `dir` durable. Some filesystems refuse; that is not an error. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on filesystems without directory fsync: the rename itself is done.
  } finally {
    await handle?.close();
  }
}

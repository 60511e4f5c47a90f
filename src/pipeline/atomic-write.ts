// Whole-file writes that are never seen torn: the text goes to a temporary file beside the
// target, is fsynced (when asked), and replaces the target with one rename. A reader sees the old
// file or the new one, whatever kills the writer; with `fsync`, the new one survives a power loss
// once this resolves.
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export type AtomicWriteOptions = {
  /** fsync the file before the rename and the directory after it. @default true */
  fsync?: boolean | undefined;
  /** Permissions of the file. @default 0o600 */
  mode?: number | undefined;
};

/** Replaces `path` with `text` atomically. */
export async function writeFileAtomic(
  path: string,
  text: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const fsync = options.fsync ?? true;
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
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

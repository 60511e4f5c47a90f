// A torn tail: the bytes after the last `\n` of a file, left by a writer that died mid-write.
//
// Healing never destroys the evidence: the torn bytes stay where they are, the healer appends
// `\n` (which closes the torn line) and then a record naming the torn line by offset, length and
// SHA-256. A chained log names it in its next segment's genesis (`recovered`); a plain file gets
// a `{"salvo_torn_tail": {...}}` line. `salvo verify` accepts an unparsable line only when such a
// record claims it; otherwise it is a parse error (or, as the very last line, a torn tail).

import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export type TornTail = {
  /** Byte offset where the torn line starts. */
  offset: number;
  /** Its length in bytes (without the `\n` the healer adds). */
  length: number;
  /** SHA-256 (hex) of its bytes. */
  sha256: string;
};

const CHUNK = 64 * 1024;

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * The torn tail of the file open as `fd` (read-only use), or undefined if it ends with `\n`.
 *
 * Another process may be appending right now: `stat` can see the file grow in the middle of its
 * `write()`, which looks like a torn line for an instant. A writer that died leaves a tail that
 * never changes; so a tail counts as torn only when the same one (offset, length, hash) is seen
 * on three looks 5 ms apart. If the file keeps changing (busy writers), nothing is called torn:
 * healing then could split a live writer's line, and a tail that others append after is no
 * longer a tail.
 */
export function findTornTail(fd: number): TornTail | undefined {
  let seen = scanTail(fd);
  let same = 1;
  for (let looks = 0; seen !== undefined && same < 3; looks++) {
    if (looks >= 20) return undefined;
    Atomics.wait(pause, 0, 0, 5);
    const again = scanTail(fd);
    if (
      again !== undefined &&
      again.offset === seen.offset &&
      again.length === seen.length &&
      again.sha256 === seen.sha256
    ) {
      same++;
    } else {
      seen = again;
      same = 1;
    }
  }
  return seen;
}

function scanTail(fd: number): TornTail | undefined {
  const size = fstatSync(fd).size;
  if (size === 0) return undefined;
  const buffer = Buffer.allocUnsafe(CHUNK);
  // Scan backwards for the last newline.
  let end = size;
  let start = size;
  let lineStart = 0;
  search: while (end > 0) {
    start = Math.max(0, end - CHUNK);
    const n = readSync(fd, buffer, 0, end - start, start);
    for (let i = n - 1; i >= 0; i--) {
      if (buffer[i] === 0x0a) {
        lineStart = start + i + 1;
        break search;
      }
    }
    end = start;
  }
  if (lineStart === size) return undefined;
  const hash = createHash("sha256");
  for (let position = lineStart; position < size; ) {
    const n = readSync(fd, buffer, 0, Math.min(CHUNK, size - position), position);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
    position += n;
  }
  return { offset: lineStart, length: size - lineStart, sha256: hash.digest("hex") };
}

/** The torn tail of the file at `path`, or undefined (also when the file does not exist). */
export function findTornTailOf(path: string): TornTail | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    return findTornTail(fd);
  } finally {
    closeSync(fd);
  }
}

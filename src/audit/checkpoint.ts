// Checkpoints: a commitment `(writer, size, head)` to a segment's first `size` records, MAC'ed
// with HMAC-SHA256 when a key is configured. Written inline in the chain and also, one JSON line
// each, to a separate checkpoint file meant to be shipped where the log's writer cannot rewrite
// it. A verifier holding a checkpoint detects a truncated tail and a rewritten-and-rehashed
// chain up to that checkpoint; holding the key, it also detects forged inline checkpoints.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** The environment variable holding the HMAC key (any string; 32+ random bytes advised). */
export const HMAC_KEY_ENV = "SALVO_AUDIT_HMAC_KEY";

export type Checkpoint = {
  /** The segment (writer id) it covers. */
  writer: string;
  /** Records of the segment it covers: seq 0 .. size-1. */
  size: number;
  /** The hash of record `size - 1`. */
  head: string;
  /** HMAC-SHA256 (hex) of the checkpoint note, when a key was configured. */
  mac?: string | undefined;
  /** Which key: the first 16 hex digits of SHA-256("salvo-key-id\n" || key); not the key. */
  key_id?: string | undefined;
};

/** The signed note, in the spirit of C2SP tlog-checkpoint: origin, size, head. */
export function checkpointNote(writer: string, size: number, head: string): string {
  return `salvo-checkpoint/v1\n${writer}\n${size}\n${head}\n`;
}

export function keyId(key: string): string {
  return createHash("sha256").update("salvo-key-id\n").update(key).digest("hex").slice(0, 16);
}

export function checkpointMac(key: string, writer: string, size: number, head: string): string {
  return createHmac("sha256", key)
    .update(checkpointNote(writer, size, head))
    .digest("hex");
}

/** Whether `mac` is the checkpoint's HMAC under `key` (constant time). */
export function macMatches(
  key: string,
  checkpoint: Pick<Checkpoint, "writer" | "size" | "head" | "mac">,
): boolean {
  if (typeof checkpoint.mac !== "string" || !/^[0-9a-f]{64}$/.test(checkpoint.mac)) return false;
  const expected = Buffer.from(
    checkpointMac(key, checkpoint.writer, checkpoint.size, checkpoint.head),
    "hex",
  );
  return timingSafeEqual(expected, Buffer.from(checkpoint.mac, "hex"));
}

/** A checkpoint for `(writer, size, head)`, MAC'ed when `key` is given. */
export function makeCheckpoint(
  writer: string,
  size: number,
  head: string,
  key: string | undefined,
): Checkpoint {
  if (key === undefined) return { writer, size, head };
  return { writer, size, head, mac: checkpointMac(key, writer, size, head), key_id: keyId(key) };
}

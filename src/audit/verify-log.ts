// Verifies a chained log (call log or decision log) in one streaming pass, in memory constant in
// the file's length (state per segment, not per record).
//
// Per line: it parses as a chained record; within its segment `seq` follows the previous one and
// `prev` is the previous record's hash; `hash` recomputes; an inline checkpoint names its own
// position and carries a valid MAC (when a key is given, a MAC is required); the segment's hash
// at every externally checkpointed size equals the checkpoint's head; at the end, no segment is
// shorter than its newest external checkpoint (tail truncation, a deleted segment). The external
// checkpoints are read from `<log>.checkpoints` when no other file is named and it exists.
// An unparsable line is accepted only if a later genesis claims it as a healed torn tail
// (`recovered: {offset, length, sha256}`); a last line without `\n` is a torn tail.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import { basename } from "node:path";
import { DOMAIN, GENESIS_PREV, HASH_SUFFIX_LENGTH, recomputeHash } from "./chain-record.ts";
import { macMatches } from "./checkpoint.ts";
import type { TornTail } from "./torn-tail.ts";

export type VerifyReason =
  | "PARSE_ERROR"
  | "SEQ_GAP"
  | "RECORD_HASH_MISMATCH"
  | "PREV_HASH_MISMATCH"
  | "CHECKPOINT_MISMATCH"
  | "CHECKPOINT_MAC_INVALID"
  | "TRUNCATED"
  | "TORN_TAIL";

/** `intact` (exit 0), `tampered` (1), `torn_tail` only (2), `io_error` (3). */
export type VerifyStatus = "intact" | "tampered" | "torn_tail" | "io_error";

export type BadRecord = {
  reason: VerifyReason;
  /** 0-based index of the record among the file's non-empty lines. */
  index: number;
  /** 1-based line number (in the checkpoints file for a bad external checkpoint). */
  line: number;
  byte_offset: number;
  message: string;
  writer?: string | undefined;
  seq?: number | undefined;
  expected?: string | number | undefined;
  actual?: string | number | undefined;
};

export type VerifyReport = {
  path: string;
  status: VerifyStatus;
  /** Valid chained records read (genesis and checkpoints included). */
  records: number;
  /** The hash of the last valid record in the file. */
  head: string | undefined;
  /** Segments (writers) seen. */
  segments: number;
  first_bad?: BadRecord | undefined;
  torn_tail?: TornTail | undefined;
  /** Torn lines healed by a later genesis (crashes survived). */
  healed: number;
  checkpoints: {
    /** The external checkpoint file read; null when there was none. */
    file: string | null;
    inline: number;
    external: number;
    /** MACs checked against the key. */
    macs_verified: number;
    /** MACs present but not checked (no key given). */
    macs_unverified: number;
  };
  /** Records after their segment's last checkpoint: not protected against tail truncation. */
  unanchored_records: number;
  /** The I/O error, with status `io_error`. */
  error?: string | undefined;
};

export type VerifyOptions = {
  /**
   * A checkpoint file kept apart from the log (one JSON checkpoint per line); `false` for none.
   * @default `${path}.checkpoints` if it exists (where the writers put them)
   */
  checkpointsFile?: string | false | undefined;
  /** The HMAC key of the checkpoints; with it every checkpoint must carry a valid MAC. @default none */
  hmacKey?: string | undefined;
  /** Bytes read at a time. @default 1_048_576 */
  chunkBytes?: number | undefined;
};

type Segment = { seq: number; head: string; anchored: number };
type Pending = { index: number; line: number; offset: number; length: number; sha256: string };
type External = Map<string, Map<number, string>>;

const HEX64 = /^[0-9a-f]{64}$/;

const MAX_PENDING = 1000;

class Stop extends Error {}

/** Reads the lines of a file with their byte offsets; the last one may lack its `\n`. */
async function* lines(
  path: string,
  chunkBytes: number,
): AsyncGenerator<{
  buffer: Buffer;
  start: number;
  end: number;
  offset: number;
  terminated: boolean;
}> {
  let carry: Buffer | undefined;
  let base = 0; // file offset of buffer[0]
  for await (const chunk of createReadStream(path, {
    highWaterMark: chunkBytes,
  }) as AsyncIterable<Buffer>) {
    const buffer: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = buffer.indexOf(10, start); nl !== -1; nl = buffer.indexOf(10, start)) {
      yield { buffer, start, end: nl, offset: base + start, terminated: true };
      start = nl + 1;
    }
    carry = start < buffer.length ? buffer.subarray(start) : undefined;
    base += start;
  }
  if (carry) yield { buffer: carry, start: 0, end: carry.length, offset: base, terminated: false };
}

async function loadCheckpoints(
  file: string,
  key: string | undefined,
  report: VerifyReport,
): Promise<{ external: External; bad?: BadRecord; logs: Map<string, string> }> {
  const external: External = new Map();
  const logs = new Map<string, string>();
  let line = 0;
  for await (const { buffer, start, end, offset, terminated } of lines(file, 1 << 20)) {
    line++;
    if (!terminated || end === start) continue;
    let cp: { writer?: unknown; size?: unknown; head?: unknown; mac?: unknown; log?: unknown };
    try {
      cp = JSON.parse(buffer.toString("utf8", start, end));
    } catch {
      continue;
    }
    if (
      typeof cp.writer !== "string" ||
      typeof cp.size !== "number" ||
      typeof cp.head !== "string"
    ) {
      continue;
    }
    report.checkpoints.external++;
    if (cp.mac !== undefined || key !== undefined) {
      if (key === undefined) report.checkpoints.macs_unverified++;
      else if (
        macMatches(key, cp as { writer: string; size: number; head: string; mac?: string })
      ) {
        report.checkpoints.macs_verified++;
      } else {
        return {
          external,
          logs,
          bad: {
            reason: "CHECKPOINT_MAC_INVALID",
            index: report.checkpoints.external - 1,
            line,
            byte_offset: offset,
            writer: cp.writer,
            message: `checkpoint ${line} of ${file} has ${cp.mac === undefined ? "no" : "an invalid"} MAC`,
          },
        };
      }
    }
    const sizes = external.get(cp.writer) ?? new Map<number, string>();
    external.set(cp.writer, sizes);
    sizes.set(cp.size, cp.head);
    if (typeof cp.log === "string") logs.set(cp.writer, cp.log);
  }
  return { external, logs };
}

/** The checkpoint file to read: the one named, else `<log>.checkpoints` if it exists. */
async function checkpointsFileOf(
  path: string,
  named: string | false | undefined,
): Promise<string | undefined> {
  if (named === false) return undefined;
  if (named !== undefined) return named;
  const beside = `${path}.checkpoints`;
  try {
    await access(beside);
    return beside;
  } catch {
    return undefined;
  }
}

/** Verifies the log at `path`; never throws (an I/O failure is status `io_error`). */
export async function verifyLog(path: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const report: VerifyReport = {
    path,
    status: "intact",
    records: 0,
    head: undefined,
    segments: 0,
    healed: 0,
    checkpoints: { file: null, inline: 0, external: 0, macs_verified: 0, macs_unverified: 0 },
    unanchored_records: 0,
  };
  const key = options.hmacKey;
  const segments = new Map<string, Segment>();
  const pending: Pending[] = [];
  let external: External = new Map();
  let externalLogs = new Map<string, string>();
  let bad: BadRecord | undefined;
  let index = 0;
  let lineNo = 0;
  try {
    const checkpointsFile = await checkpointsFileOf(path, options.checkpointsFile);
    if (checkpointsFile !== undefined) {
      report.checkpoints.file = checkpointsFile;
      const loaded = await loadCheckpoints(checkpointsFile, key, report);
      external = loaded.external;
      externalLogs = loaded.logs;
      bad = loaded.bad;
    }
    const fail = (
      reason: VerifyReason,
      offset: number,
      message: string,
      extra: Partial<BadRecord> = {},
    ) => {
      bad = { reason, index, line: lineNo, byte_offset: offset, message, ...extra };
      throw new Stop();
    };
    try {
      if (bad) throw new Stop();
      for await (const { buffer, start, end, offset, terminated } of lines(
        path,
        options.chunkBytes ?? 1 << 20,
      )) {
        lineNo++;
        if (end === start) continue;
        if (!terminated) {
          const sha256 = createHash("sha256").update(buffer.subarray(start, end)).digest("hex");
          report.torn_tail = { offset, length: end - start, sha256 };
          break;
        }
        const text = buffer.toString("utf8", start, end);
        let record: Record<string, unknown> | undefined;
        try {
          const parsed: unknown = JSON.parse(text);
          if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
            record = parsed as Record<string, unknown>;
          }
        } catch {
          // handled below
        }
        if (record === undefined) {
          const sha256 = createHash("sha256").update(buffer.subarray(start, end)).digest("hex");
          pending.push({ index, line: lineNo, offset, length: end - start, sha256 });
          // Torn lines are claimed by the genesis right after them; this many waiting is damage.
          if (pending.length > MAX_PENDING) throw new Stop();
          index++;
          continue;
        }
        const { writer, seq, prev, hash, type } = record;
        if (
          typeof writer !== "string" ||
          typeof type !== "string" ||
          !Number.isInteger(seq) ||
          typeof prev !== "string" ||
          typeof hash !== "string" ||
          !HEX64.test(hash)
        ) {
          fail("PARSE_ERROR", offset, `line ${lineNo} is JSON but not a chained record`);
        }
        const n = seq as number;
        const at = { writer: writer as string, seq: n };
        // The record's own hash: the line's bytes when they are canonical, else through JCS.
        const h = hash as string;
        let ok = false;
        if (end - start > HASH_SUFFIX_LENGTH && text.endsWith(`,"hash":"${h}"}`)) {
          const digest = createHash("sha256")
            .update(DOMAIN)
            .update(buffer.subarray(start, end - HASH_SUFFIX_LENGTH))
            .update("}")
            .digest("hex");
          ok = digest === h;
        }
        if (!ok) {
          let actual: string | undefined;
          try {
            actual = recomputeHash(record);
          } catch {
            actual = undefined;
          }
          if (actual !== h) {
            fail(
              "RECORD_HASH_MISMATCH",
              offset,
              `record ${index} (line ${lineNo}) does not hash to its "hash": it was edited`,
              {
                ...at,
                expected: actual,
                actual: h,
              },
            );
          }
        }
        let segment = segments.get(at.writer);
        if (n === 0) {
          if (type !== "genesis" || prev !== GENESIS_PREV) {
            fail(
              "SEQ_GAP",
              offset,
              `record ${index} (line ${lineNo}) has seq 0 but is not a genesis`,
              at,
            );
          }
          if (segment)
            fail("SEQ_GAP", offset, `segment ${at.writer} starts twice (line ${lineNo})`, at);
          segment = { seq: 0, head: h, anchored: 0 };
          segments.set(at.writer, segment);
          const recovered = record.recovered as Partial<TornTail> | undefined;
          if (recovered) {
            const claimed = pending.findIndex(
              (p) =>
                p.offset === recovered.offset &&
                p.length === recovered.length &&
                p.sha256 === recovered.sha256,
            );
            if (claimed !== -1) {
              pending.splice(claimed, 1);
              report.healed++;
            }
          }
        } else {
          if (!segment) {
            fail(
              "SEQ_GAP",
              offset,
              `record ${index} (line ${lineNo}) continues segment ${at.writer}, whose genesis is missing`,
              {
                ...at,
                expected: 0,
                actual: n,
              },
            );
          }
          const s = segment as Segment;
          if (n !== s.seq + 1) {
            fail(
              "SEQ_GAP",
              offset,
              `record ${index} (line ${lineNo}) has seq ${n} where ${s.seq + 1} was expected: records were removed or reordered`,
              { ...at, expected: s.seq + 1, actual: n },
            );
          }
          if (prev !== s.head) {
            fail(
              "PREV_HASH_MISMATCH",
              offset,
              `record ${index} (line ${lineNo}) does not follow the previous record of its segment`,
              {
                ...at,
                expected: s.head,
                actual: prev as string,
              },
            );
          }
          s.seq = n;
          s.head = h;
        }
        if (type === "checkpoint") {
          report.checkpoints.inline++;
          if (record.size !== n || record.head !== prev) {
            fail(
              "CHECKPOINT_MISMATCH",
              offset,
              `checkpoint at line ${lineNo} does not match its position`,
              {
                ...at,
                expected: `${n} ${String(prev)}`,
                actual: `${String(record.size)} ${String(record.head)}`,
              },
            );
          }
          if (key !== undefined) {
            if (
              !macMatches(key, {
                writer: at.writer,
                size: n,
                head: prev as string,
                mac: record.mac as string,
              })
            ) {
              fail(
                "CHECKPOINT_MAC_INVALID",
                offset,
                `checkpoint at line ${lineNo} has ${record.mac === undefined ? "no" : "an invalid"} MAC: the chain was rewritten`,
                at,
              );
            }
            report.checkpoints.macs_verified++;
          } else if (record.mac !== undefined) report.checkpoints.macs_unverified++;
          (segment as Segment).anchored = n + 1;
        }
        const sizes = external.get(at.writer);
        const expectedHead = sizes?.get(n + 1);
        if (expectedHead !== undefined && expectedHead !== h) {
          fail(
            "CHECKPOINT_MISMATCH",
            offset,
            `record ${index} (line ${lineNo}) differs from the external checkpoint at size ${n + 1}: the chain was rewritten`,
            {
              ...at,
              expected: expectedHead,
              actual: h,
            },
          );
        }
        report.records++;
        report.head = h;
        index++;
      }
      // End of file: every external checkpoint must be reached. A checkpoint of a segment that
      // is not in the file belongs to this log if it names this log: its name, or the name the
      // checkpoints of this file's own segments give (the log may have been copied or renamed).
      const names = new Set([basename(path)]);
      for (const writer of segments.keys()) {
        const log = externalLogs.get(writer);
        if (log !== undefined) names.add(basename(log));
      }
      for (const [writer, sizes] of external) {
        const segment = segments.get(writer);
        const log = externalLogs.get(writer);
        if (!segment && log !== undefined && !names.has(basename(log))) continue; // another log's
        const newest = Math.max(...sizes.keys());
        const size = segment ? segment.seq + 1 : 0;
        if (size < newest) {
          bad = {
            reason: "TRUNCATED",
            index,
            line: lineNo + 1,
            byte_offset: -1,
            writer,
            expected: newest,
            actual: size,
            message: `segment ${writer} has ${size} records but a checkpoint covers ${newest}: the log was truncated`,
          };
          break;
        }
      }
    } catch (error) {
      if (!(error instanceof Stop)) throw error;
    }
  } catch (error) {
    report.status = "io_error";
    report.error = (error as Error).message;
    return report;
  }
  const unclaimed = pending[0];
  if (unclaimed && (bad === undefined || unclaimed.line < bad.line || bad.reason === "TRUNCATED")) {
    bad = {
      reason: "PARSE_ERROR",
      index: unclaimed.index,
      line: unclaimed.line,
      byte_offset: unclaimed.offset,
      message: `line ${unclaimed.line} is not valid JSON and no recovery record claims it as a torn tail`,
    };
  }
  report.segments = segments.size;
  for (const segment of segments.values())
    report.unanchored_records += segment.seq + 1 - segment.anchored;
  if (bad) {
    report.status = "tampered";
    report.first_bad = bad;
  } else if (report.torn_tail) {
    report.status = "torn_tail";
    report.first_bad = {
      reason: "TORN_TAIL",
      index,
      line: lineNo,
      byte_offset: report.torn_tail.offset,
      message: `the last line (${report.torn_tail.length} bytes) has no newline: a writer died mid-write; the next open heals it`,
    };
  }
  return report;
}

// The line format shared by the call log and the decision log (`salvo-log/v1`).
//
// Every line is one record: the RFC 8785 canonical JSON (JCS) of the record's body, with
// `"hash"` appended as the last member:
//
//   {<JCS(body) members>,"hash":"<64 hex>"}\n
//   hash = SHA-256("salvo-log/v1\n" || JCS(body))      (body = the record without `hash`)
//
// The body always holds `type`, `writer` (the segment id), `seq` (0, 1, 2, ... gap-free within
// the segment), `prev` (the previous record's hash in the segment; 64 zeros for seq 0) and `ts`.
// Because the stored body is already canonical, a verifier can hash the line's own bytes (fast
// path) and only re-canonicalizes when the bytes differ (a file re-serialized by another tool).
import { createHash, hash as oneShotHash } from "node:crypto";
import canonicalize from "canonicalize";
import { AuditRecordError } from "../errors.ts";

export const DOMAIN = "salvo-log/v1\n";
export const GENESIS_PREV = "0".repeat(64);
/** Body fields the chain sets; a caller's record may not use them. */
export const RESERVED_FIELDS: ReadonlySet<string> = new Set([
  "type",
  "writer",
  "seq",
  "prev",
  "ts",
  "hash",
]);
/** `,"hash":"` + 64 hex + `"}`: the fixed-size tail of every line. */
export const HASH_SUFFIX_LENGTH = 75;

/** The fields every chained record carries. */
export type ChainFields = {
  type: string;
  writer: string;
  seq: number;
  prev: string;
  ts: string;
};

const SURROGATE = /[\uD800-\uDFFF]/;
/** Characters JSON.stringify escapes (besides surrogates, which take the slow path). */
function needsEscape(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) return true;
  }
  return false;
}

function quote(text: string): string | undefined {
  if (SURROGATE.test(text)) return undefined;
  return needsEscape(text) ? JSON.stringify(text) : `"${text}"`;
}

/**
 * JCS for plain JSON data (objects, arrays, strings, finite numbers, booleans, null), the hot
 * path: same output as `canonicalize` (a property test holds them equal), about twice as fast.
 * Returns undefined for anything else (toJSON, undefined members, surrogates, non-finite
 * numbers, BigInt, cycles beyond depth 64), which then goes through `canonicalize`.
 */
function fastCanonical(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      // String(n) is ECMAScript Number::toString, as JSON.stringify and RFC 8785 use (-0 is "0").
      return Number.isFinite(value) ? String(value) : undefined;
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (depth > 64) return undefined;
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          const item = fastCanonical(value[i], depth + 1);
          if (item === undefined) return undefined;
          out += i === 0 ? item : `,${item}`;
        }
        return `${out}]`;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === "function") return undefined;
      const keys = Object.keys(value).sort();
      let out = "{";
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        const quoted = quote(key);
        const item = fastCanonical((value as Record<string, unknown>)[key], depth + 1);
        if (item === undefined || quoted === undefined) return undefined;
        out += `${i === 0 ? "" : ","}${quoted}:${item}`;
      }
      return `${out}}`;
    }
    default:
      return undefined;
  }
}

/** JCS of a value; an AuditRecordError for what RFC 8785 cannot represent. */
export function canonicalJson(value: unknown): string {
  const fast = fastCanonical(value, 0);
  if (fast !== undefined) return fast;
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (error) {
    throw new AuditRecordError(`the record is not canonical JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (text === undefined) throw new AuditRecordError("the record is not a JSON value");
  return text;
}

export function sha256Hex(...parts: Array<string | Uint8Array>): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
}

/** The hash of a body given as its canonical JSON. */
export function bodyHash(canonicalBody: string): string {
  return oneShotHash("sha256", DOMAIN + canonicalBody, "hex");
}

/** The line (with its `\n`) and hash of a body. */
export function encodeRecord(body: Readonly<Record<string, unknown>>): {
  line: string;
  hash: string;
} {
  const canonical = canonicalJson(body);
  const hash = bodyHash(canonical);
  return { line: `${canonical.slice(0, -1)},"hash":"${hash}"}\n`, hash };
}

/** The hash a parsed record should have, recomputed through JCS (the slow, general path). */
export function recomputeHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _hash, ...body } = record;
  return bodyHash(canonicalJson(body));
}

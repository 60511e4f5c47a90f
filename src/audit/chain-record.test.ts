import canonicalize from "canonicalize";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AuditRecordError } from "../errors.ts";
import { canonicalJson, encodeRecord, HASH_SUFFIX_LENGTH, recomputeHash } from "./chain-record.ts";

describe("chain records", () => {
  it("canonical JSON equals the canonicalize package (RFC 8785) on any JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(canonicalize(value));
      }),
      { numRuns: 500 },
    );
    const tricky = {
      b: [1, -0, 1e21, 0.1],
      a: { "\u00e9": "x", e: 1, "10": 2, "9": 3, 'q"\n': "\u0001" },
      d: new Date(0),
      u: undefined,
    };
    expect(canonicalJson(tricky)).toBe(canonicalize(tricky));
  });

  it("refuses what RFC 8785 cannot represent", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 10n, "\uD800"]) {
      expect(() => canonicalJson({ x: bad })).toThrow(AuditRecordError);
    }
  });

  it("stores the canonical body with the hash as its last member", () => {
    const { line, hash } = encodeRecord({ z: 1, a: "x" });
    expect(line).toBe(`{"a":"x","z":1,"hash":"${hash}"}\n`);
    expect(line.length - 1 - `{"a":"x","z":1`.length).toBe(HASH_SUFFIX_LENGTH);
    expect(recomputeHash(JSON.parse(line))).toBe(hash);
  });
});

import { describe, expect, it } from "vitest";
import { callContext, callerDeadlineMs } from "./call-context.ts";

describe("callContext", () => {
  it("reads the header's pairs over the body's metadata, percent-decoded", () => {
    const result = callContext("claim_id=C1, call_purpose=coverage%20check", {
      claim_id: "C0",
      item_id: "I7",
      nested: { ignored: true },
    });
    expect(result).toEqual({
      ok: true,
      fields: { claim_id: "C1", item_id: "I7", call_purpose: "coverage check" },
    });
  });

  it("refuses malformed pairs, bad names, reserved names and long values, naming the problem", () => {
    expect(callContext("claim_id", undefined)).toMatchObject({ ok: false, problem: /name=value/ });
    expect(callContext("bad name=1", undefined)).toMatchObject({
      ok: false,
      problem: /field name/,
    });
    expect(callContext("tenant=other", undefined)).toMatchObject({
      ok: false,
      problem: /tenant is set by the gateway/,
    });
    expect(callContext(`a=${"x".repeat(600)}`, undefined)).toMatchObject({
      ok: false,
      problem: /512/,
    });
    expect(callContext("a=%E0%A4%A", undefined)).toMatchObject({ ok: false, problem: /percent/ });
    expect(callContext(null, ["not", "an", "object"])).toMatchObject({
      ok: false,
      problem: /metadata/,
    });
  });

  it("no header and no metadata is an empty context", () => {
    expect(callContext(null, undefined)).toEqual({ ok: true, fields: {} });
  });
});

describe("callerDeadlineMs", () => {
  it("takes x-salvo-deadline-ms, else the SDK's x-stainless-timeout in seconds", () => {
    expect(
      callerDeadlineMs(
        new Headers({ "x-salvo-deadline-ms": "2500", "x-stainless-timeout": "600" }),
      ),
    ).toBe(2500);
    expect(callerDeadlineMs(new Headers({ "x-stainless-timeout": "30" }))).toBe(30_000);
    expect(callerDeadlineMs(new Headers({ "x-salvo-deadline-ms": "soon" }))).toBeUndefined();
    expect(callerDeadlineMs(new Headers())).toBeUndefined();
  });
});

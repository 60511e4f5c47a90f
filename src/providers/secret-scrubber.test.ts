import { describe, expect, it } from "vitest";
import {
  REDACTED,
  redactRegistered,
  registeredSecrets,
  registerSecret,
  SecretScrubber,
} from "./secret-scrubber.ts";

const KEY = "sk-test-scrubber-0123456789abcdef";
const scrubber = new SecretScrubber([KEY, undefined, null, "short"]);

describe("SecretScrubber", () => {
  it("replaces the key in text; ignores strings too short to be keys", () => {
    expect(scrubber.text(`Bearer ${KEY}, again ${KEY}`)).toBe(
      `Bearer ${REDACTED}, again ${REDACTED}`,
    );
    expect(scrubber.text("short and sweet")).toBe("short and sweet");
    expect(new SecretScrubber(["short"], 1).text("short")).toBe(REDACTED);
    expect(new SecretScrubber([]).active).toBe(false);
  });

  it("returns a clean value itself, and copies only a value that holds the key (any depth)", () => {
    const clean = { choices: [{ message: { content: "hi" } }] };
    expect(scrubber.value(clean)).toBe(clean);
    let deep: unknown = { [`k ${KEY}`]: [`echo ${KEY}`, 1, null, true] };
    for (let i = 0; i < 50_000; i++) deep = [deep];
    const out = scrubber.value(deep);
    let inner: unknown = out;
    for (let i = 0; i < 50_000; i++) inner = (inner as unknown[])[0];
    expect(inner).toEqual({ [`k ${REDACTED}`]: [`echo ${REDACTED}`, 1, null, true] });
    let original: unknown = deep;
    for (let i = 0; i < 50_000; i++) original = (original as unknown[])[0];
    expect(original).toEqual({ [`k ${KEY}`]: [`echo ${KEY}`, 1, null, true] }); // unchanged
  });

  it("scrubs headers, and errors in place with their cause chain", () => {
    const headers = new Headers({ "x-request-id": `req_1 Bearer ${KEY}`, other: "fine" });
    const clean = scrubber.headers(headers);
    expect(clean.get("x-request-id")).toBe(`req_1 Bearer ${REDACTED}`);
    expect(clean.get("other")).toBe("fine");
    expect(scrubber.headers({ a: KEY })).toEqual({ a: REDACTED });
    const cause = Object.assign(new Error(`401 Incorrect API key provided: ${KEY}`), {
      error: { error: { message: `key ${KEY}` } },
      headers,
    });
    const error = new Error("wrapped", { cause });
    expect(scrubber.error(error)).toBe(error);
    expect(JSON.stringify({ m: cause.message, s: cause.stack, e: cause.error })).not.toContain(KEY);
    expect(cause.headers.get("x-request-id")).not.toContain(KEY);
  });
});

describe("the process-wide registry (the audit log masks every provider's key)", () => {
  it("registers keys once, and redacts them from any text", () => {
    const key = "sk-registered-abcdefgh-42";
    registerSecret(key);
    registerSecret(key);
    registerSecret("tiny");
    registerSecret(undefined);
    expect(registeredSecrets().filter((s) => s === key)).toHaveLength(1);
    expect(registeredSecrets()).not.toContain("tiny");
    expect(redactRegistered(`x ${key} y`)).toBe(`x ${REDACTED} y`);
  });
});

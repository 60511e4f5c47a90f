import { describe, expect, it } from "vitest";
import { Emitter } from "./emitter.ts";

describe("Emitter", () => {
  it("isolates a throwing listener: others still run, the error is reported", () => {
    const reported: unknown[] = [];
    const emitter = new Emitter<{ tick: number }>((error) => reported.push(error));
    const seen: number[] = [];
    emitter.on("tick", () => {
      throw new Error("boom");
    });
    const off = emitter.on("tick", (n) => seen.push(n));
    expect(() => emitter.emit("tick", 1)).not.toThrow();
    off();
    emitter.emit("tick", 2);
    expect(seen).toEqual([1]);
    expect(reported).toHaveLength(2);
    expect(emitter.has("tick")).toBe(true);
  });
});

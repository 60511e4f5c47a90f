import { describe, expect, it } from "vitest";
import { currentContext, withContext } from "./audit-context.ts";

describe("withContext", () => {
  it("merges nested contexts (inner wins) and restores the outer one", async () => {
    expect(currentContext()).toEqual({});
    await withContext({ claim_id: "C1", step: "a" }, async () => {
      await withContext({ doc_id: "D1", step: "b" }, async () => {
        await new Promise((r) => setTimeout(r, 1));
        expect(currentContext()).toEqual({ claim_id: "C1", doc_id: "D1", step: "b" });
      });
      expect(currentContext()).toEqual({ claim_id: "C1", step: "a" });
    });
  });

  it("keeps concurrent callers apart across awaits", async () => {
    const seen = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        withContext({ claim_id: i }, async () => {
          await new Promise((r) => setTimeout(r, Math.random() * 5));
          return currentContext().claim_id;
        }),
      ),
    );
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("hands out frozen contexts", () => {
    withContext({ a: 1 }, () => expect(Object.isFrozen(currentContext())).toBe(true));
  });
});

import { describe, expect, it } from "vitest";
import { checkOpenAIBatchLine } from "./openai-batch-line.ts";

const ENDPOINT = "/v1/chat/completions";
const good = (id: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: ENDPOINT, body: { model: "m" } });

describe("checkOpenAIBatchLine", () => {
  it("takes a well-formed line and remembers its custom_id", () => {
    const seen = new Set<string>();
    expect(checkOpenAIBatchLine(good("a"), 1, ENDPOINT, seen)).toEqual({
      ok: true,
      customId: "a",
      body: { model: "m" },
    });
    expect(seen.has("a")).toBe(true);
  });

  it.each([
    ["not json", "invalid_json_line", null],
    ["[1]", "invalid_json_line", null],
    [
      JSON.stringify({ method: "POST", url: ENDPOINT, body: {} }),
      "missing_required_parameter",
      "custom_id",
    ],
    [good("dup"), "duplicate_custom_id", "custom_id"],
    [
      JSON.stringify({ custom_id: "x", method: "GET", url: ENDPOINT, body: {} }),
      "invalid_method",
      "method",
    ],
    [
      JSON.stringify({ custom_id: "y", method: "POST", url: "/v1/embeddings", body: {} }),
      "url_mismatch",
      "url",
    ],
    [
      JSON.stringify({ custom_id: "z", method: "POST", url: ENDPOINT, body: [] }),
      "missing_required_parameter",
      "body",
    ],
  ])("refuses %s as the Batch API does: %s", (source, code, param) => {
    const seen = new Set(["dup"]);
    const checked = checkOpenAIBatchLine(source, 7, ENDPOINT, seen);
    expect(checked).toMatchObject({ ok: false, error: { code, param, line: 7 } });
  });
});

import { describe, expect, it } from "vitest";
import { type BatchCandidate, packBatches } from "./batch-packing.ts";

const client = { limits: { maxRequests: 3, maxBytes: 100 }, framing: { fixed: 0, perLine: 1 } };

function candidate(index: number, bytes: number, model = "m"): BatchCandidate {
  return {
    index,
    group: { key: `/v1/chat/completions ${model}`, endpoint: "/v1/chat/completions", model },
    bytes,
    estimate: { inputTokens: 1, outputTokens: 1 },
    model,
  };
}

describe("packBatches", () => {
  it("cuts at the request limit and the byte limit (framing counted), in input order", () => {
    const packed = packBatches(
      [candidate(0, 10), candidate(1, 10), candidate(2, 10), candidate(3, 60), candidate(4, 38)],
      { client },
    );
    expect(packed.batches.map((b) => [b.record.key, b.record.items, b.record.bytes])).toEqual([
      ["c1", [[0, 2]], 33],
      // 60 + 38 + 2 newlines = 100 bytes: exactly the limit.
      ["c2", [[3, 4]], 100],
    ]);
    expect(packed.tooLarge).toEqual([]);
  });

  it("one group per batch; --batch-size below the provider's limit; an item too big for any batch", () => {
    const packed = packBatches(
      [candidate(0, 5, "a"), candidate(1, 5, "b"), candidate(2, 5, "a"), candidate(3, 100, "a")],
      { client, batchSize: 1, firstKey: 4 },
    );
    expect(packed.batches.map((b) => [b.record.key, b.record.group.model, b.record.items])).toEqual(
      [
        ["c4", "a", [[0, 0]]],
        ["c5", "b", [[1, 1]]],
        ["c6", "a", [[2, 2]]],
      ],
    );
    expect(packed.tooLarge.map((c) => c.index)).toEqual([3]);
  });
});

// Packs the items bound for a provider's batch API into batches: one group each (OpenAI: one
// endpoint and model per batch), in input order, each within the provider's limits on requests
// and bytes (and `--batch-size`). An item bigger than a whole batch may hold goes in none.
import type { CostEstimate } from "../providers/provider.ts";
import type { ChunkRecord } from "./batch-state.ts";
import { toRanges } from "./batch-state.ts";
import { type BatchGroup, batchBytes, type ProviderBatchClient } from "./provider-batch-client.ts";

/** An item to place in a batch. */
export type BatchCandidate = {
  index: number;
  group: BatchGroup;
  /** Its encoded line's bytes. */
  bytes: number;
  estimate: CostEstimate;
  model: string | undefined;
};

export type PackOptions = {
  client: Pick<ProviderBatchClient, "limits" | "framing">;
  /** Most requests per batch below the provider's limit. */
  batchSize?: number | undefined;
  /** The number of the first batch's key (`c<n>`). @default 1 */
  firstKey?: number | undefined;
};

export type Packed = {
  batches: Array<{ record: ChunkRecord; candidates: BatchCandidate[] }>;
  /** Items no batch can hold (bigger than the byte limit alone). */
  tooLarge: BatchCandidate[];
};

export function packBatches(candidates: readonly BatchCandidate[], options: PackOptions): Packed {
  const { client } = options;
  const maxRequests = Math.min(client.limits.maxRequests, options.batchSize ?? Infinity);
  const maxBytes = client.limits.maxBytes;
  const open = new Map<string, { candidates: BatchCandidate[]; bytes: number }>();
  const packed: Packed = { batches: [], tooLarge: [] };
  let next = options.firstKey ?? 1;
  const close = (key: string) => {
    const chunk = open.get(key);
    open.delete(key);
    if (chunk === undefined || chunk.candidates.length === 0) return;
    const { endpoint, model } = chunk.candidates[0]!.group;
    packed.batches.push({
      record: {
        key: `c${next++}`,
        group: { key, endpoint, model },
        items: toRanges(chunk.candidates.map((c) => c.index)),
        requests: chunk.candidates.length,
        bytes: batchBytes(client, chunk.candidates.length, chunk.bytes),
        phase: "uploaded",
      },
      candidates: chunk.candidates,
    });
  };
  for (const c of candidates) {
    if (batchBytes(client, 1, c.bytes) > maxBytes) {
      packed.tooLarge.push(c);
      continue;
    }
    const key = c.group.key;
    let chunk = open.get(key);
    if (
      chunk !== undefined &&
      (chunk.candidates.length + 1 > maxRequests ||
        batchBytes(client, chunk.candidates.length + 1, chunk.bytes + c.bytes) > maxBytes)
    ) {
      close(key);
      chunk = undefined;
    }
    if (chunk === undefined) {
      chunk = { candidates: [], bytes: 0 };
      open.set(key, chunk);
    }
    chunk.candidates.push(c);
    chunk.bytes += c.bytes;
  }
  for (const key of [...open.keys()]) close(key);
  return packed;
}

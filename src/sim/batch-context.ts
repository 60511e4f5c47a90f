// What the two providers' batch endpoints share inside the simulator: its settings and clocks,
// the file store, the batches, the counters, and the step every batch goes through when it ends
// (each request answered, expired or cancelled, once, in the order it finished).

import { randomBytes } from "node:crypto";
import { answerOf } from "./batch-answers.ts";
import type { BatchStats, SimBatch } from "./batch-store.ts";
import type { BatchOutcome } from "./batch-timeline.ts";
import type { FileStore } from "./openai-files.ts";
import type { SimConfig } from "./sim-config.ts";

export type BatchContext = {
  readonly config: SimConfig;
  /** Monotonic ms (the simulator's clock). */
  now(): number;
  /** Epoch ms. */
  wallNow(): number;
  /** The simulator's origin, e.g. `http://127.0.0.1:PORT` (Anthropic's `results_url`). */
  origin(): string;
  readonly files: FileStore;
  /** Every batch of both providers, by id, in creation order. */
  readonly batches: Map<string, SimBatch>;
  readonly stats: BatchStats;
  /** A new number per batch: spreads each batch's processing order differently. */
  nextSalt(): number;
};

/** How one request of an ended batch came out. */
export type RequestResult =
  | { kind: "answered"; status: number; body: unknown; requestId: string }
  | { kind: "expired" | "cancelled" };

/** `n` random bytes as hex. */
export function hexId(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

/**
 * Each request of an ended batch, in the order they finished (requests never processed last, in
 * input order), with its result; counts them once into the stats and returns the batch's counts.
 */
export function endBatch(
  context: BatchContext,
  batch: SimBatch,
  outcome: BatchOutcome,
  endAt: number,
  write: (index: number, result: RequestResult) => void,
): NonNullable<SimBatch["ended"]>["counts"] & { usage: { prompt: number; output: number } } {
  const { timeline } = batch;
  const counts = { succeeded: 0, errored: 0, expired: 0, cancelled: 0 };
  const usage = { prompt: 0, output: 0 };
  if (outcome === "failed") return { ...counts, usage };
  const processed: number[] = [];
  const rest: number[] = [];
  batch.requests.forEach((_, i) => {
    (timeline.processedAt(i, endAt) ? processed : rest).push(i);
  });
  processed.sort((a, b) => timeline.doneMs(a) - timeline.doneMs(b) || a - b);
  for (const i of processed) {
    const judged = batch.requests[i]!.judged;
    const requestId = `req_${hexId(16)}`;
    const answer = answerOf(batch.wire, judged, context.config, {
      answerId: `${batch.wire.idPrefix}simb${hexId(8)}`,
      requestId,
    });
    if (judged.ok) {
      counts.succeeded += 1;
      usage.prompt += judged.promptTokens;
      usage.output += judged.outputTokens;
    } else counts.errored += 1;
    write(i, { kind: "answered", status: answer.status, body: answer.body, requestId });
  }
  const kind = outcome === "cancelled" ? "cancelled" : "expired";
  for (const i of rest) {
    counts[kind] += 1;
    write(i, { kind });
  }
  const stats = context.stats;
  stats.succeeded += counts.succeeded;
  stats.errored += counts.errored;
  stats.expired += counts.expired;
  stats.cancelled += counts.cancelled;
  stats.tokens.prompt += usage.prompt;
  stats.tokens.output += usage.output;
  return { ...counts, usage };
}

// The simulated batches of both providers: what each holds (its requests, judged when created,
// and its schedule), when it ended and what it produced, and the counts the simulator's stats
// report. The providers' endpoints (openai-batches.ts, anthropic-batches.ts) read and write it.

import type { JudgedRequest } from "./batch-answers.ts";
import type { BatchTimeline } from "./batch-timeline.ts";
import type { Wire } from "./wire.ts";

/** What the simulator counts of its batch APIs (part of `SimStats`). */
export type BatchStats = {
  /** Batches created: each is one submission. */
  submitted: { openai: number; anthropic: number };
  /** Requests in the batches created. */
  requests: number;
  /** Requests of ended batches, by how they ended: answered (2xx), errored, expired, cancelled. */
  succeeded: number;
  errored: number;
  expired: number;
  cancelled: number;
  /** Tokens of the answered requests (what a provider bills at its batch price). */
  tokens: { prompt: number; output: number };
  /** Cancellations asked for. */
  cancels: number;
  /** Files uploaded through `POST /v1/files`. */
  filesUploaded: number;
};

export function emptyBatchStats(): BatchStats {
  return {
    submitted: { openai: 0, anthropic: 0 },
    requests: 0,
    succeeded: 0,
    errored: 0,
    expired: 0,
    cancelled: 0,
    tokens: { prompt: 0, output: 0 },
    cancels: 0,
    filesUploaded: 0,
  };
}

/** One request of a batch. */
export type BatchRequestEntry = { customId: string; judged: JudgedRequest };

/** A simulated batch, of either provider. */
export type SimBatch = {
  provider: "openai" | "anthropic";
  id: string;
  owner: string;
  /** Wall-clock creation time, epoch ms (the timeline's `createdMs` on the monotonic clock). */
  createdWallMs: number;
  timeline: BatchTimeline;
  /** In input order. */
  requests: BatchRequestEntry[];
  /** The endpoint's wire (answers and errors). */
  wire: Wire;
  /** OpenAI only. */
  openai?: {
    endpoint: string;
    inputFileId: string;
    metadata: Record<string, string> | null;
    model: string | null;
    /** Validation errors: the batch fails when validation ends. */
    errors: Array<{ code: string; message: string; param: string | null; line: number | null }>;
  };
  /** Set once the batch has ended and its results are written. */
  ended?: {
    /** OpenAI: the output file (2xx lines) and error file (the rest); null when empty. */
    outputFileId: string | null;
    errorFileId: string | null;
    /** Anthropic: the results JSONL. */
    results: Buffer | null;
    counts: { succeeded: number; errored: number; expired: number; cancelled: number };
    usage: { prompt: number; output: number };
  };
};

/** Wall-clock epoch ms of monotonic time `t` in a batch's life. */
export function wallAt(batch: SimBatch, t: number): number {
  return batch.createdWallMs + (t - batch.timeline.createdMs);
}

// The simulator's own account of what it did: counters, peaks and a bounded per-request timeline,
// so tests and benchmarks can check limits and faults with exact counts.

import type { BatchStats } from "./batch-store.ts";
import { FAULT_KINDS, type FaultKind } from "./fault-picker.ts";
import type { ChargedTotals } from "./rate-limiter.ts";
import type { Endpoint } from "./wire.ts";

/** One request as the simulator saw it. Times are ms since the simulator started (or was reset). */
export type TimelineEntry = {
  /** Sequence number, from 1, in arrival order. */
  id: number;
  /** The provider's pool it was served by. */
  path: "openai" | "anthropic";
  /** The API endpoint it was sent to. */
  endpoint: Endpoint;
  arrivalMs: number;
  /** When it got a slot; `null` if it never did (refused, or left while queued). */
  startMs: number | null;
  endMs: number;
  /**
   * The HTTP status sent. `0`: no answer by the simulator's choice (connection reset, or a hang
   * cut by `close()`); `499`: the client went away before the answer ended.
   */
  status: number;
  /** The injected fault, if any (a refused request keeps none). */
  fault: FaultKind | null;
  stream: boolean;
  promptTokens: number;
  /** Output tokens of the answer (0 when none was produced, and always for embeddings). */
  outputTokens: number;
  /** The marker the answer starts with (`expectedMarker` of the prompt); `null` for bad bodies. */
  marker: string | null;
};

/** Why a request was turned away before service. */
export type RefusalCounts = {
  /** 400: the body was not a valid request. */
  badRequest: number;
  /** The quota mode's 429 (OpenAI) or 400 (Anthropic). */
  quota: number;
  /** 429 from RPM/TPM/ITPM/OTPM. */
  rateLimited: number;
  /** Bigger than a whole per-minute limit: OpenAI 429, Anthropic 413. */
  tooLarge: number;
  /** The queue was full: 503 (OpenAI) or 529 (Anthropic). */
  queueFull: number;
};

export type SimStats = {
  /** Milliseconds since the simulator started or was last reset. */
  uptimeMs: number;
  /** Requests received on the API endpoints (chat completions, responses, embeddings, messages). */
  arrivals: number;
  /** Well-formed, complete 200 answers. */
  completions: number;
  /** Requests that ended, however they ended. */
  ended: number;
  /** Requests in service now. */
  inService: number;
  /** Requests waiting for a slot now. */
  queued: number;
  /** The most requests in service at once. */
  maxInService: number;
  /** The most requests in the server (in service + queued) at once. */
  maxInServer: number;
  /** Ended requests by HTTP status (`"0"`: no answer; `"499"`: client went away). */
  byStatus: Record<string, number>;
  /** Requests by injected fault. */
  byFault: Record<FaultKind, number>;
  refusals: RefusalCounts;
  tokens: {
    /** Prompt tokens of admitted requests. */
    prompt: number;
    /** Output tokens of answers produced. */
    output: number;
    /** What was charged to each bucket (summed over pools). */
    charged: ChargedTotals;
  };
  /** The first `timelineLimit` requests to end, in the order they ended. */
  timeline: TimelineEntry[];
  /** Requests that ended after the timeline was full. */
  timelineDropped: number;
  /** The batch APIs: batches submitted, their requests by outcome, files uploaded. */
  batch: BatchStats;
};

/** Mutable counters behind `SimStats`. */
export class StatsRecorder {
  arrivals = 0;
  completions = 0;
  ended = 0;
  inService = 0;
  inServer = 0;
  maxInService = 0;
  maxInServer = 0;
  promptTokens = 0;
  outputTokens = 0;
  byStatus = new Map<number, number>();
  byFault = new Map<FaultKind, number>();
  refusals: RefusalCounts = { badRequest: 0, quota: 0, rateLimited: 0, tooLarge: 0, queueFull: 0 };
  timeline: TimelineEntry[] = [];
  timelineDropped = 0;
  readonly #timelineLimit: number;

  constructor(timelineLimit: number) {
    this.#timelineLimit = timelineLimit;
  }

  enterServer(): void {
    this.inServer++;
    if (this.inServer > this.maxInServer) this.maxInServer = this.inServer;
  }

  enterService(): void {
    this.inService++;
    if (this.inService > this.maxInService) this.maxInService = this.inService;
  }

  fault(kind: FaultKind): void {
    this.byFault.set(kind, (this.byFault.get(kind) ?? 0) + 1);
  }

  end(entry: TimelineEntry): void {
    this.ended++;
    this.byStatus.set(entry.status, (this.byStatus.get(entry.status) ?? 0) + 1);
    if (this.timeline.length < this.#timelineLimit) this.timeline.push(entry);
    else this.timelineDropped++;
  }

  /** Zeroes everything except what is in the server now. */
  reset(): void {
    this.arrivals = 0;
    this.completions = 0;
    this.ended = 0;
    this.maxInService = this.inService;
    this.maxInServer = this.inServer;
    this.promptTokens = 0;
    this.outputTokens = 0;
    this.byStatus.clear();
    this.byFault.clear();
    this.refusals = { badRequest: 0, quota: 0, rateLimited: 0, tooLarge: 0, queueFull: 0 };
    this.timeline = [];
    this.timelineDropped = 0;
  }

  snapshot(
    uptimeMs: number,
    queued: number,
    charged: ChargedTotals,
    timeline: boolean,
  ): Omit<SimStats, "batch"> {
    const byFault = Object.fromEntries(
      FAULT_KINDS.map((k) => [k, this.byFault.get(k) ?? 0]),
    ) as Record<FaultKind, number>;
    const byStatus: Record<string, number> = {};
    for (const [status, n] of [...this.byStatus].sort((a, b) => a[0] - b[0])) byStatus[status] = n;
    return {
      uptimeMs,
      arrivals: this.arrivals,
      completions: this.completions,
      ended: this.ended,
      inService: this.inService,
      queued,
      maxInService: this.maxInService,
      maxInServer: this.maxInServer,
      byStatus,
      byFault,
      refusals: { ...this.refusals },
      tokens: { prompt: this.promptTokens, output: this.outputTokens, charged },
      timeline: timeline ? this.timeline.slice() : [],
      timelineDropped: this.timelineDropped,
    };
  }
}

// The batch backend's vocabulary: which backend, what it tells its listener, its options and
// its report (`salvo run --backend batch|auto`; see batch-backend.ts).
import type { Clock } from "../core/clock.ts";
import type { Budget } from "../cost/budget.ts";
import type { Pricing } from "../cost/pricing.ts";
import type { BatchApiError } from "../errors.ts";
import type { CostEstimate, ProviderRequest } from "../providers/provider.ts";
import type { Plan, RealtimeModel } from "./backend-plan.ts";
import type { ChunkRecord } from "./batch-state.ts";
import type { ProviderBatchClient } from "./provider-batch-client.ts";

/** Where the run's items go: real time only, the provider's batch API, or chosen by the deadline. */
export type Backend = "realtime" | "batch" | "auto";

/** What the backend tells its listener. */
export type BackendEvent =
  /** The placement of the items that were not yet in a batch. */
  | { type: "backend-plan"; backend: "batch" | "auto"; plan: Plan }
  | { type: "batch-submitted"; batchId: string; requests: number }
  | { type: "batch-reattached"; batchId: string; requests: number }
  | { type: "batch-status"; batchId: string; status: string; done: number; total: number }
  | {
      type: "batch-ended";
      batchId: string;
      outcome: string;
      answered: number;
      errored: number;
      notRun: number;
    }
  /** Salvo asked the provider to cancel a batch: the run deadline needs its items in real time. */
  | { type: "batch-cancelled"; batchId: string; reason: string }
  /** A cancelled batch did not end in time: its items run in real time, its results are ignored. */
  | { type: "batch-abandoned"; batchId: string; requests: number }
  | { type: "warning"; message: string };

export type BatchBackendOptions = {
  backend: "batch" | "auto";
  input: string;
  output: string;
  defaultModel: string | undefined;
  /** The run key the batch driver journals (`batchRunKey`). */
  runKey: unknown;
  fresh: boolean;
  strict: boolean;
  /** The batch driver's `retryFailed`: failed lines of an earlier run are run again. */
  retryFailed: boolean;
  client: ProviderBatchClient;
  /** The provider's token estimate of a request (input, and `max_tokens` as output). */
  estimate: (request: ProviderRequest) => CostEstimate;
  pricing: Pricing;
  budget: Budget | undefined;
  /** What real time can do (limits and call latency), without the per-item token figures. */
  realtime: Omit<RealtimeModel, "inputTokensPerItem" | "outputTokensPerItem">;
  /** The batch API's expected turnaround for a batch of n requests, ms, and where it comes from. */
  turnaround: { ms: (requests: number) => number; source: string };
  /** The run deadline: epoch ms, or a duration (ms) from the run's first start. */
  runDeadline: { at: number } | { afterMs: number } | undefined;
  /** Most requests per batch, below the provider's limit. */
  batchSize: number | undefined;
  /** Poll intervals, ms: the first, and the most (backoff between). */
  poll: { minMs: number; maxMs: number };
  clock: Clock;
  /** Epoch ms. */
  wallNow: () => number;
  /** Stops submitting and polling (an interrupt); a rerun re-attaches. */
  signal: AbortSignal | undefined;
  emit: (event: BackendEvent) => void;
  /** A batch API failure that retrying does not fix: the run must stop. */
  onFatal: (error: BatchApiError) => void;
  /**
   * Whether the response cache holds the request's answer: such items are not sent to a batch
   * (the cache answers them for nothing). @default none is cached
   */
  cached?: ((request: ProviderRequest) => Promise<boolean>) | undefined;
};

/** What the backend did, for the summary and the report. */
export type BackendReport = {
  backend: "batch" | "auto";
  /** The placement of the items this run placed; undefined when all were placed before. */
  plan: Plan | undefined;
  /** The run deadline, ISO 8601; null: none. */
  deadline: string | null;
  batches: Array<{
    id: string | null;
    requests: number;
    phase: ChunkRecord["phase"];
    outcome: string | null;
    reattached: boolean;
  }>;
  /** Batches this run submitted, and those a crash left that it re-attached to. */
  submitted: number;
  reattached: number;
  /** Lines the batch API answered (written by this run), at the batch price. */
  answered: number;
  /** Lines it errored or never ran, run in real time instead, and those that could not be. */
  fellBack: number;
  notRun: number;
  /** Lines the budget kept out of a batch (`SALVO_BUDGET_EXCEEDED`, run by a rerun). */
  overBudget: number;
  /** What the answered lines cost at the batch price, USD, and what they would have in real time. */
  costUsd: number;
  realtimeCostUsd: number;
};

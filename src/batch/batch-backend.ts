// The providers' batch APIs as a backend of `salvo run` (`--backend batch|auto`): the items go to
// the provider's batch API at half the price, split at its size limits; the batches are polled
// with backoff, their results downloaded and handed to the batch driver, which writes the usual
// ordered output (one line per input line, the same shape as real-time lines, plus `batch_id`).
// A line that errors or expires in a batch runs in real time while the run deadline allows.
//
// Crash safety: every step is in the state file (`<output>.batches.json`, replaced atomically)
// before the next begins, and results reach the results file (`<output>.batches.jsonl`, fsynced)
// before their batch is marked downloaded. A rerun re-attaches to the batches already submitted
// (one whose create call was in flight at the crash is looked up at the provider first), never
// submits an item twice, and never downloads twice. The run deadline is fixed in the state file
// when the run first starts.
//
// Runs beside the batch driver: `open` plans, `submit` sends the new batches, `start` polls in the
// background, and the driver's `execute` asks `decide` for each item: the batch's answer, a final
// error, or "run it in real time".
import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.ts";
import { classifyFailure } from "../core/retry/classify-failure.ts";
import type { Budget, Reservation, Spend } from "../cost/budget.ts";
import { BATCH_PRICE_FACTOR, modelOf, type Pricing } from "../cost/pricing.ts";
import {
  AbortedError,
  BatchApiError,
  BatchLineNotRunError,
  InputRejectedError,
  ProviderError,
} from "../errors.ts";
import { formatDuration as formatMs } from "../progress/format.ts";
import { usageFromAnthropic } from "../providers/anthropic-provider.ts";
import { errorFromResponse } from "../providers/classify.ts";
import { usageFromOpenAI } from "../providers/openai-provider.ts";
import type { CostEstimate, ProviderRequest, TokenUsage } from "../providers/provider.ts";
import {
  BATCH_PLAN_FACTOR,
  type Plan,
  planAuto,
  REALTIME_PLAN_FACTOR,
  type RealtimeModel,
  realtimeBoundMs,
} from "./backend-plan.ts";
import { ResultSpool, type SpooledResult } from "./batch-results.ts";
import {
  type BatchState,
  type ChunkRecord,
  fromRanges,
  loadBatchState,
  readBatchState,
  removeBatchFiles,
  resultsPath,
  saveBatchState,
  statePath,
  toRanges,
} from "./batch-state.ts";
import { type BatchItem, isInvalid } from "./input-line.ts";
import { readInput, scanInput } from "./input-reader.ts";
import type { JournalHeader } from "./journal.ts";
import { type ItemOutcome, itemError } from "./output-line.ts";
import { type BatchGroup, batchBytes, type ProviderBatchClient } from "./provider-batch-client.ts";
import { prepareResume } from "./resume.ts";
import { journalHeader } from "./run-batch.ts";

/** Where the run's items go: real time only, the provider's batch API, or chosen by the deadline. */
export type Backend = "realtime" | "batch" | "auto";

/** What the backend tells its listener. */
export type BackendEvent =
  /** The placement of the items that were not yet in a batch. */
  | { type: "backend-plan"; backend: "batch" | "auto"; plan: Plan }
  | { type: "batch-submitted"; batchId: string; requests: number }
  | { type: "batch-reattached"; batchId: string; requests: number; status: string }
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
};

/** What to do with an item (`BatchBackend.decide`). */
export type Decision =
  /** The batch answered it: write this. */
  | {
      kind: "batch";
      outcome: ItemOutcome;
      usage: TokenUsage | undefined;
      costUsd: number | undefined;
    }
  /** It ends here without a call (over budget, not run and no time left, a non-retryable error). */
  | { kind: "final"; outcome: ItemOutcome }
  /** Run it in real time, within `deadlineMs` of now when the run deadline bounds it. */
  | { kind: "realtime"; deadlineMs: number | undefined; fallback: boolean };

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

/** One batch of this run, with what waits for it. */
type Chunk = {
  record: ChunkRecord;
  /** Items whose results are not yet downloaded. */
  items: number;
  settled: Promise<void>;
  settle: () => void;
  reservation: Reservation | undefined;
  reattached: boolean;
  /** When it should be polled next, clock ms. */
  nextPollAt: number;
  /** The last status seen, for events. */
  lastStatus: string | undefined;
};

/** An item to place. */
type Candidate = {
  index: number;
  group: BatchGroup;
  bytes: number;
  estimate: CostEstimate;
  model: string | undefined;
};

const NOT_RUN_LABEL = {
  expired: "expired",
  cancelled: "cancelled",
  failed: "failed",
  missing: "failed",
} as const;

export class BatchBackend {
  readonly #o: BatchBackendOptions;
  #state: BatchState | undefined;
  #spool: ResultSpool | undefined;
  readonly #chunks: Chunk[] = [];
  readonly #chunkOf = new Map<number, Chunk>();
  /** Items planned for a new batch, by chunk, before submission. */
  #pending: Array<{ record: ChunkRecord; candidates: Candidate[] }> = [];
  readonly #overBudget = new Set<number>();
  /** Items of abandoned batches and batches' failures: they run in real time. */
  #plan: Plan | undefined;
  #deadlineAt: number | undefined;
  /** When the run first started, epoch ms (this run, or the earlier one it resumes). */
  #startedAt = 0;
  #header: JournalHeader | undefined;
  /** A batch API failure stopped the backend. */
  #fatal = false;
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;
  #loop: Promise<void> | undefined;
  #model: RealtimeModel;
  #report = {
    submitted: 0,
    reattached: 0,
    answered: 0,
    fellBack: 0,
    notRun: 0,
    costUsd: 0,
    realtimeCostUsd: 0,
  };

  private constructor(options: BatchBackendOptions) {
    this.#o = options;
    this.#signal = options.signal
      ? AbortSignal.any([options.signal, this.#stop.signal])
      : this.#stop.signal;
    this.#model = { ...options.realtime, inputTokensPerItem: 0, outputTokensPerItem: 0 };
  }

  /**
   * Reads the input, the output's progress and the state of an earlier run; re-attaches to its
   * batches; places the items not yet in a batch (all to the batch API, or by `planAuto`).
   * Nothing is submitted yet (`submit`). Rejects like the batch driver on refused input
   * (duplicates; invalid lines under `strict`) or a state file from another run.
   */
  static async open(options: BatchBackendOptions): Promise<BatchBackend> {
    const backend = new BatchBackend(options);
    await backend.#open();
    return backend;
  }

  /** The placement this run chose (undefined: everything was placed by an earlier run). */
  get plan(): Plan | undefined {
    return this.#plan;
  }

  async #open(): Promise<void> {
    const o = this.#o;
    const scan = await scanInput(o.input, { defaultModel: o.defaultModel, signal: o.signal });
    if (scan.duplicates.length > 0 || (o.strict && scan.invalid > 0))
      throw new InputRejectedError({
        file: o.input,
        errors: o.strict ? scan.errors : [],
        errorCount: o.strict ? scan.invalid : 0,
        duplicates: scan.duplicates,
      });
    const header = journalHeader(
      { input: o.input, output: o.output, defaultModel: o.defaultModel, runKey: o.runKey },
      scan,
    );
    this.#header = header;
    const path = statePath(o.output);
    if (o.fresh) {
      // Whatever run it was, its batches are not wanted any more.
      const old = await readBatchState(path).catch(() => undefined);
      if (old !== undefined) await this.#cancelLeftovers(old);
      await removeBatchFiles(o.output);
    }
    const resume = await prepareResume({
      output: o.output,
      header,
      total: scan.total,
      fresh: o.fresh,
      readOnly: true,
    });
    const done = (index: number) => index < resume.doneInOutput || resume.journaled.has(index);
    const now = o.wallNow();
    this.#state = await loadBatchState(path, header);
    const startedAt = this.#state?.started_at ?? now;
    this.#startedAt = startedAt;
    this.#deadlineAt =
      o.runDeadline === undefined
        ? (this.#state?.deadline_at ?? undefined)
        : "at" in o.runDeadline
          ? o.runDeadline.at
          : startedAt + o.runDeadline.afterMs;
    if (this.#state !== undefined) {
      this.#spool = await ResultSpool.open(resultsPath(o.output));
      this.#state.deadline_at = this.#deadlineAt ?? null;
      await this.#reattach(this.#state);
    }

    // The items not done, not answered, not in a live batch.
    const candidates: Candidate[] = [];
    const reruns = new Set<number>();
    for (const chunk of this.#state?.chunks ?? [])
      if (chunk.phase === "abandoned") for (const i of fromRanges(chunk.items)) reruns.add(i);
    let inputTokens = 0;
    let outputTokens = 0;
    let counted = 0;
    for await (const entry of readInput(o.input, { defaultModel: o.defaultModel })) {
      if (isInvalid(entry) || done(entry.index)) continue;
      const estimate = o.estimate(entry.request);
      inputTokens += estimate.inputTokens;
      outputTokens += estimate.outputTokens;
      counted += 1;
      if (
        this.#spool?.has(entry.index) ||
        this.#chunkOf.has(entry.index) ||
        reruns.has(entry.index)
      )
        continue;
      candidates.push({
        index: entry.index,
        group: o.client.groupOf(entry.request),
        bytes: Buffer.byteLength(o.client.encode(`i${entry.index}`, entry.request)),
        estimate,
        model: modelOf(entry.request.body),
      });
    }
    this.#model = {
      ...o.realtime,
      inputTokensPerItem: counted === 0 ? 0 : inputTokens / counted,
      outputTokensPerItem: counted === 0 ? 0 : outputTokens / counted,
    };
    if (candidates.length === 0) return;

    // Place them: the batch API takes the last `plan.batch` candidates.
    const plan =
      o.backend === "batch" ? this.#planBatch(candidates.length) : this.#planAuto(candidates);
    this.#plan = plan;
    o.emit({ type: "backend-plan", backend: o.backend, plan });
    const toBatch = candidates.slice(candidates.length - plan.batch);
    this.#pending = this.#split(toBatch);
  }

  #planBatch(items: number): Plan {
    const remaining = this.#remainingMs();
    const expected = this.#batchMs(items);
    const late =
      remaining !== undefined && expected > remaining
        ? `; it is not expected back within the ${formatMs(remaining)} left before the run deadline: what is not back in time runs in real time`
        : "";
    return {
      mode: "batch",
      batch: items,
      realtime: 0,
      reason: `--backend batch: all ${items} items to the batch API at ${Math.round(BATCH_PRICE_FACTOR * 100)}% of the real-time price (expected to take ${formatMs(this.#o.turnaround.ms(Math.min(items, this.#o.client.limits.maxRequests)))}: ${this.#o.turnaround.source})${late}`,
      late: late !== "",
      estimates: {
        realtimeAllMs: this.#realtimeMs(items),
        batchAllMs: expected,
        plannedMs: expected,
        realtimeAllUsd: undefined,
        batchAllUsd: undefined,
        plannedUsd: undefined,
      },
    };
  }

  #planAuto(candidates: Candidate[]): Plan {
    const o = this.#o;
    let bound = 0;
    let unpriced = false;
    for (const c of candidates) {
      const usd = o.pricing.bound(c.model, c.estimate);
      if (usd === undefined) unpriced = true;
      else bound += usd;
    }
    return planAuto({
      items: candidates.length,
      remainingMs: this.#remainingMs(),
      realtimeMs: (n) => this.#realtimeMs(n),
      batchMs: (n) => this.#batchMs(n),
      realtimeCostUsd: unpriced ? undefined : bound,
      batchPriceFactor: BATCH_PRICE_FACTOR,
      budgetUsd:
        o.budget !== undefined && Number.isFinite(o.budget.maxCostUsd)
          ? o.budget.available.usd
          : undefined,
      sources: {
        realtime: `${REALTIME_PLAN_FACTOR}x M* under the limits set, ${formatMs(this.#model.latencyMs)} per call from ${this.#model.latencySource}`,
        batch: o.turnaround.source,
      },
    });
  }

  /** Planned real-time duration for n items, ms. */
  #realtimeMs(n: number): number {
    return n === 0 ? 0 : REALTIME_PLAN_FACTOR * realtimeBoundMs(this.#model, n);
  }

  /** Planned time until a batch of n items is downloaded, ms (split at the limits: in parallel). */
  #batchMs(n: number): number {
    if (n === 0) return 0;
    const most = Math.min(this.#o.client.limits.maxRequests, this.#o.batchSize ?? Infinity);
    const largest = Math.min(n, most);
    return BATCH_PLAN_FACTOR * this.#o.turnaround.ms(largest) + 2 * this.#o.poll.minMs;
  }

  #remainingMs(): number | undefined {
    return this.#deadlineAt === undefined ? undefined : this.#deadlineAt - this.#o.wallNow();
  }

  /** Cuts the batch's items into batches: one group each, within the request and byte limits. */
  #split(candidates: Candidate[]): Array<{ record: ChunkRecord; candidates: Candidate[] }> {
    const o = this.#o;
    const maxRequests = Math.min(o.client.limits.maxRequests, o.batchSize ?? Infinity);
    const open = new Map<string, { candidates: Candidate[]; bytes: number }>();
    const out: Array<{ record: ChunkRecord; candidates: Candidate[] }> = [];
    let next = (this.#state?.chunks.length ?? 0) + 1;
    const close = (group: string) => {
      const chunk = open.get(group);
      if (chunk === undefined || chunk.candidates.length === 0) return;
      open.delete(group);
      const { key, endpoint, model } = chunk.candidates[0]!.group;
      out.push({
        record: {
          key: `c${next++}`,
          group: { key, endpoint, model },
          items: toRanges(chunk.candidates.map((c) => c.index)),
          requests: chunk.candidates.length,
          bytes: batchBytes(o.client, chunk.candidates.length, chunk.bytes),
          phase: "uploaded",
        },
        candidates: chunk.candidates,
      });
    };
    for (const c of candidates) {
      if (batchBytes(o.client, 1, c.bytes) > o.client.limits.maxBytes) {
        // Too big for any batch: it runs in real time.
        o.emit({
          type: "warning",
          message: `item ${c.index} is ${c.bytes} bytes, more than one batch may hold (${o.client.limits.maxBytes}): it runs in real time`,
        });
        continue;
      }
      let chunk = open.get(c.group.key);
      if (
        chunk !== undefined &&
        (chunk.candidates.length + 1 > maxRequests ||
          batchBytes(o.client, chunk.candidates.length + 1, chunk.bytes + c.bytes) >
            o.client.limits.maxBytes)
      ) {
        close(c.group.key);
        chunk = undefined;
      }
      if (chunk === undefined) {
        chunk = { candidates: [], bytes: 0 };
        open.set(c.group.key, chunk);
      }
      chunk.candidates.push(c);
      chunk.bytes += c.bytes;
    }
    for (const group of [...open.keys()]) close(group);
    return out;
  }

  /** Re-attaches to an earlier run's batches; drops what was never created. */
  async #reattach(state: BatchState): Promise<void> {
    const o = this.#o;
    const known = new Set(state.chunks.flatMap((c) => (c.batchId ? [c.batchId] : [])));
    for (const record of state.chunks) {
      if (record.phase === "uploaded") {
        // The create call was never sent: the file is not needed.
        if (record.fileId) await o.client.discard?.(record.fileId, this.#signal).catch(() => {});
        record.phase = "abandoned";
        record.items = [];
        record.requests = 0;
        continue;
      }
      if (record.phase === "creating") {
        const found = await this.#call("find", (signal) =>
          o.client.find(
            {
              tag: `${state.run_id}-${record.key}`,
              sinceMs: record.creatingAt ?? state.started_at,
              requests: record.requests,
              known,
            },
            signal,
          ),
        );
        if (found === undefined) {
          record.phase = "abandoned";
          record.items = [];
          record.requests = 0;
          continue;
        }
        record.batchId = found;
        record.phase = "submitted";
        record.submittedAt ??= record.creatingAt;
      }
      if (record.phase !== "submitted") continue;
      const chunk = this.#track(record, true);
      // Items already downloaded (a crash mid-download) are not waited for.
      for (const i of fromRanges(record.items)) if (this.#spool?.has(i)) chunk.items -= 1;
      this.#report.reattached += 1;
      o.emit({
        type: "batch-reattached",
        batchId: record.batchId!,
        requests: record.requests,
        status: "submitted",
      });
    }
    await this.#save();
  }

  #track(record: ChunkRecord, reattached: boolean): Chunk {
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const chunk: Chunk = {
      record,
      items: record.requests,
      settled,
      settle,
      reservation: undefined,
      reattached,
      nextPollAt: this.#o.clock.now(),
      lastStatus: undefined,
    };
    this.#chunks.push(chunk);
    for (const i of fromRanges(record.items)) this.#chunkOf.set(i, chunk);
    return chunk;
  }

  /**
   * Sends the planned batches: each reserves its bound at the batch price (items that do not fit
   * the budget are refused, `SALVO_BUDGET_EXCEEDED`), is uploaded (OpenAI), created, and recorded
   * at every step. Rejects with BatchApiError when the provider refuses in a way that waiting
   * does not fix; an interrupt stops it between steps (the state says where).
   */
  async submit(): Promise<void> {
    const o = this.#o;
    const pending = this.#pending;
    this.#pending = [];
    for (const { record, candidates } of pending) {
      if (this.#signal.aborted) return;
      let items = candidates;
      let reservation: Reservation | undefined;
      if (o.budget !== undefined) {
        const spend = (c: Candidate): Spend => ({
          usd: o.pricing.bound(c.model, c.estimate, { batch: true }) ?? 0,
          tokens: c.estimate.inputTokens + c.estimate.outputTokens,
        });
        const available = o.budget.available;
        let total: Spend = { usd: 0, tokens: 0 };
        let fit = 0;
        for (const c of candidates) {
          const next = { usd: total.usd + spend(c).usd, tokens: total.tokens + spend(c).tokens };
          if (next.usd > available.usd + 1e-12 || next.tokens > available.tokens) break;
          total = next;
          fit += 1;
        }
        for (const c of candidates.slice(fit)) {
          o.budget.refuse(spend(c));
          this.#overBudget.add(c.index);
        }
        items = candidates.slice(0, fit);
        if (items.length === 0) continue;
        reservation = await o.budget.reserve(total);
        if (fit < candidates.length) {
          record.items = toRanges(items.map((c) => c.index));
          record.requests = items.length;
          record.bytes = batchBytes(
            o.client,
            items.length,
            items.reduce((sum, c) => sum + c.bytes, 0),
          );
        }
      }
      try {
        await this.#submitOne(record, items);
      } catch (error) {
        reservation?.settle({ usd: 0, tokens: 0 });
        throw error;
      }
      const chunk = this.#chunkOf.get(items[0]!.index);
      if (chunk) chunk.reservation = reservation;
      else reservation?.settle({ usd: 0, tokens: 0 });
    }
  }

  async #submitOne(record: ChunkRecord, items: Candidate[]): Promise<void> {
    const o = this.#o;
    const state = await this.#ensureState();
    state.chunks.push(record);
    const wanted = new Set(items.map((c) => c.index));
    const lines: string[] = [];
    for await (const entry of readInput(o.input, { defaultModel: o.defaultModel })) {
      if (!isInvalid(entry) && wanted.has(entry.index))
        lines.push(o.client.encode(`i${entry.index}`, entry.request));
    }
    const tag = `${state.run_id}-${record.key}`;
    if (o.client.upload) {
      record.fileId = await this.#call("upload", (signal) =>
        o.client.upload!(lines, `salvo-${tag}.jsonl`, signal),
      );
      await this.#save();
    }
    if (this.#signal.aborted) return;
    record.phase = "creating";
    record.creatingAt = o.wallNow();
    await this.#save();
    const known = new Set(state.chunks.flatMap((c) => (c.batchId ? [c.batchId] : [])));
    let batchId: string | undefined;
    for (let attempt = 1; batchId === undefined; attempt++) {
      try {
        batchId = await o.client.create(
          { group: record.group, tag, fileId: record.fileId, lines },
          this.#signal,
        );
      } catch (error) {
        if (this.#signal.aborted) return; // "creating": the rerun looks for it
        if (!classifyFailure(error).retryable || attempt >= 5)
          throw this.#apiError("create", error);
        // The create may have reached the provider before the connection failed: look first.
        await this.#sleep(backoffMs(attempt, error));
        batchId = await this.#call("find", (signal) =>
          o.client.find(
            { tag, sinceMs: record.creatingAt!, requests: record.requests, known },
            signal,
          ),
        );
      }
    }
    record.batchId = batchId;
    record.phase = "submitted";
    record.submittedAt = o.wallNow();
    await this.#save();
    this.#track(record, false);
    this.#report.submitted += 1;
    o.emit({ type: "batch-submitted", batchId, requests: record.requests });
  }

  async #ensureState(): Promise<BatchState> {
    if (this.#state !== undefined) return this.#state;
    const o = this.#o;
    const header = this.#header!;
    this.#state = {
      salvo_provider_batches: 1,
      input: { sha256: header.input.sha256, bytes: header.input.bytes },
      options_sha256: header.options_sha256,
      provider: o.client.provider,
      run_id: randomBytes(6).toString("hex"),
      started_at: this.#startedAt,
      deadline_at: this.#deadlineAt ?? null,
      chunks: [],
    };
    this.#spool ??= await ResultSpool.open(resultsPath(o.output));
    return this.#state;
  }

  #save(): Promise<void> {
    return this.#state === undefined
      ? Promise.resolve()
      : saveBatchState(statePath(this.#o.output), this.#state);
  }

  /** Starts polling the batches in the background, until each is downloaded or abandoned. */
  start(): void {
    this.#loop ??= this.#poll().catch((error: unknown) => {
      if (this.#signal.aborted) return;
      const fatal = error instanceof BatchApiError ? error : this.#apiError("poll", error);
      this.#fatal = true;
      this.#o.onFatal(fatal);
      for (const chunk of this.#chunks) chunk.settle();
    });
  }

  async #poll(): Promise<void> {
    const o = this.#o;
    const release = o.clock.keepAlive?.();
    try {
      for (;;) {
        const live = this.#chunks.filter((c) => c.record.phase === "submitted");
        if (live.length === 0 || this.#signal.aborted) return;
        await this.#lastCall(live);
        const now = o.clock.now();
        for (const chunk of live) {
          if (this.#signal.aborted) return;
          if (chunk.record.phase !== "submitted" || chunk.nextPollAt > now) continue;
          await this.#check(chunk);
        }
        const waiting = this.#chunks.filter((c) => c.record.phase === "submitted");
        if (waiting.length === 0) return;
        const next = Math.min(...waiting.map((c) => c.nextPollAt));
        await this.#sleep(Math.max(0, next - o.clock.now()));
      }
    } finally {
      release?.();
    }
  }

  /** Polls one batch; downloads its results once it has ended. */
  async #check(chunk: Chunk): Promise<void> {
    const o = this.#o;
    const record = chunk.record;
    const id = record.batchId!;
    let status: Awaited<ReturnType<ProviderBatchClient["retrieve"]>>;
    try {
      status = await o.client.retrieve(id, this.#signal);
    } catch (error) {
      if (this.#signal.aborted) return;
      if (!classifyFailure(error).retryable) throw this.#apiError("retrieve", error);
      o.emit({
        type: "warning",
        message: `polling batch ${id} failed, trying again: ${(error as Error).message}`,
      });
      chunk.nextPollAt = o.clock.now() + this.#interval(chunk);
      return;
    }
    const seen = `${status.status} ${status.done}`;
    if (seen !== chunk.lastStatus) {
      chunk.lastStatus = seen;
      o.emit({
        type: "batch-status",
        batchId: id,
        status: status.status,
        done: status.done,
        total: status.total,
      });
    }
    if (status.state !== "ended") {
      chunk.nextPollAt = o.clock.now() + this.#interval(chunk);
      return;
    }
    await this.#download(chunk, status.outcome ?? "completed", status.failure);
  }

  /** Backoff: a fifth of the batch's age, within the poll bounds, sooner at its expected end. */
  #interval(chunk: Chunk): number {
    const o = this.#o;
    const submitted = chunk.record.submittedAt ?? o.wallNow();
    const age = Math.max(0, o.wallNow() - submitted);
    let interval = Math.min(o.poll.maxMs, Math.max(o.poll.minMs, age / 5));
    const expectedIn = o.turnaround.ms(chunk.record.requests) - age;
    if (expectedIn > 0) interval = Math.min(interval, Math.max(o.poll.minMs, expectedIn));
    return interval;
  }

  async #download(
    chunk: Chunk,
    outcome: NonNullable<ChunkRecord["outcome"]>,
    failure: string | undefined,
  ): Promise<void> {
    const o = this.#o;
    const record = chunk.record;
    const id = record.batchId!;
    const spool = this.#spool!;
    // Items whose result is not yet in the results file (a crash mid-download kept the others).
    const pending = new Set([...fromRanges(record.items)].filter((i) => !spool.has(i)));
    const counts = { answered: 0, errored: 0, notRun: 0 };
    let spent: Spend = { usd: 0, tokens: 0 };
    let buffer: SpooledResult[] = [];
    let buffered = new Set<number>();
    const flush = async () => {
      await spool.append(buffer);
      for (const result of buffer) {
        pending.delete(result.i);
        const response = result.response;
        if (response && response.status < 300) {
          counts.answered += 1;
          const usage = this.#usageOf(response.body);
          if (usage)
            spent = {
              usd: spent.usd + (this.#costOf(response.body, undefined, usage) ?? 0),
              tokens: spent.tokens + usage.inputTokens + usage.outputTokens,
            };
        } else if (response) counts.errored += 1;
        else counts.notRun += 1;
      }
      buffer = [];
      buffered = new Set();
    };
    await this.#call("results", async (signal) => {
      buffer = [];
      buffered = new Set();
      for await (const result of o.client.results(id, signal)) {
        const index = result.customId.startsWith("i")
          ? Number(result.customId.slice(1))
          : Number.NaN;
        if (!pending.has(index) || buffered.has(index)) continue; // not ours, or seen already
        buffered.add(index);
        buffer.push({
          i: index,
          batch: id,
          ...(result.response
            ? {
                response: {
                  status: result.response.status,
                  body: result.response.body,
                  request_id: result.response.requestId ?? null,
                },
              }
            : { not_run: result.notRun ?? "failed", message: result.message ?? failure }),
        });
        if (buffer.length >= 500) await flush();
      }
      await flush();
    });
    // A request the results do not mention did not run.
    for (const i of pending)
      buffer.push({
        i,
        batch: id,
        not_run: outcome === "failed" ? "failed" : "missing",
        message: failure,
      });
    await flush();
    record.phase = "downloaded";
    record.outcome = outcome;
    record.endedAt = o.wallNow();
    if (failure) record.failure = failure;
    await this.#save();
    if (chunk.reservation) chunk.reservation.settle(spent);
    else o.budget?.charge(spent);
    chunk.items = 0;
    o.emit({ type: "batch-ended", batchId: id, outcome, ...counts });
    if (outcome === "failed")
      o.emit({
        type: "warning",
        message: `the provider refused batch ${id}${failure ? `: ${failure}` : ""}; its items run in real time`,
      });
    chunk.settle();
  }

  /**
   * The run deadline: a batch not back when real time needs the time that is left to run its
   * items is cancelled (what it processed by then is kept); one still not ended when real time
   * must start is abandoned, and its items run in real time.
   */
  async #lastCall(live: Chunk[]): Promise<void> {
    const o = this.#o;
    const remaining = this.#remainingMs();
    if (remaining === undefined) return;
    const outstanding = live.reduce((n, c) => n + c.items, 0);
    const needed = this.#realtimeMs(outstanding);
    if (remaining > needed + 2 * o.poll.minMs) return;
    for (const chunk of live) {
      const record = chunk.record;
      if (!record.cancelRequested) {
        record.cancelRequested = true;
        await this.#save();
        try {
          await o.client.cancel(record.batchId!, this.#signal);
        } catch (error) {
          if (this.#signal.aborted) return;
          o.emit({
            type: "warning",
            message: `cancelling batch ${record.batchId} failed: ${(error as Error).message}`,
          });
        }
        o.emit({
          type: "batch-cancelled",
          batchId: record.batchId!,
          reason: `the run deadline is ${formatMs(Math.max(0, remaining))} away and real time needs about ${formatMs(needed)} for the ${outstanding} items not back`,
        });
        chunk.nextPollAt = o.clock.now();
      } else if (remaining <= needed) {
        record.phase = "abandoned";
        await this.#save();
        o.emit({ type: "batch-abandoned", batchId: record.batchId!, requests: chunk.items });
        chunk.settle();
      } else chunk.nextPollAt = Math.min(chunk.nextPollAt, o.clock.now() + o.poll.minMs);
    }
  }

  /**
   * What to do with one item: the batch's answer once its batch is downloaded, a fallback to
   * real time (the batch errored or did not run it and the deadline allows), or a final error.
   * Waits for the item's batch; settles at once when `stop` aborts.
   */
  async decide(item: BatchItem, stop: AbortSignal): Promise<Decision> {
    if (this.#overBudget.has(item.index)) {
      const error = this.#o.budget?.exhausted;
      return final(error ?? new AbortedError("over budget"));
    }
    const chunk = this.#chunkOf.get(item.index);
    let result = await this.#spool?.get(item.index);
    if (result === undefined && chunk !== undefined) {
      if (!(await until(chunk.settled, stop))) return final(stop.reason ?? new AbortedError());
      if ((this.#signal.aborted || this.#fatal) && !this.#spool?.has(item.index))
        return final(this.#signal.reason ?? new AbortedError());
      result = await this.#spool?.get(item.index);
      if (result === undefined)
        // Abandoned for the deadline: real time, whatever the deadline now says.
        return this.#fallback(
          { i: item.index, batch: chunk.record.batchId ?? "", not_run: "cancelled" },
          true,
        );
    }
    if (result === undefined) return { kind: "realtime", deadlineMs: undefined, fallback: false };
    return this.#fromResult(item, result, chunk);
  }

  #fromResult(item: BatchItem, result: SpooledResult, chunk: Chunk | undefined): Decision {
    const response = result.response;
    const record = chunk?.record ?? this.#state?.chunks.find((c) => c.batchId === result.batch);
    const latencyMs =
      record?.endedAt !== undefined && record.submittedAt !== undefined
        ? record.endedAt - record.submittedAt
        : 0;
    if (response && response.status < 300) {
      const usage = this.#usageOf(response.body);
      const costUsd =
        usage === undefined ? undefined : this.#costOf(response.body, item.request, usage);
      const realtime =
        usage === undefined ? undefined : this.#costOf(response.body, item.request, usage, false);
      this.#report.answered += 1;
      this.#report.costUsd += costUsd ?? 0;
      this.#report.realtimeCostUsd += realtime ?? 0;
      return {
        kind: "batch",
        usage,
        costUsd,
        outcome: {
          ok: true,
          value: {
            status: response.status,
            body: response.body,
            requestId: response.request_id ?? undefined,
            usage,
            costUsd,
            batchId: result.batch,
          },
          attempts: 1,
          latencyMs,
        },
      };
    }
    if (response) {
      const error = errorFromResponse({
        status: response.status,
        body: response.body,
        provider: this.#o.client.provider,
      });
      if (classifyFailure(error).retryable) return this.#fallback(result, false);
      return {
        kind: "final",
        outcome: { ok: false, error: itemError(error), attempts: 1, latencyMs },
      };
    }
    return this.#fallback(result, false);
  }

  /** A line the batch did not answer: real time if the run deadline allows, else not run. */
  #fallback(result: SpooledResult, force: boolean): Decision {
    const remaining = this.#remainingMs();
    if (force || remaining === undefined || remaining > 0) {
      this.#report.fellBack += 1;
      return {
        kind: "realtime",
        deadlineMs: force || remaining === undefined ? undefined : remaining,
        fallback: true,
      };
    }
    this.#report.notRun += 1;
    if (result.response) {
      const error = errorFromResponse({
        status: result.response.status,
        body: result.response.body,
        provider: this.#o.client.provider,
      });
      return final(error);
    }
    return final(
      new BatchLineNotRunError({
        reason: NOT_RUN_LABEL[result.not_run ?? "failed"],
        batchId: result.batch,
        ...(result.message ? { detail: result.message } : {}),
      }),
    );
  }

  #usageOf(body: unknown): TokenUsage | undefined {
    return this.#o.client.provider === "anthropic"
      ? usageFromAnthropic(body)
      : usageFromOpenAI(body);
  }

  /** An answer's cost, at the batch price (or the real-time one, for the report's comparison). */
  #costOf(
    body: unknown,
    request: ProviderRequest | undefined,
    usage: TokenUsage,
    batch = true,
  ): number | undefined {
    const pricing = this.#o.pricing;
    const answered = modelOf(body);
    const model = pricing.priceOf(answered) ? answered : modelOf(request?.body);
    return pricing.cost(model, usage, { batch }).usd;
  }

  /**
   * Stops polling and closes the results file. After a complete run (every line in the output)
   * the state and results files are removed; otherwise they stay for the rerun.
   */
  async close(complete: boolean): Promise<BackendReport> {
    this.#stop.abort(new AbortedError("the run ended"));
    await this.#loop;
    await this.#spool?.close();
    if (complete && this.#state !== undefined) await removeBatchFiles(this.#o.output);
    const chunks = this.#state?.chunks ?? [];
    return {
      backend: this.#o.backend,
      plan: this.#plan,
      deadline: this.#deadlineAt === undefined ? null : new Date(this.#deadlineAt).toISOString(),
      batches: chunks
        .filter((c) => c.requests > 0)
        .map((c) => ({
          id: c.batchId ?? null,
          requests: c.requests,
          phase: c.phase,
          outcome: c.outcome ?? null,
          reattached: this.#chunks.some((k) => k.record === c && k.reattached),
        })),
      overBudget: this.#overBudget.size,
      ...this.#report,
    };
  }

  /** `--fresh` over a run whose batches may still be running: cancel them (best effort). */
  async #cancelLeftovers(state: BatchState): Promise<void> {
    for (const chunk of state.chunks)
      if ((chunk.phase === "submitted" || chunk.phase === "creating") && chunk.batchId)
        await this.#o.client.cancel(chunk.batchId, this.#signal).catch(() => {});
  }

  /** A control call, retried on failures that waiting fixes. */
  async #call<T>(operation: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(this.#signal);
      } catch (error) {
        if (this.#signal.aborted) throw this.#signal.reason;
        if (!classifyFailure(error).retryable || attempt >= 5)
          throw this.#apiError(operation, error);
        await this.#sleep(backoffMs(attempt, error));
      }
    }
  }

  #apiError(operation: string, error: unknown): BatchApiError {
    if (error instanceof BatchApiError) return error;
    const provider = this.#o.client.provider;
    const status = error instanceof ProviderError ? error.status : undefined;
    return new BatchApiError(
      `${provider} batch API: ${operation} failed: ${(error as Error).message ?? String(error)}`,
      { provider, operation, status },
      { cause: error },
    );
  }

  /** Sleeps on the clock; an abort (or `close`) wakes it early. */
  #sleep(ms: number): Promise<void> {
    const clock = this.#o.clock;
    return new Promise((resolve) => {
      if (this.#signal.aborted) {
        resolve();
        return;
      }
      const done = () => {
        clock.clearTimeout(timer);
        this.#signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = clock.setTimeout(done, ms);
      this.#signal.addEventListener("abort", done, { once: true });
    });
  }
}

function final(error: unknown): Decision {
  return {
    kind: "final",
    outcome: { ok: false, error: itemError(error), attempts: 0, latencyMs: 0 },
  };
}

/** Whether `promise` settled before `signal` aborted. */
function until(promise: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}

/** 1 s, 2 s, 4 s... up to 60 s, or the provider's own hint. */
function backoffMs(attempt: number, error: unknown): number {
  const hint = error instanceof ProviderError ? error.retryAfterMs : undefined;
  return hint ?? Math.min(60_000, 1000 * 2 ** (attempt - 1));
}

// The providers' batch APIs as a backend of `salvo run` (`--backend batch|auto`): the items go to
// the provider's batch API at half the price, packed at its size limits; the batches are polled
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
// background, and the driver's `execute` asks `decide` for each item.
import { randomBytes } from "node:crypto";
import type { Reservation, Spend } from "../cost/budget.ts";
import { BATCH_PRICE_FACTOR, modelOf } from "../cost/pricing.ts";
import { AbortedError, InputRejectedError } from "../errors.ts";
import { formatDuration } from "../progress/format.ts";
import {
  type Plan,
  planAuto,
  plannedBatchMs,
  plannedRealtimeMs,
  REALTIME_PLAN_FACTOR,
  type RealtimeModel,
} from "./backend-plan.ts";
import type { BackendReport, BatchBackendOptions } from "./backend-types.ts";
import { BatchControl, backoffMs } from "./batch-control.ts";
import { type Decision, decisionOf, fallbackOf, finalError } from "./batch-decision.ts";
import { type BatchCandidate, packBatches } from "./batch-packing.ts";
import { BatchPoller, type Chunk } from "./batch-poller.ts";
import { ResultSpool } from "./batch-results.ts";
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
import { batchBytes } from "./provider-batch-client.ts";
import { journalHeader, prepareBatchResume } from "./run-batch.ts";

export type {
  Backend,
  BackendEvent,
  BackendReport,
  BatchBackendOptions,
} from "./backend-types.ts";
export type { Decision };

export class BatchBackend {
  readonly #o: BatchBackendOptions;
  #state: BatchState | undefined;
  #header: JournalHeader | undefined;
  #spool: ResultSpool | undefined;
  readonly #control: BatchControl;
  readonly #poller: BatchPoller;
  /** Batches planned but not yet submitted. */
  #pending: Array<{ record: ChunkRecord; candidates: BatchCandidate[] }> = [];
  readonly #overBudget = new Set<number>();
  #plan: Plan | undefined;
  #model: RealtimeModel;
  /** When the run first started, and its deadline, epoch ms (fixed by the first run). */
  #startedAt = 0;
  #deadlineAt: number | undefined;
  readonly #stop = new AbortController();
  readonly #signal: AbortSignal;
  readonly #report = {
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
    this.#control = new BatchControl(options.client.provider, options.clock, this.#signal);
    this.#poller = new BatchPoller({
      options,
      control: this.#control,
      save: () => this.#save(),
      spool: () => this.#spool!,
      remainingMs: () => this.#remainingMs(),
      realtimeMs: (n) => this.#realtimeMs(n),
    });
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
    // What the batch driver will find done (and what it will run again), changing nothing.
    const resume = await prepareBatchResume({
      input: o.input,
      output: o.output,
      defaultModel: o.defaultModel,
      fresh: o.fresh,
      retryFailed: o.retryFailed,
      signal: o.signal,
      scan,
      header,
      readOnly: true,
    });
    const done = (index: number) => index < resume.doneInOutput || resume.journaled.has(index);
    this.#state = await loadBatchState(path, header);
    this.#startedAt = this.#state?.started_at ?? o.wallNow();
    this.#deadlineAt =
      o.runDeadline === undefined
        ? (this.#state?.deadline_at ?? undefined)
        : "at" in o.runDeadline
          ? o.runDeadline.at
          : this.#startedAt + o.runDeadline.afterMs;
    if (this.#state !== undefined) {
      this.#spool = await ResultSpool.open(resultsPath(o.output));
      this.#state.deadline_at = this.#deadlineAt ?? null;
      await this.#reattach(this.#state);
    }

    // The items not done, not answered, not in a live batch; abandoned batches' run in real time.
    const abandoned = new Set<number>();
    for (const chunk of this.#state?.chunks ?? [])
      if (chunk.phase === "abandoned") for (const i of fromRanges(chunk.items)) abandoned.add(i);
    const candidates: BatchCandidate[] = [];
    const tokens = { input: 0, output: 0, items: 0 };
    for await (const entry of readInput(o.input, { defaultModel: o.defaultModel })) {
      if (isInvalid(entry) || done(entry.index)) continue;
      const estimate = o.estimate(entry.request);
      tokens.input += estimate.inputTokens;
      tokens.output += estimate.outputTokens;
      tokens.items += 1;
      const i = entry.index;
      if (this.#spool?.has(i) || this.#poller.chunkOf(i) !== undefined || abandoned.has(i))
        continue;
      if (await o.cached?.(entry.request)) continue;
      candidates.push({
        index: i,
        group: o.client.groupOf(entry.request),
        bytes: Buffer.byteLength(o.client.encode(`i${i}`, entry.request)),
        estimate,
        model: modelOf(entry.request.body),
      });
    }
    this.#model = {
      ...o.realtime,
      inputTokensPerItem: tokens.items === 0 ? 0 : tokens.input / tokens.items,
      outputTokensPerItem: tokens.items === 0 ? 0 : tokens.output / tokens.items,
    };
    if (candidates.length === 0) return;

    // The batch API takes the last `plan.batch` candidates; real time the first ones.
    const plan =
      o.backend === "batch" ? this.#planBatch(candidates.length) : this.#planAuto(candidates);
    this.#plan = plan;
    o.emit({ type: "backend-plan", backend: o.backend, plan });
    const packed = packBatches(candidates.slice(candidates.length - plan.batch), {
      client: o.client,
      batchSize: o.batchSize,
      firstKey: (this.#state?.chunks.length ?? 0) + 1,
    });
    for (const c of packed.tooLarge)
      o.emit({
        type: "warning",
        message: `item ${c.index} is ${c.bytes} bytes, more than one batch may hold (${o.client.limits.maxBytes}): it runs in real time`,
      });
    this.#pending = packed.batches;
  }

  #planBatch(items: number): Plan {
    const o = this.#o;
    const remaining = this.#remainingMs();
    const expected = this.#batchMs(items);
    const late = remaining !== undefined && expected > remaining;
    const turnaround = o.turnaround.ms(Math.min(items, o.client.limits.maxRequests));
    return {
      mode: "batch",
      batch: items,
      realtime: 0,
      reason: `all ${items} items to the batch API at ${Math.round(BATCH_PRICE_FACTOR * 100)}% of the real-time price (expected to take ${formatDuration(turnaround)}: ${o.turnaround.source})${late ? `; it is not expected back within the ${formatDuration(remaining)} left before the run deadline: what is not back in time runs in real time` : ""}`,
      late,
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

  #planAuto(candidates: BatchCandidate[]): Plan {
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
        realtime: `${REALTIME_PLAN_FACTOR}x M* under the limits set, ${formatDuration(this.#model.latencyMs)} per call from ${this.#model.latencySource}`,
        batch: o.turnaround.source,
      },
    });
  }

  #realtimeMs(n: number): number {
    return plannedRealtimeMs(this.#model, n);
  }

  #batchMs(n: number): number {
    const o = this.#o;
    const perBatch = Math.min(o.client.limits.maxRequests, o.batchSize ?? Infinity);
    return plannedBatchMs(o.turnaround.ms, n, perBatch, o.poll.minMs);
  }

  #remainingMs(): number | undefined {
    return this.#deadlineAt === undefined ? undefined : this.#deadlineAt - this.#o.wallNow();
  }

  /** Re-attaches to an earlier run's batches; drops what was never created. */
  async #reattach(state: BatchState): Promise<void> {
    const o = this.#o;
    const known = new Set(state.chunks.flatMap((c) => (c.batchId ? [c.batchId] : [])));
    const drop = (record: ChunkRecord) => {
      record.phase = "abandoned";
      record.items = [];
      record.requests = 0;
    };
    for (const record of state.chunks) {
      if (record.phase === "uploaded") {
        // The create call was never sent: the file is not needed.
        if (record.fileId) await o.client.discard?.(record.fileId, this.#signal).catch(() => {});
        drop(record);
        continue;
      }
      if (record.phase === "creating") {
        const found = await this.#control.call("find", (signal) =>
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
          drop(record);
          continue;
        }
        known.add(found);
        record.batchId = found;
        record.phase = "submitted";
        record.submittedAt ??= record.creatingAt;
      }
      if (record.phase !== "submitted") continue;
      const chunk = this.#poller.track(record, true);
      // Items already downloaded (a crash mid-download) are not waited for.
      for (const i of fromRanges(record.items)) if (this.#spool?.has(i)) chunk.items -= 1;
      this.#report.reattached += 1;
      o.emit({ type: "batch-reattached", batchId: record.batchId!, requests: record.requests });
    }
    await this.#save();
  }

  /** Starts polling the batches in the background, until each is downloaded or abandoned. */
  start(): void {
    this.#poller.start();
  }

  /**
   * Sends the planned batches: each reserves its bound at the batch price (items that do not fit
   * the budget are refused, `SALVO_BUDGET_EXCEEDED`), is uploaded (OpenAI), created, and recorded
   * at every step. Rejects with BatchApiError when the provider refuses in a way that waiting
   * does not fix; an interrupt stops it between steps (the state says where).
   */
  async submit(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    for (const { record, candidates } of pending) {
      if (this.#signal.aborted) return;
      const { items, reservation } = await this.#reserve(record, candidates);
      if (items.length === 0) continue;
      let chunk: Chunk | undefined;
      try {
        chunk = await this.#submitOne(record, items);
      } finally {
        if (chunk) chunk.reservation = reservation;
        else reservation?.settle({ usd: 0, tokens: 0 });
      }
    }
  }

  /** The batch's items that fit the budget at the batch price, reserved; the rest refused. */
  async #reserve(
    record: ChunkRecord,
    candidates: BatchCandidate[],
  ): Promise<{ items: BatchCandidate[]; reservation: Reservation | undefined }> {
    const o = this.#o;
    const budget = o.budget;
    if (budget === undefined) return { items: candidates, reservation: undefined };
    const spend = (c: BatchCandidate): Spend => ({
      usd: o.pricing.bound(c.model, c.estimate, { batch: true }) ?? 0,
      tokens: c.estimate.inputTokens + c.estimate.outputTokens,
    });
    const available = budget.available;
    let total: Spend = { usd: 0, tokens: 0 };
    let fit = 0;
    for (const c of candidates) {
      const next = { usd: total.usd + spend(c).usd, tokens: total.tokens + spend(c).tokens };
      if (next.usd > available.usd + 1e-12 || next.tokens > available.tokens) break;
      total = next;
      fit += 1;
    }
    const items = candidates.slice(0, fit);
    // Reserved before the rest is refused: a refusal exhausts the budget.
    const reservation = items.length > 0 ? await budget.reserve(total) : undefined;
    for (const c of candidates.slice(fit)) {
      budget.refuse(spend(c));
      this.#overBudget.add(c.index);
    }
    if (fit < candidates.length && fit > 0) {
      record.items = toRanges(items.map((c) => c.index));
      record.requests = items.length;
      record.bytes = batchBytes(
        o.client,
        fit,
        items.reduce((sum, c) => sum + c.bytes, 0),
      );
    }
    return { items, reservation };
  }

  /** Uploads and creates one batch, recording each step; undefined when interrupted. */
  async #submitOne(record: ChunkRecord, items: BatchCandidate[]): Promise<Chunk | undefined> {
    const o = this.#o;
    const state = await this.#ensureState();
    state.chunks.push(record);
    const wanted = new Set(items.map((c) => c.index));
    const lines: string[] = [];
    for await (const entry of readInput(o.input, { defaultModel: o.defaultModel }))
      if (!isInvalid(entry) && wanted.has(entry.index))
        lines.push(o.client.encode(`i${entry.index}`, entry.request));
    const tag = `${state.run_id}-${record.key}`;
    if (o.client.upload) {
      record.fileId = await this.#control.call("upload", (signal) =>
        o.client.upload!(lines, `salvo-${tag}.jsonl`, signal),
      );
      await this.#save();
    }
    if (this.#signal.aborted) return undefined;
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
        if (this.#signal.aborted) return undefined; // "creating": the rerun looks for it
        if (!this.#control.retryable(error) || attempt >= 5)
          throw this.#control.error("create", error);
        // The create may have reached the provider before the connection failed: look first.
        await this.#control.sleep(backoffMs(attempt, error));
        batchId = await this.#control.call("find", (signal) =>
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
    this.#report.submitted += 1;
    o.emit({ type: "batch-submitted", batchId, requests: record.requests });
    return this.#poller.track(record, false);
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

  /**
   * What to do with one item: the batch's answer once its batch is downloaded, a fallback to
   * real time (the batch errored or did not run it and the deadline allows), or a final error.
   * Waits for the item's batch; settles at once when `stop` aborts.
   */
  async decide(item: BatchItem, stop: AbortSignal): Promise<Decision> {
    if (this.#overBudget.has(item.index))
      return finalError(this.#o.budget?.exhausted ?? new AbortedError("over budget"));
    const chunk = this.#poller.chunkOf(item.index);
    let result = await this.#spool?.get(item.index);
    if (result === undefined && chunk !== undefined) {
      if (!(await until(chunk.settled, stop))) return finalError(stop.reason ?? new AbortedError());
      result = await this.#spool?.get(item.index);
      if (result === undefined) {
        if (this.#signal.aborted || this.#poller.fatal)
          return finalError(this.#signal.reason ?? new AbortedError());
        // Abandoned for the deadline: real time, whatever the deadline now says.
        return this.#tally(
          fallbackOf(
            { i: item.index, batch: chunk.record.batchId ?? "", not_run: "cancelled" },
            { provider: this.#o.client.provider, remainingMs: this.#remainingMs() },
            true,
          ),
        );
      }
    }
    if (result === undefined) return { kind: "realtime", deadlineMs: undefined, fallback: false };
    const record = chunk?.record ?? this.#state?.chunks.find((c) => c.batchId === result.batch);
    return this.#tally(
      decisionOf(item.request, result, {
        provider: this.#o.client.provider,
        pricing: this.#o.pricing,
        remainingMs: this.#remainingMs(),
        latencyMs:
          record?.endedAt !== undefined && record.submittedAt !== undefined
            ? record.endedAt - record.submittedAt
            : 0,
      }),
    );
  }

  #tally(decision: Decision): Decision {
    const r = this.#report;
    if (decision.kind === "batch") {
      r.answered += 1;
      r.costUsd += decision.costUsd ?? 0;
      r.realtimeCostUsd += decision.realtimeCostUsd ?? 0;
    } else if (decision.kind === "realtime" && decision.fallback) r.fellBack += 1;
    else if (decision.kind === "final" && decision.notRun) r.notRun += 1;
    return decision;
  }

  /**
   * Stops polling and closes the results file. After a complete run (every line in the output)
   * the state and results files are removed; otherwise they stay for the rerun.
   */
  async close(complete: boolean): Promise<BackendReport> {
    this.#stop.abort(new AbortedError("the run ended"));
    await this.#poller.stopped();
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
          reattached: this.#poller.chunks.some((k) => k.record === c && k.reattached),
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
}

/** Whether `promise` settled before `signal` aborted. */
function until(promise: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}

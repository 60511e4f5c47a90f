// Waits for a run's provider batches: polls each with backoff (sooner at its expected end),
// downloads one once it has ended (downloadBatch: into the results file, then marked downloaded
// in the state file), settles its budget reservation with what it really cost, and releases the
// items waiting for it. The run deadline's last call (`lastCallAction`) cancels a batch real time
// should take over, and abandons one that does not end in time.
import type { Reservation } from "../cost/budget.ts";
import { formatDuration } from "../progress/format.ts";
import { lastCallAction, pollIntervalMs } from "./backend-plan.ts";
import type { BatchBackendOptions } from "./backend-types.ts";
import type { BatchControl } from "./batch-control.ts";
import { answerCost, usageOfAnswer } from "./batch-decision.ts";
import { downloadBatch } from "./batch-download.ts";
import type { ResultSpool } from "./batch-results.ts";
import { type ChunkRecord, fromRanges } from "./batch-state.ts";
import type { ProviderBatchClient } from "./provider-batch-client.ts";

/** What the poller uses of the backend. */
export type PollerContext = {
  readonly options: BatchBackendOptions;
  readonly control: BatchControl;
  /** Replaces the state file (the records are the backend's, changed in place). */
  save(): Promise<void>;
  spool(): ResultSpool;
  /** Ms to the run deadline; undefined: none. */
  remainingMs(): number | undefined;
  /** Planned real-time duration for n items, ms. */
  realtimeMs(n: number): number;
};

/** One batch of this run, with what waits for it. */
export type Chunk = {
  record: ChunkRecord;
  /** Items whose results are not yet downloaded. */
  items: number;
  settled: Promise<void>;
  settle: () => void;
  reservation: Reservation | undefined;
  reattached: boolean;
  /** When it should be polled next, clock ms. */
  nextPollAt: number;
  /** The last status seen (status and count), for events. */
  lastStatus: string | undefined;
};

export class BatchPoller {
  readonly #c: PollerContext;
  readonly #chunks: Chunk[] = [];
  readonly #chunkOf = new Map<number, Chunk>();
  #loop: Promise<void> | undefined;
  #fatal = false;
  /** Whether real time could still run the live batches' items in time, seen at some poll. */
  #fallbackViable = false;

  constructor(context: PollerContext) {
    this.#c = context;
  }

  /** The batch waiting for item `index`, if any. */
  chunkOf(index: number): Chunk | undefined {
    return this.#chunkOf.get(index);
  }

  get chunks(): readonly Chunk[] {
    return this.#chunks;
  }

  /** A batch API failure stopped polling (the backend's `onFatal` was told). */
  get fatal(): boolean {
    return this.#fatal;
  }

  /** Waits for a submitted batch: polls it, downloads it, settles its items. */
  track(record: ChunkRecord, reattached: boolean): Chunk {
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
      nextPollAt: this.#c.options.clock.now(),
      lastStatus: undefined,
    };
    this.#chunks.push(chunk);
    for (const i of fromRanges(record.items)) this.#chunkOf.set(i, chunk);
    return chunk;
  }

  /** Starts polling the batches in the background, until each is downloaded or abandoned. */
  start(): void {
    this.#loop ??= this.#poll().catch((error: unknown) => {
      if (this.#c.control.signal.aborted) return;
      this.#fatal = true;
      this.#c.options.onFatal(this.#c.control.error("poll", error));
      for (const chunk of this.#chunks) chunk.settle();
    });
  }

  /** Resolves once polling has stopped (the control signal stops it). */
  async stopped(): Promise<void> {
    await this.#loop;
  }

  async #poll(): Promise<void> {
    const o = this.#c.options;
    const release = o.clock.keepAlive?.();
    try {
      for (;;) {
        let live = this.#live();
        if (live.length === 0 || this.#c.control.signal.aborted) return;
        await this.#lastCall(live);
        const now = o.clock.now();
        for (const chunk of this.#live()) {
          if (this.#c.control.signal.aborted) return;
          if (chunk.nextPollAt <= now) await this.#check(chunk);
        }
        live = this.#live();
        if (live.length === 0) return;
        const next = Math.min(...live.map((c) => c.nextPollAt), this.#lastCallAt(live));
        await this.#c.control.sleep(Math.max(0, next - o.clock.now()));
      }
    } finally {
      release?.();
    }
  }

  #live(): Chunk[] {
    return this.#chunks.filter((c) => c.record.phase === "submitted");
  }

  /** Polls one batch; downloads its results once it has ended. */
  async #check(chunk: Chunk): Promise<void> {
    const o = this.#c.options;
    const id = chunk.record.batchId!;
    let status: Awaited<ReturnType<ProviderBatchClient["retrieve"]>>;
    try {
      status = await o.client.retrieve(id, this.#c.control.signal);
    } catch (error) {
      if (this.#c.control.signal.aborted) return;
      if (!this.#c.control.retryable(error)) throw this.#c.control.error("retrieve", error);
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

  #interval(chunk: Chunk): number {
    const o = this.#c.options;
    return pollIntervalMs({
      ageMs: Math.max(0, o.wallNow() - (chunk.record.submittedAt ?? o.wallNow())),
      expectedMs: o.turnaround.ms(chunk.record.requests),
      minMs: o.poll.minMs,
      maxMs: o.poll.maxMs,
    });
  }

  async #download(
    chunk: Chunk,
    outcome: NonNullable<ChunkRecord["outcome"]>,
    failure: string | undefined,
  ): Promise<void> {
    const o = this.#c.options;
    const record = chunk.record;
    const id = record.batchId!;
    const spool = this.#c.spool();
    const counts = await downloadBatch({
      client: o.client,
      batchId: id,
      pending: new Set([...fromRanges(record.items)].filter((i) => !spool.has(i))),
      spool,
      outcome,
      failure,
      call: (operation, run) => this.#c.control.call(operation, run),
      spendOf: (body) => {
        const usage = usageOfAnswer(o.client.provider, body);
        if (usage === undefined) return { usd: 0, tokens: 0 };
        const usd = answerCost(o.pricing, body, undefined, usage, true) ?? 0;
        return { usd, tokens: usage.inputTokens + usage.outputTokens };
      },
    });
    record.phase = "downloaded";
    record.outcome = outcome;
    record.endedAt = o.wallNow();
    if (failure) record.failure = failure;
    await this.#c.save();
    if (chunk.reservation) chunk.reservation.settle(counts.spent);
    else o.budget?.charge(counts.spent);
    chunk.items = 0;
    const { answered, errored, notRun } = counts;
    o.emit({ type: "batch-ended", batchId: id, outcome, answered, errored, notRun });
    if (outcome === "failed")
      o.emit({
        type: "warning",
        message: `the provider refused batch ${id}${failure ? `: ${failure}` : ""}; its items run in real time`,
      });
    chunk.settle();
  }

  /**
   * The run deadline (`lastCallAction`): a batch not back when real time needs what is left to
   * run its items is cancelled (what it processed by then is kept); one still not ended when
   * real time must start is abandoned, and its items run in real time.
   */
  async #lastCall(live: Chunk[]): Promise<void> {
    const o = this.#c.options;
    const remaining = this.#c.remainingMs();
    if (remaining === undefined) return;
    const outstanding = live.reduce((n, c) => n + c.items, 0);
    const needed = this.#c.realtimeMs(outstanding);
    for (const chunk of live) {
      const record = chunk.record;
      const { action, viable } = lastCallAction({
        remainingMs: remaining,
        neededMs: needed,
        marginMs: this.#lastCallMargin(),
        viable: this.#fallbackViable,
        cancelled: record.cancelRequested === true,
      });
      this.#fallbackViable = viable;
      if (action === "cancel") {
        record.cancelRequested = true;
        await this.#c.save();
        try {
          await o.client.cancel(record.batchId!, this.#c.control.signal);
        } catch (error) {
          if (this.#c.control.signal.aborted) return;
          o.emit({
            type: "warning",
            message: `cancelling batch ${record.batchId} failed: ${(error as Error).message}`,
          });
        }
        o.emit({
          type: "batch-cancelled",
          batchId: record.batchId!,
          reason: `the run deadline is ${formatDuration(Math.max(0, remaining))} away and real time needs about ${formatDuration(needed)} for the ${outstanding} items not back`,
        });
        chunk.nextPollAt = o.clock.now();
      } else if (action === "abandon") {
        record.phase = "abandoned";
        await this.#c.save();
        o.emit({ type: "batch-abandoned", batchId: record.batchId!, requests: chunk.items });
        chunk.settle();
      } else if (record.cancelRequested)
        chunk.nextPollAt = Math.min(chunk.nextPollAt, o.clock.now() + o.poll.minMs);
    }
  }

  /** Time kept between the last call and the point real time must start: a poll and a download. */
  #lastCallMargin(): number {
    return 2 * this.#c.options.poll.minMs;
  }

  /** When (clock ms) the live batches reach their last call; Infinity when there is none. */
  #lastCallAt(live: Chunk[]): number {
    const remaining = this.#c.remainingMs();
    if (remaining === undefined || !this.#fallbackViable) return Number.POSITIVE_INFINITY;
    const outstanding = live.reduce((n, c) => n + c.items, 0);
    const needed = this.#c.realtimeMs(outstanding);
    const cancelled = live.every((c) => c.record.cancelRequested);
    // Before it: the last call; after it: when real time must start (abandon).
    return (
      this.#c.options.clock.now() + remaining - needed - (cancelled ? 0 : this.#lastCallMargin())
    );
  }
}

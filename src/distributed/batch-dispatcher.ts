// The coordinator's side of a distributed batch's lines: `execute` (what the batch driver calls for
// each line) puts the line on the batch's BullMQ queue and resolves with its answer once a worker
// has journaled it in the results hash. The answer is found three ways, so none is missed: the
// done notices of the events stream (the usual way), the results hash itself when the line is
// submitted (answers journaled before this coordinator started: a resumed run pays nothing for
// them), and a periodic sweep (a notice lost to a trimmed stream or a Redis restart). A job that
// Redis lost is put back; a line whose job BullMQ failed (its workers died more often than allowed)
// ends with SALVO_WORKER_LOST.
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { BatchItem } from "../batch/input-line.ts";
import { type ItemOutcome, requestDigest } from "../batch/output-line.ts";
import type { Clock } from "../core/clock.ts";
import { RedisUnavailableError } from "../errors.ts";
import { type BatchKeys, jobIdOf, type LineJob } from "./batch-keys.ts";

type Pending = {
  index: number;
  digest: string;
  jobId: string;
  job: LineJob;
  resolve: (outcome: ItemOutcome) => void;
  reject: (error: unknown) => void;
  since: number;
  /** When the sweep last asked BullMQ about its job. */
  checked: number;
};

export type DispatcherOptions = {
  client: Redis;
  queue: Queue<LineJob>;
  keys: BatchKeys;
  clock: Clock;
  /** A job not heard of for this long is looked up in BullMQ (lost jobs are put back), ms. */
  lookupAfterMs: number;
};

/** "digest\njson" -> the outcome, if it answers `digest`. */
function parseResult(value: string | null, digest: string): ItemOutcome | undefined {
  if (value === null || !value.startsWith(`${digest}\n`)) return undefined;
  try {
    return JSON.parse(value.slice(digest.length + 1)) as ItemOutcome;
  } catch {
    return undefined;
  }
}

export class BatchDispatcher {
  readonly #options: DispatcherOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #byJob = new Map<string, number>();
  #toSubmit: Pending[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #scheduled = false;
  /** Lines answered from the results hash when submitted: journaled before this run. */
  fromRedis = 0;
  /** Jobs put back because Redis no longer had them. */
  requeued = 0;

  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  /** Lines submitted and not answered yet. */
  get outstanding(): number {
    return this.#pending.size;
  }

  /** The batch driver's `execute`: resolves with the line's answer, however long it takes. */
  execute = (item: BatchItem): Promise<ItemOutcome> => {
    const digest = requestDigest(item).toString("hex");
    return new Promise<ItemOutcome>((resolve, reject) => {
      const now = this.#options.clock.now();
      const pending: Pending = {
        index: item.index,
        digest,
        jobId: jobIdOf(item.index, digest),
        job: { i: item.index, d: digest, request: item.request },
        resolve,
        reject,
        since: now,
        checked: now,
      };
      this.#pending.set(item.index, pending);
      this.#byJob.set(pending.jobId, item.index);
      this.#toSubmit.push(pending);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#flushing = this.#flushing.then(() => this.#submit());
        });
      }
    });
  };

  /** Lines submitted together: those already answered in Redis resolve, the rest become jobs. */
  async #submit(): Promise<void> {
    const batch = this.#toSubmit.splice(0).filter((p) => this.#pending.has(p.index));
    if (batch.length === 0) return;
    const { client, queue, keys } = this.#options;
    try {
      const values = await client.hmget(keys.results, ...batch.map((p) => String(p.index)));
      const jobs: Pending[] = [];
      const stale: string[] = [];
      batch.forEach((p, k) => {
        const value = values[k] ?? null;
        const outcome = parseResult(value, p.digest);
        if (outcome !== undefined) {
          this.fromRedis++;
          this.#settle(p, outcome);
          return;
        }
        // An answer to an earlier version of an edited line is not this line's.
        if (value !== null) stale.push(String(p.index));
        jobs.push(p);
      });
      if (stale.length > 0) await client.hdel(keys.results, ...stale);
      if (jobs.length > 0) await queue.addBulk(jobs.map((p) => this.#jobOf(p)));
    } catch (error) {
      this.#fail(batch, error);
    }
  }

  #jobOf(p: Pending) {
    return {
      name: "line",
      data: p.job,
      opts: { jobId: p.jobId, removeOnComplete: true, removeOnFail: true },
    };
  }

  /** Done notices from the events stream. */
  async done(indices: number[]): Promise<void> {
    const waiting = indices
      .map((i) => this.#pending.get(i))
      .filter((p): p is Pending => p !== undefined);
    if (waiting.length === 0) return;
    await this.#collect(waiting);
  }

  async #collect(waiting: Pending[]): Promise<void> {
    const { client, keys } = this.#options;
    for (let k = 0; k < waiting.length; k += 1_000) {
      const chunk = waiting.slice(k, k + 1_000);
      const values = await client.hmget(keys.results, ...chunk.map((p) => String(p.index)));
      chunk.forEach((p, j) => {
        const outcome = parseResult(values[j] ?? null, p.digest);
        if (outcome !== undefined) this.#settle(p, outcome);
      });
    }
  }

  /** BullMQ failed a line's job (QueueEvents `failed`): unless it was journaled after all, the line fails. */
  async failed(jobId: string, reason: string): Promise<void> {
    const index = this.#byJob.get(jobId);
    const p = index === undefined ? undefined : this.#pending.get(index);
    if (p === undefined) return;
    await this.#collect([p]);
    if (!this.#pending.has(p.index)) return;
    const lost = /stalled more than allowable limit/.test(reason);
    this.#settle(p, {
      ok: false,
      error: {
        code: lost ? "SALVO_WORKER_LOST" : "SALVO_ERROR",
        message: lost
          ? `the line's job was lost with its worker more times than allowed (--max-stalled); a rerun runs it again`
          : `the line's job failed in its worker: ${reason}`,
      },
      attempts: 0,
      latencyMs: this.#options.clock.now() - p.since,
    });
  }

  /**
   * Collects answers whose notice was missed, and looks up jobs not heard of for a while: a job
   * Redis no longer has (lost in a restart) is put back.
   */
  async sweep(): Promise<void> {
    const now = this.#options.clock.now();
    const old = [...this.#pending.values()].filter((p) => now - p.since > 3_000);
    if (old.length === 0) return;
    await this.#collect(old);
    const { queue, lookupAfterMs } = this.#options;
    const due = old
      .filter((p) => this.#pending.has(p.index) && now - p.checked > lookupAfterMs)
      .slice(0, 100);
    for (const p of due) {
      p.checked = now;
      const state = await queue.getJobState(p.jobId);
      if (state !== "unknown" || !this.#pending.has(p.index)) continue;
      await this.#collect([p]);
      if (!this.#pending.has(p.index)) continue;
      this.requeued++;
      await queue.add("line", p.job, this.#jobOf(p).opts);
    }
  }

  /** Ends every line still waiting with `outcome` (the grace period after an interrupt ran out). */
  abandon(reason: string): void {
    for (const p of [...this.#pending.values()])
      this.#settle(p, {
        ok: false,
        error: { code: "SALVO_ABORTED", message: reason },
        attempts: 0,
        latencyMs: this.#options.clock.now() - p.since,
      });
  }

  /** Waits for the submissions in progress. */
  async settled(): Promise<void> {
    await this.#flushing;
  }

  #settle(p: Pending, outcome: ItemOutcome): void {
    if (!this.#pending.delete(p.index)) return;
    this.#byJob.delete(p.jobId);
    p.resolve(outcome);
  }

  #fail(batch: Pending[], error: unknown): void {
    const failure = new RedisUnavailableError(
      `Redis refused the batch's lines: ${(error as Error).message}`,
      {},
      { cause: error },
    );
    for (const p of batch) {
      if (!this.#pending.delete(p.index)) continue;
      this.#byJob.delete(p.jobId);
      p.reject(failure);
    }
  }
}

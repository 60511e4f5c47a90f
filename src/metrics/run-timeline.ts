// A run over time, built only from the scheduler's events (like RunMetrics, whose summary gives
// the totals): per time bucket the calls that ended, attempts started, 429s, retries and
// cooldowns, the mean attempts in flight against the limit in force, the deepest queue; and a
// histogram of the successful attempts' latencies. The buckets start at 100 ms and double in
// width whenever there would be more than 240, so a run of any length keeps a few hundred points.
// It is what the HTML report draws its charts from.

import type { Counts, SchedulerEvents } from "../core/events.ts";
import type { ItemId } from "../core/outcome.ts";
import type { EventSource } from "./run-metrics.ts";

/** One time bucket. Times are ms since the run started. */
export type TimelineBucket = {
  /** The bucket's start. */
  t: number;
  succeeded: number;
  failed: number;
  /** Attempts started. */
  attempts: number;
  /** 429 answers. */
  rateLimited: number;
  /** Retries scheduled. */
  retries: number;
  /** Cooldowns that began (admission paused for the whole key). */
  cooldowns: number;
  /** Attempts in flight, averaged over the bucket's time. */
  inFlight: number;
  /** The concurrency limit in force at the bucket's end. */
  limit: number;
  /** The most items waiting for admission during the bucket. */
  queued: number;
};

/** A latency histogram: counts per bin, the bins' upper edges in ms (the last one open). */
export type LatencyBins = { edgesMs: number[]; counts: number[] };

export type RunSeries = {
  /** The width of every bucket, ms. */
  bucketMs: number;
  buckets: TimelineBucket[];
  /** Cooldowns as [start, end] ms since the run started (at most the first 500). */
  pauses: Array<[number, number]>;
  /** Latencies of the successful attempts. */
  latency: LatencyBins;
};

/** Upper edges of the latency bins: 1 ms to about 17 minutes, each 1.5 times the last. */
const EDGES_MS: number[] = (() => {
  const edges: number[] = [];
  for (let edge = 1; edge < 1_048_576; edge *= 1.5) edges.push(Math.round(edge * 1000) / 1000);
  return edges;
})();

const FIRST_BUCKET_MS = 100;
const MAX_BUCKETS = 240;
const MAX_PAUSES = 500;

type Bucket = Omit<TimelineBucket, "t" | "inFlight"> & { inFlightMs: number };

function emptyBucket(limit: number): Bucket {
  return {
    succeeded: 0,
    failed: 0,
    attempts: 0,
    rateLimited: 0,
    retries: 0,
    cooldowns: 0,
    inFlightMs: 0,
    limit,
    queued: 0,
  };
}

function isEmpty(b: Bucket): boolean {
  return (
    b.succeeded + b.failed + b.attempts + b.rateLimited + b.retries + b.cooldowns === 0 &&
    b.inFlightMs === 0
  );
}

export class RunTimeline {
  readonly #startedAt: number;
  #width = FIRST_BUCKET_MS;
  #buckets: Bucket[] = [];
  #at: number;
  #inFlight = 0;
  #limit = 0;
  readonly #started = new Map<ItemId, number>();
  readonly #latency = new Array<number>(EDGES_MS.length + 1).fill(0);
  readonly #pauses: Array<[number, number]> = [];

  /** `startedAt`: the clock time the run started, ms (the scheduler's clock). */
  constructor(startedAt: number) {
    this.#startedAt = startedAt;
    this.#at = startedAt;
  }

  /** Subscribes to a scheduler's events; returns a function that unsubscribes. */
  attach(source: EventSource): () => void {
    const offs = [
      source.on("queued", (e) => this.#counts(e)),
      source.on("started", (e) => {
        this.#counts(e);
        this.#bucket(e.at).attempts++;
        this.#started.set(e.id, e.at);
      }),
      source.on("attempt-failed", (e) => {
        this.#counts(e);
        this.#started.delete(e.id);
      }),
      source.on("rate-limited", (e) => {
        this.#counts(e);
        this.#bucket(e.at).rateLimited++;
      }),
      source.on("retry-scheduled", (e) => {
        this.#counts(e);
        this.#bucket(e.at).retries++;
      }),
      source.on("cooldown", (e) => {
        this.#counts(e);
        this.#bucket(e.at).cooldowns++;
        if (this.#pauses.length < MAX_PAUSES) {
          this.#pauses.push([e.at - this.#startedAt, e.until - this.#startedAt]);
        }
      }),
      source.on("succeeded", (e) => this.#ended(e, true)),
      source.on("failed", (e) => this.#ended(e, false)),
      source.on("limit-changed", (e) => this.#counts(e)),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  #ended(e: SchedulerEvents["succeeded"] | SchedulerEvents["failed"], ok: boolean): void {
    this.#counts(e);
    const bucket = this.#bucket(e.at);
    if (ok) bucket.succeeded++;
    else bucket.failed++;
    const started = this.#started.get(e.id);
    this.#started.delete(e.id);
    if (ok && started !== undefined) {
      const ms = e.at - started;
      let bin = EDGES_MS.findIndex((edge) => ms <= edge);
      if (bin < 0) bin = EDGES_MS.length;
      this.#latency[bin]!++;
    }
  }

  /** The bucket holding clock time `at`, created (and the buckets widened) as needed. */
  #bucket(at: number): Bucket {
    let index = Math.max(0, Math.floor((at - this.#startedAt) / this.#width));
    while (index >= MAX_BUCKETS) {
      this.#widen();
      index = Math.max(0, Math.floor((at - this.#startedAt) / this.#width));
    }
    return this.#bucketAt(index);
  }

  #bucketAt(index: number): Bucket {
    while (this.#buckets.length <= index) this.#buckets.push(emptyBucket(this.#limit));
    return this.#buckets[index]!;
  }

  #widen(): void {
    const merged: Bucket[] = [];
    for (let i = 0; i < this.#buckets.length; i += 2) {
      const a = this.#buckets[i]!;
      const b = this.#buckets[i + 1];
      if (b === undefined) {
        merged.push(a);
        continue;
      }
      merged.push({
        succeeded: a.succeeded + b.succeeded,
        failed: a.failed + b.failed,
        attempts: a.attempts + b.attempts,
        rateLimited: a.rateLimited + b.rateLimited,
        retries: a.retries + b.retries,
        cooldowns: a.cooldowns + b.cooldowns,
        inFlightMs: a.inFlightMs + b.inFlightMs,
        limit: b.limit,
        queued: Math.max(a.queued, b.queued),
      });
    }
    this.#buckets = merged;
    this.#width *= 2;
  }

  /** Integrates the attempts in flight up to `at`, then takes the event's counts. */
  #counts(counts: Counts): void {
    const from = this.#at;
    const to = Math.max(from, counts.at);
    // Widened first, so the width holds through the loop; indices are integers, so it ends.
    this.#bucket(to);
    const start = this.#startedAt;
    const width = this.#width;
    const first = Math.max(0, Math.floor((from - start) / width));
    const last = Math.max(first, Math.floor((to - start) / width));
    for (let i = first; i <= last; i++) {
      const bucket = this.#bucketAt(i);
      const a = Math.max(from, start + i * width);
      const b = Math.min(to, start + (i + 1) * width);
      if (b > a) bucket.inFlightMs += this.#inFlight * (b - a);
      bucket.limit = this.#limit;
    }
    this.#at = to;
    this.#inFlight = counts.inFlight;
    this.#limit = counts.limit;
    const bucket = this.#bucketAt(last);
    bucket.limit = counts.limit;
    if (counts.queued > bucket.queued) bucket.queued = counts.queued;
  }

  /** The series up to clock time `endedAt` (the run's end). */
  series(endedAt: number): RunSeries {
    this.#counts({ at: endedAt, inFlight: this.#inFlight, queued: 0, limit: this.#limit });
    const width = this.#width;
    const end = endedAt - this.#startedAt;
    // A bucket that starts at the end and saw nothing is not part of the run.
    let buckets = this.#buckets;
    while (buckets.length > 1 && (buckets.length - 1) * width >= end && isEmpty(buckets.at(-1)!)) {
      buckets = buckets.slice(0, -1);
    }
    return {
      bucketMs: width,
      buckets: buckets.map((b, i) => {
        const t = i * width;
        const span = Math.max(1e-9, Math.min(width, end - t));
        const { inFlightMs, ...rest } = b;
        return { t, ...rest, inFlight: Math.round((inFlightMs / span) * 1000) / 1000 };
      }),
      pauses: this.#pauses.map(([a, b]) => [a, b] as [number, number]),
      latency: { edgesMs: EDGES_MS.slice(), counts: this.#latency.slice() },
    };
  }
}

// What the gateway counts, per upstream and per tenant: one set of figures that the dashboard's
// status endpoint and Prometheus' /metrics both read, so they always agree. Scheduler figures
// (attempts, retries, the upstream's 429s) come from the scheduler's events; call figures
// (requests, statuses, tokens, cost, refusals, latency) from the gateway's own handling.
import type { Scheduler } from "../core/scheduler.ts";
import type { LatencySummary } from "../metrics/latency-histogram.ts";
import { RateWindow } from "../metrics/rate-window.ts";
import { WindowedLatency } from "./windowed-latency.ts";

/** Why the gateway itself turned a request away. */
export type RefusalReason =
  | "unauthorized"
  | "bad_request"
  | "model_not_allowed"
  | "queue_full"
  | "wait_too_long"
  | "tenant_rate_limit"
  | "budget"
  | "shutting_down";

/** Figures of one (upstream, tenant) pair, or their sums. */
export class CallFigures {
  /** Requests routed (received for an upstream). */
  received = 0;
  /** Answers sent, by HTTP status. */
  readonly byStatus = new Map<number, number>();
  inputTokens = 0;
  outputTokens = 0;
  costUsd = 0;
  /** Answers from the response cache. */
  cacheHits = 0;
  /** Answers shared with an identical call in flight. */
  shared = 0;
  /** The gateway's own refusals, by reason. */
  readonly refused = new Map<RefusalReason, number>();
  /** Calls of this pair in flight now (admitted or waiting), as the gateway handles them. */
  active = 0;
  readonly latency = new WindowedLatency();
  readonly requestRate = new RateWindow(60);
  readonly tokenRate = new RateWindow(60);

  answered(): number {
    let n = 0;
    for (const count of this.byStatus.values()) n += count;
    return n;
  }
}

/** The scheduler's own counts of one upstream. */
export class SchedulerFigures {
  /** Attempts started (each retry is one more). */
  attempts = 0;
  retries = 0;
  /** 429s the upstream answered (each paused the key). */
  rateLimited = 0;
  cooldowns = 0;
  readonly attemptRate = new RateWindow(60);
  /** Exponential average of an attempt's latency, ms (for wait estimates). */
  latencyEmaMs: number | undefined;
  /** Exponential average of the tokens a call reserves. */
  tokensEma: number | undefined;
}

const EMA = 0.2;

export class GatewayStats {
  readonly startedAt: number;
  readonly #now: () => number;
  readonly #pairs = new Map<string, CallFigures>();
  readonly #schedulers = new Map<string, SchedulerFigures>();
  /** Refusals before a tenant or upstream was known (no key, bad body), by reason. */
  readonly unattributed = new Map<RefusalReason, number>();

  constructor(now: () => number) {
    this.#now = now;
    this.startedAt = now();
  }

  /** The figures of one (upstream, tenant) pair; created on first use. */
  pair(upstream: string, tenant: string): CallFigures {
    const key = `${upstream}\u0000${tenant}`;
    let figures = this.#pairs.get(key);
    if (figures === undefined) {
      figures = new CallFigures();
      this.#pairs.set(key, figures);
    }
    return figures;
  }

  /** Every pair, with its names. */
  *pairs(): IterableIterator<{ upstream: string; tenant: string; figures: CallFigures }> {
    for (const [key, figures] of this.#pairs) {
      const [upstream = "", tenant = ""] = key.split("\u0000");
      yield { upstream, tenant, figures };
    }
  }

  scheduler(upstream: string): SchedulerFigures {
    let figures = this.#schedulers.get(upstream);
    if (figures === undefined) {
      figures = new SchedulerFigures();
      this.#schedulers.set(upstream, figures);
    }
    return figures;
  }

  /** Counts an upstream's scheduler events. Returns a function that stops listening. */
  watch(upstream: string, scheduler: Scheduler): () => void {
    const figures = this.scheduler(upstream);
    const stops = [
      scheduler.on("started", (e) => {
        figures.attempts++;
        figures.attemptRate.record(e.at);
      }),
      scheduler.on("retry-scheduled", () => {
        figures.retries++;
      }),
      scheduler.on("rate-limited", () => {
        figures.rateLimited++;
      }),
      scheduler.on("cooldown", () => {
        figures.cooldowns++;
      }),
      scheduler.on("attempt-failed", (e) => {
        if (e.result !== "rate_limit") ema(figures, "latencyEmaMs", e.latencyMs);
      }),
      scheduler.on("succeeded", (e) => {
        if (e.attempts === 1) ema(figures, "latencyEmaMs", e.latencyMs);
      }),
    ];
    return () => {
      for (const stop of stops) stop();
    };
  }

  /** A call's reserved tokens, for the average the wait estimates use. */
  noteReserved(upstream: string, tokens: number): void {
    ema(this.scheduler(upstream), "tokensEma", tokens);
  }

  refuse(upstream: string | undefined, tenant: string | undefined, reason: RefusalReason): void {
    const map =
      upstream === undefined || tenant === undefined
        ? this.unattributed
        : this.pair(upstream, tenant).refused;
    map.set(reason, (map.get(reason) ?? 0) + 1);
  }

  /** Sums over the pairs that `keep` selects, with their latency over the last minute. */
  sum(keep: (upstream: string, tenant: string) => boolean): {
    figures: CallFigures;
    latency: LatencySummary;
  } {
    const total = new CallFigures();
    const histograms: WindowedLatency[] = [];
    for (const { upstream, tenant, figures } of this.pairs()) {
      if (!keep(upstream, tenant)) continue;
      histograms.push(figures.latency);
      total.received += figures.received;
      total.inputTokens += figures.inputTokens;
      total.outputTokens += figures.outputTokens;
      total.costUsd += figures.costUsd;
      total.cacheHits += figures.cacheHits;
      total.shared += figures.shared;
      total.active += figures.active;
      for (const [status, n] of figures.byStatus)
        total.byStatus.set(status, (total.byStatus.get(status) ?? 0) + n);
      for (const [reason, n] of figures.refused)
        total.refused.set(reason, (total.refused.get(reason) ?? 0) + n);
    }
    return { figures: total, latency: WindowedLatency.merge(histograms, this.#now()) };
  }

  /** Requests and tokens per minute over the last minute, summed over the selected pairs. */
  rates(keep: (upstream: string, tenant: string) => boolean): {
    requestsPerMinute: number;
    tokensPerMinute: number;
  } {
    const now = this.#now();
    const elapsed = now - this.startedAt;
    let requestsPerMinute = 0;
    let tokensPerMinute = 0;
    for (const { upstream, tenant, figures } of this.pairs()) {
      if (!keep(upstream, tenant)) continue;
      requestsPerMinute += figures.requestRate.perMinute(now, elapsed);
      tokensPerMinute += figures.tokenRate.perMinute(now, elapsed);
    }
    return { requestsPerMinute, tokensPerMinute };
  }
}

function ema<K extends "latencyEmaMs" | "tokensEma">(
  figures: SchedulerFigures,
  key: K,
  value: number,
): void {
  const previous = figures[key];
  figures[key] = previous === undefined ? value : previous + EMA * (value - previous);
}

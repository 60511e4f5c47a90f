// The gateway's figures as JSON (GET /salvo/status), for the dashboard and for scripts: per
// upstream, in flight against the limit (and its recent history, to see how `auto` moved it),
// requests and tokens per minute against the limits in force, queue depth, 429s and retries,
// latency percentiles, cost; per tenant, its own share. A tenant that is not an admin sees its
// own figures only: no other tenant's name or numbers.
import type { Clock, TimerHandle } from "../core/clock.ts";
import type { LatencySummary } from "../metrics/latency-histogram.ts";
import type { CallFigures, GatewayStats, RefusalReason } from "./gateway-stats.ts";
import type { Tenant } from "./tenant.ts";
import type { LimitsInForce, Upstream } from "./upstream.ts";

/** One second of an upstream's history. */
export type HistorySample = {
  /** Wall-clock time, ms since the epoch. */
  t: number;
  inFlight: number;
  limit: number;
  queued: number;
  requestsPerMinute: number;
  tokensPerMinute: number;
};

export type CallCounts = {
  /** Requests routed to it (in flight ones included). */
  requests: number;
  /** Answers sent, by HTTP status. */
  byStatus: Record<string, number>;
  /** The gateway's own refusals (429 queue full, tenant limits, budget...), by reason. */
  refused: Partial<Record<RefusalReason, number>>;
  cacheHits: number;
  shared: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  /** Requests and tokens per minute, over the last minute. */
  requestsPerMinute: number;
  tokensPerMinute: number;
  /** End-to-end latency over the last minute, ms. */
  latency: LatencySummary;
};

export type UpstreamStatus = {
  name: string;
  provider: string;
  /** The base URL (without any credentials). */
  baseUrl: string;
  concurrency: {
    mode: "auto" | "fixed";
    limit: number;
    inFlight: number;
    /** Waiting for admission (all tenants). */
    queued: number;
    maxQueued: number;
  };
  /** Per-minute limits in force: set, or learned from the upstream's headers. */
  limits: LimitsInForce;
  /** Per-minute limits as configured (the rest were learned). */
  configured: LimitsInForce;
  attempts: number;
  retries: number;
  /** 429s the upstream answered (each paused the key). */
  rateLimited: number;
  cooldowns: number;
  coolingDownMs: number;
  budget?:
    | { maxCostUsd: number | null; spentUsd: number; maxTokens: number | null; spentTokens: number }
    | undefined;
  /** The viewer's calls (every tenant's for an admin). */
  calls: CallCounts;
  /** The last minutes, one sample a second (aggregate figures only). */
  history: HistorySample[];
};

export type TenantStatus = {
  name: string;
  priority: number;
  admin: boolean;
  /** Its attempts holding a slot, over every upstream. */
  inFlight: number;
  /** Its requests waiting for admission, over every upstream. */
  queued: number;
  limits: {
    requestsPerMinute: number | null;
    tokensPerMinute: number | null;
    maxConcurrency: number | null;
  };
  budget?:
    | { maxCostUsd: number | null; spentUsd: number; maxTokens: number | null; spentTokens: number }
    | undefined;
  calls: CallCounts;
};

export type GatewayStatus = {
  /** Wall-clock time of the figures, ms since the epoch. */
  now: number;
  uptimeMs: number;
  draining: boolean;
  viewer: { tenant: string; admin: boolean };
  upstreams: UpstreamStatus[];
  tenants: TenantStatus[];
};

/** Samples every upstream once a second, for the last `seconds`. */
export class HistoryRecorder {
  readonly #clock: Clock;
  readonly #upstreams: readonly Upstream[];
  readonly #stats: GatewayStats;
  readonly #size: number;
  readonly #samples = new Map<string, HistorySample[]>();
  #timer: TimerHandle | undefined;
  #stopped = false;

  constructor(clock: Clock, upstreams: readonly Upstream[], stats: GatewayStats, seconds = 600) {
    this.#clock = clock;
    this.#upstreams = upstreams;
    this.#stats = stats;
    this.#size = seconds;
    for (const upstream of upstreams) this.#samples.set(upstream.name, []);
    this.#schedule();
  }

  of(upstream: string): HistorySample[] {
    return this.#samples.get(upstream) ?? [];
  }

  /** Takes one sample of every upstream now. */
  sample(): void {
    const t = Date.now();
    for (const upstream of this.#upstreams) {
      const rates = this.#stats.rates((u) => u === upstream.name);
      const samples = this.#samples.get(upstream.name)!;
      samples.push({
        t,
        inFlight: upstream.scheduler.inFlight,
        limit: upstream.scheduler.limit,
        queued: upstream.scheduler.queued,
        requestsPerMinute: Math.round(rates.requestsPerMinute),
        tokensPerMinute: Math.round(rates.tokensPerMinute),
      });
      if (samples.length > this.#size) samples.splice(0, samples.length - this.#size);
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.sample();
      this.#schedule();
    }, 1000);
  }
}

export type StatusSources = {
  /** The viewing tenant's name. */
  viewer: string;
  admin: boolean;
  upstreams: readonly Upstream[];
  tenants: readonly Tenant[];
  stats: GatewayStats;
  history: HistoryRecorder;
  draining: boolean;
  now: number;
};

function counts(
  stats: GatewayStats,
  keep: (upstream: string, tenant: string) => boolean,
): CallCounts {
  const { figures, latency } = stats.sum(keep);
  const rates = stats.rates(keep);
  return {
    requests: figures.received,
    byStatus: Object.fromEntries([...figures.byStatus].sort((a, b) => a[0] - b[0])),
    refused: Object.fromEntries(figures.refused) as CallCounts["refused"],
    cacheHits: figures.cacheHits,
    shared: figures.shared,
    inputTokens: figures.inputTokens,
    outputTokens: figures.outputTokens,
    costUsd: round(figures.costUsd),
    requestsPerMinute: Math.round(rates.requestsPerMinute * 10) / 10,
    tokensPerMinute: Math.round(rates.tokensPerMinute),
    latency,
  };
}

function budgetOf(budget: Tenant["budget"]): TenantStatus["budget"] {
  if (budget === undefined) return undefined;
  return {
    maxCostUsd: Number.isFinite(budget.maxCostUsd) ? budget.maxCostUsd : null,
    spentUsd: round(budget.spent.usd),
    maxTokens: Number.isFinite(budget.maxTokens) ? budget.maxTokens : null,
    spentTokens: budget.spent.tokens,
  };
}

function round(usd: number): number {
  return Math.round(usd * 1e8) / 1e8;
}

/** A base URL without user info, query or fragment. */
export function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`.replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
  }
}

export function gatewayStatus(sources: StatusSources): GatewayStatus {
  const { viewer, admin, stats } = sources;
  const mine = (tenant: string) => admin || tenant === viewer;
  const upstreams = sources.upstreams.map((upstream): UpstreamStatus => {
    const scheduler = upstream.scheduler;
    const figures = stats.scheduler(upstream.name);
    return {
      name: upstream.name,
      provider: upstream.kind,
      baseUrl: safeUrl(upstream.provider.baseUrl),
      concurrency: {
        mode: upstream.concurrencyMode,
        limit: scheduler.limit,
        inFlight: scheduler.inFlight,
        queued: scheduler.queued,
        maxQueued: upstream.maxQueued,
      },
      limits: upstream.limitsInForce(),
      configured: Object.fromEntries(
        Object.entries(upstream.configured).filter(([, v]) => v !== undefined),
      ),
      attempts: figures.attempts,
      retries: figures.retries,
      rateLimited: figures.rateLimited,
      cooldowns: figures.cooldowns,
      coolingDownMs: Math.max(0, Math.round(scheduler.cooldownUntil - sources.now)),
      budget: admin ? budgetOf(upstream.budget) : undefined,
      calls: counts(stats, (u, t) => u === upstream.name && mine(t)),
      history: sources.history.of(upstream.name),
    };
  });
  const tenants = sources.tenants
    .filter((tenant) => mine(tenant.name))
    .map((tenant): TenantStatus => {
      let inFlight = 0;
      let queued = 0;
      for (const upstream of sources.upstreams) {
        const load = upstream.tenantLoad(tenant.name);
        inFlight += load.inFlight;
        queued += load.queued;
      }
      const limits = tenant.limiter.limits;
      return {
        name: tenant.name,
        priority: tenant.priority,
        admin: tenant.admin,
        inFlight,
        queued,
        limits: {
          requestsPerMinute: limits.requestsPerMinute ?? null,
          tokensPerMinute: limits.tokensPerMinute ?? null,
          maxConcurrency: tenant.maxConcurrency ?? null,
        },
        budget: budgetOf(tenant.budget),
        calls: counts(stats, (_u, t) => t === tenant.name),
      };
    });
  return {
    now: Date.now(),
    uptimeMs: Math.round(sources.now - stats.startedAt),
    draining: sources.draining,
    viewer: { tenant: viewer, admin },
    upstreams,
    tenants,
  };
}

export type { CallFigures };

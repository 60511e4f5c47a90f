// GET /metrics: the gateway's figures in Prometheus' text format (prom-client), read at scrape
// time from the same objects the dashboard's status endpoint reads, so the two always agree.
// Counters and gauges are views (`collect`); request durations are a Prometheus histogram.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { GatewayStats } from "./gateway-stats.ts";
import type { Tenant } from "./tenant.ts";
import type { Upstream } from "./upstream.ts";

export type GatewayMetricsSources = {
  upstreams: readonly Upstream[];
  tenants: () => readonly Tenant[];
  stats: GatewayStats;
  /** Node's own process metrics (memory, CPU, event loop lag, GC). */
  processMetrics: boolean;
  /** The schedulers' clock, ms. */
  now: () => number;
};

const PREFIX = "salvo_gateway_";
const DIMENSION_LABEL = {
  requests: "requests",
  tokens: "tokens",
  inputTokens: "input_tokens",
  outputTokens: "output_tokens",
} as const;

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #duration: Histogram<"upstream" | "tenant">;

  constructor(sources: GatewayMetricsSources) {
    const { upstreams, stats } = sources;
    const registers = [this.registry];
    if (sources.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });

    const perUpstream = (
      name: string,
      help: string,
      value: (upstream: Upstream) => number,
      type: "gauge" | "counter" = "gauge",
    ) => {
      const Metric = type === "gauge" ? Gauge : Counter;
      new Metric({
        name: `${PREFIX}${name}`,
        help,
        labelNames: ["upstream"] as const,
        registers,
        collect(this: Gauge<"upstream"> | Counter<"upstream">) {
          this.reset();
          for (const upstream of upstreams) {
            const v = value(upstream);
            if (this instanceof Gauge) this.set({ upstream: upstream.name }, v);
            else (this as Counter<"upstream">).inc({ upstream: upstream.name }, v);
          }
        },
      });
    };
    perUpstream(
      "in_flight",
      "Attempts holding a slot of the upstream now.",
      (u) => u.scheduler.inFlight,
    );
    perUpstream(
      "concurrency_limit",
      "The upstream's concurrency limit now (auto moves it).",
      (u) => u.scheduler.limit,
    );
    perUpstream(
      "queued",
      "Requests waiting for admission to the upstream.",
      (u) => u.scheduler.queued,
    );
    perUpstream(
      "cooldown_seconds",
      "Seconds left of the upstream's shared cooldown (0: not paused).",
      (u) => Math.max(0, (u.scheduler.cooldownUntil - sources.now()) / 1000),
    );
    perUpstream(
      "attempts_total",
      "Attempts started against the upstream (each retry is one).",
      (u) => stats.scheduler(u.name).attempts,
      "counter",
    );
    perUpstream(
      "retries_total",
      "Retries scheduled.",
      (u) => stats.scheduler(u.name).retries,
      "counter",
    );
    perUpstream(
      "upstream_rate_limited_total",
      "429s the upstream answered (each paused the key).",
      (u) => stats.scheduler(u.name).rateLimited,
      "counter",
    );

    new Gauge({
      name: `${PREFIX}rate_limit_per_minute`,
      help: "Per-minute limits in force for the upstream (set, or learned from its headers).",
      labelNames: ["upstream", "dimension"] as const,
      registers,
      collect() {
        this.reset();
        for (const upstream of upstreams)
          for (const [dimension, limit] of Object.entries(upstream.limitsInForce()))
            if (limit !== undefined)
              this.set(
                {
                  upstream: upstream.name,
                  dimension: DIMENSION_LABEL[dimension as keyof typeof DIMENSION_LABEL],
                },
                limit,
              );
      },
    });

    const pairCounter = (
      name: string,
      help: string,
      value: (figures: ReturnType<GatewayStats["pair"]>) => number,
    ) =>
      new Counter({
        name: `${PREFIX}${name}`,
        help,
        labelNames: ["upstream", "tenant"] as const,
        registers,
        collect() {
          this.reset();
          for (const { upstream, tenant, figures } of stats.pairs())
            this.inc({ upstream, tenant }, value(figures));
        },
      });
    pairCounter(
      "requests_received_total",
      "Requests routed to the upstream (those in flight included).",
      (f) => f.received,
    );
    pairCounter(
      "cache_hits_total",
      "Answers from the response cache (no call).",
      (f) => f.cacheHits,
    );
    pairCounter(
      "shared_total",
      "Answers shared with an identical call in flight.",
      (f) => f.shared,
    );
    pairCounter("cost_usd_total", "What the answers cost, USD.", (f) => f.costUsd);

    new Counter({
      name: `${PREFIX}responses_total`,
      help: "Answers sent, by HTTP status.",
      labelNames: ["upstream", "tenant", "status"] as const,
      registers,
      collect() {
        this.reset();
        for (const { upstream, tenant, figures } of stats.pairs())
          for (const [status, n] of figures.byStatus)
            this.inc({ upstream, tenant, status: String(status) }, n);
      },
    });
    new Counter({
      name: `${PREFIX}tokens_total`,
      help: "Tokens the answers used, by direction.",
      labelNames: ["upstream", "tenant", "direction"] as const,
      registers,
      collect() {
        this.reset();
        for (const { upstream, tenant, figures } of stats.pairs()) {
          this.inc({ upstream, tenant, direction: "input" }, figures.inputTokens);
          this.inc({ upstream, tenant, direction: "output" }, figures.outputTokens);
        }
      },
    });
    new Counter({
      name: `${PREFIX}refused_total`,
      help: "Requests the gateway itself turned away (queue full, wait too long, tenant limits, budget, no key...).",
      labelNames: ["upstream", "tenant", "reason"] as const,
      registers,
      collect() {
        this.reset();
        for (const { upstream, tenant, figures } of stats.pairs())
          for (const [reason, n] of figures.refused) this.inc({ upstream, tenant, reason }, n);
        for (const [reason, n] of stats.unattributed)
          this.inc({ upstream: "", tenant: "", reason }, n);
      },
    });
    new Gauge({
      name: `${PREFIX}tenant_in_flight`,
      help: "A tenant's attempts holding a slot, over every upstream.",
      labelNames: ["tenant"] as const,
      registers,
      collect() {
        this.reset();
        for (const tenant of sources.tenants()) {
          let n = 0;
          for (const upstream of upstreams) n += upstream.tenantLoad(tenant.name).inFlight;
          this.set({ tenant: tenant.name }, n);
        }
      },
    });
    new Gauge({
      name: `${PREFIX}tenant_budget_spent_usd`,
      help: "What a tenant with a cost budget has spent, USD (its limit: tenant_budget_limit_usd).",
      labelNames: ["tenant"] as const,
      registers,
      collect() {
        this.reset();
        for (const tenant of sources.tenants())
          if (tenant.budget) this.set({ tenant: tenant.name }, tenant.budget.spent.usd);
      },
    });
    new Gauge({
      name: `${PREFIX}tenant_budget_limit_usd`,
      help: "A tenant's cost budget, USD.",
      labelNames: ["tenant"] as const,
      registers,
      collect() {
        this.reset();
        for (const tenant of sources.tenants())
          if (tenant.budget && Number.isFinite(tenant.budget.maxCostUsd))
            this.set({ tenant: tenant.name }, tenant.budget.maxCostUsd);
      },
    });
    this.#duration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: "From a call's admission request to its answer (a stream: to its last event), seconds.",
      labelNames: ["upstream", "tenant"] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers,
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observe(upstream: string, tenant: string, seconds: number): void {
    this.#duration.observe({ upstream, tenant }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

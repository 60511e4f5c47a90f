// One upstream (provider, base URL, key): the one scheduler every request to it goes through,
// from every tenant and every process, with everything `salvo run` has. Two Salvo clients share
// that scheduler (and the budget, prices and audit log): one with single-flight and the response
// cache for answers that can be shared, one without them for streams (each client reads its own
// events) and for requests with forwarded headers that may change the answer.
import type { CallAuditor } from "../audit/call-auditor.ts";
import type { ResponseCache } from "../cache/response-cache.ts";
import type { AdmissionGate } from "../core/admission-gate.ts";
import type { Clock } from "../core/clock.ts";
import { AdaptiveConcurrency } from "../core/concurrency/adaptive-concurrency.ts";
import type { ConcurrencyController } from "../core/concurrency/concurrency-controller.ts";
import type { RateDimension } from "../core/limits/limit.ts";
import type { RetryOptions } from "../core/retry/default-retry-policy.ts";
import { Scheduler } from "../core/scheduler.ts";
import type { Scope } from "../core/scope.ts";
import { Budget } from "../cost/budget.ts";
import type { Pricing } from "../cost/pricing.ts";
import { Salvo } from "../salvo.ts";
import type { SchedulerFigures } from "./gateway-stats.ts";
import { type ModelMatcher, modelMatcher } from "./model-pattern.ts";
import { type UpstreamKind, UpstreamProvider } from "./upstream-provider.ts";

export type UpstreamOptions = {
  /** A unique name, in metrics, logs and the dashboard. @default the provider's name */
  name?: string | undefined;
  /** The wire format: `openai` (any OpenAI-compatible server) or `anthropic`. */
  provider: UpstreamKind;
  /** OpenAI: the base URL with `/v1`; Anthropic: the origin. */
  baseUrl: string;
  /** The upstream's API key. Sent to the upstream only; never in a response, log line or file. */
  apiKey: string;
  /** Models served by this upstream (exact names or `*` patterns). @default every model */
  models?: readonly string[] | undefined;
  /** Extra headers for every upstream request. @default none */
  headers?: Readonly<Record<string, string>> | undefined;
  /** `"auto"` (adaptive), a number, or a controller. @default "auto" */
  concurrency?: number | "auto" | ConcurrencyController | undefined;
  /** The most calls `auto` may have in flight. @default 256 */
  maxConcurrency?: number | undefined;
  /** Requests per minute. @default learned from the upstream's headers */
  requestsPerMinute?: number | undefined;
  /** Input + output tokens per minute (OpenAI TPM). @default learned */
  tokensPerMinute?: number | undefined;
  /** Input tokens per minute (Anthropic ITPM). @default learned */
  inputTokensPerMinute?: number | undefined;
  /** Output tokens per minute (Anthropic OTPM). @default learned */
  outputTokensPerMinute?: number | undefined;
  /** Seconds of each per-minute limit that may go at once. @default 1 */
  burstSeconds?: number | undefined;
  /** Retry settings; `maxAttempts` counts the first. @default {maxAttempts: 5} */
  retry?: RetryOptions | undefined;
  /** Per-attempt timeout, ms (a stream's whole length included). @default 600_000 */
  timeoutMs?: number | undefined;
  /**
   * The longest Retry-After the upstream may ask for: a longer one fails the call at once
   * (SALVO_RETRY_AFTER_TOO_LONG) instead of holding it, ms. @default 120_000
   */
  maxRetryAfterMs?: number | undefined;
  /** Most USD this upstream may spend while the gateway runs. @default none */
  maxCostUsd?: number | undefined;
  /** Most tokens (input + output) this upstream may use while the gateway runs. @default none */
  maxTokens?: number | undefined;
  /** Most requests waiting for admission; past it, 429 with a retry-after. @default 1_024 */
  maxQueued?: number | undefined;
  /** Longest expected wait for admission; a longer one is refused at once (429). @default 120_000 */
  maxWaitMs?: number | undefined;
  /** Anthropic's API version when the client sends none. @default "2023-06-01" */
  anthropicVersion?: string | undefined;
  /** Output tokens reserved for an OpenAI request without `max_tokens`. @default 4096 */
  defaultMaxTokens?: number | undefined;
  /** A fetch for upstream calls, instead of Node's http client. @default Node's http/https */
  fetch?: typeof fetch | undefined;
  /**
   * An admission shared with other gateways (`SharedAdmission` on Redis, `salvo serve --redis`):
   * every attempt is admitted there too, so several gateways hold this upstream's limits together.
   * Pair it with a `SharedConcurrency` as `concurrency`. @default none (this gateway alone)
   */
  gate?: AdmissionGate | undefined;
};

/** How long a listing of the upstream's models is reused, ms. */
const MODEL_LIST_MS = 60_000;

export type UpstreamShared = {
  clock: Clock;
  audit: CallAuditor | undefined;
  cache: ResponseCache | undefined;
  shareSamples: boolean;
  pricing: Pricing;
  figures: SchedulerFigures;
};

/** The limits of one upstream as they stand (set, or learned from its headers). */
export type LimitsInForce = Partial<Record<RateDimension, number>>;

export class Upstream {
  readonly name: string;
  readonly kind: UpstreamKind;
  readonly provider: UpstreamProvider;
  readonly scheduler: Scheduler;
  /** Single-flight and the response cache in front of the scheduler. */
  readonly shared: Salvo;
  /** No sharing: streams, and requests with forwarded headers. */
  readonly direct: Salvo;
  readonly budget: Budget | undefined;
  readonly maxQueued: number;
  readonly maxWaitMs: number;
  readonly serves: ModelMatcher;
  /** The concurrency setting, as configured (`auto` or a number). */
  readonly concurrencyMode: "auto" | "fixed";
  /** The limits configured (the rest are learned). */
  readonly configured: LimitsInForce;
  readonly #figures: SchedulerFigures;
  readonly #scopes = new Map<string, Scope>();
  readonly #clock: Clock;
  /** Requests of this gateway waiting for admission here, by priority. */
  readonly #waiting = new Map<number, number>();
  readonly #exactModels: string[];
  #modelList: { at: number; models: Promise<string[]> } | undefined;

  constructor(options: UpstreamOptions, shared: UpstreamShared) {
    this.name = options.name ?? options.provider;
    this.kind = options.provider;
    this.#clock = shared.clock;
    this.#figures = shared.figures;
    this.serves = modelMatcher(options.models);
    this.#exactModels = (options.models ?? []).filter((m) => !m.includes("*"));
    this.maxQueued = options.maxQueued ?? 1024;
    this.maxWaitMs = options.maxWaitMs ?? 120_000;
    this.provider = new UpstreamProvider({
      provider: options.provider,
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      headers: options.headers,
      anthropicVersion: options.anthropicVersion,
      defaultMaxTokens: options.defaultMaxTokens,
      fetch: options.fetch,
    });
    const concurrency = options.concurrency ?? "auto";
    this.concurrencyMode = typeof concurrency === "number" ? "fixed" : "auto";
    this.configured = {
      requests: options.requestsPerMinute,
      tokens: options.tokensPerMinute,
      inputTokens: options.inputTokensPerMinute,
      outputTokens: options.outputTokensPerMinute,
    };
    this.scheduler = new Scheduler({
      concurrency:
        concurrency === "auto" && options.maxConcurrency !== undefined
          ? new AdaptiveConcurrency({ max: options.maxConcurrency })
          : concurrency,
      requestsPerMinute: options.requestsPerMinute,
      tokensPerMinute: options.tokensPerMinute,
      inputTokensPerMinute: options.inputTokensPerMinute,
      outputTokensPerMinute: options.outputTokensPerMinute,
      burstSeconds: options.burstSeconds,
      retry: options.retry ?? { maxAttempts: 5 },
      timeoutMs: options.timeoutMs ?? 600_000,
      maxRetryAfterMs: options.maxRetryAfterMs,
      clock: shared.clock,
      gate: options.gate,
    });
    this.budget =
      options.maxCostUsd === undefined && options.maxTokens === undefined
        ? undefined
        : new Budget({ maxCostUsd: options.maxCostUsd, maxTokens: options.maxTokens });
    const common = {
      provider: this.provider,
      scheduler: this.scheduler,
      audit: shared.audit,
      budget: this.budget,
      pricing: shared.pricing,
      endpoint: options.baseUrl,
    };
    this.shared = new Salvo({
      ...common,
      dedupe: true,
      cache: shared.cache,
      shareSamples: shared.shareSamples,
    });
    this.direct = new Salvo({ ...common, dedupe: false });
  }

  /** A tenant's scope on this upstream: its priority, its cap, its fair share. */
  scopeFor(tenant: string, priority: number, maxConcurrency: number | undefined): Scope {
    let scope = this.#scopes.get(tenant);
    if (scope === undefined) {
      scope = this.scheduler.scope({
        name: tenant,
        priority,
        concurrency: maxConcurrency ?? Number.POSITIVE_INFINITY,
      });
      this.#scopes.set(tenant, scope);
    }
    return scope;
  }

  /** A tenant's attempts holding a slot here, and its requests waiting for one. */
  tenantLoad(tenant: string): { inFlight: number; queued: number } {
    const scope = this.#scopes.get(tenant);
    return { inFlight: scope?.inFlight ?? 0, queued: scope?.queued ?? 0 };
  }

  /** Counts a request as waiting for admission at `priority` until `done` is called. */
  enqueue(priority: number): () => void {
    this.#waiting.set(priority, (this.#waiting.get(priority) ?? 0) + 1);
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      const left = (this.#waiting.get(priority) ?? 1) - 1;
      if (left <= 0) this.#waiting.delete(priority);
      else this.#waiting.set(priority, left);
    };
  }

  /** The limits in force now: those set, lowered or added by what the upstream's headers said. */
  limitsInForce(): LimitsInForce {
    const limits: LimitsInForce = {};
    for (const dimension of ["requests", "tokens", "inputTokens", "outputTokens"] as const) {
      const bucket = this.scheduler.bucket(dimension);
      if (bucket) limits[dimension] = bucket.limitPerMinute;
    }
    return limits;
  }

  /**
   * How long a new request at `priority` reserving `tokens` can expect to wait for admission,
   * ms: the longest of what the slots, the request bucket, the token bucket and a cooldown
   * need to serve it and every request ahead of it (the waiting ones at its priority or above).
   */
  expectedWaitMs(priority: number, tokens: number): number {
    const scheduler = this.scheduler;
    const now = this.#clock.now();
    let ahead = 0;
    for (const [p, n] of this.#waiting) if (p >= priority) ahead += n;
    // Requests the scheduler holds that this gateway did not count (retries waiting to re-enter).
    ahead += Math.max(0, scheduler.queued - this.#waitingTotal());
    const latency = this.#figures.latencyEmaMs ?? 1000;
    const limit = Math.max(1, scheduler.limit);
    const bySlots = Math.max(0, scheduler.inFlight + ahead + 1 - limit) * (latency / limit);
    let byRate = 0;
    const requests = scheduler.bucket("requests");
    if (requests)
      byRate = Math.max(byRate, ((ahead + 1 - requests.level) * 60_000) / requests.limitPerMinute);
    const tokenBucket = scheduler.bucket("tokens") ?? scheduler.bucket("inputTokens");
    if (tokenBucket) {
      const each = this.#figures.tokensEma ?? tokens;
      byRate = Math.max(
        byRate,
        ((ahead * each + tokens - tokenBucket.level) * 60_000) / tokenBucket.limitPerMinute,
      );
    }
    const cooldown = Math.max(0, scheduler.cooldownUntil - now);
    return Math.max(0, bySlots, byRate) + cooldown;
  }

  /** Requests of this gateway waiting for admission here. */
  get waiting(): number {
    return this.#waitingTotal();
  }

  #waitingTotal(): number {
    let n = 0;
    for (const count of this.#waiting.values()) n += count;
    return n;
  }

  /**
   * The models this upstream lists, kept for a minute; if it cannot list them, the exact names
   * its configuration routes to it.
   */
  models(signal: AbortSignal): Promise<string[]> {
    const now = this.#clock.now();
    if (this.#modelList === undefined || now - this.#modelList.at > MODEL_LIST_MS) {
      const models = this.provider
        .listModels(AbortSignal.any([signal, AbortSignal.timeout(10_000)]))
        .then((listed) => [...new Set([...listed, ...this.#exactModels])])
        .catch(() => {
          this.#modelList = undefined;
          return this.#exactModels;
        });
      this.#modelList = { at: now, models };
    }
    return this.#modelList.models;
  }

  /** Stops admitting, settles what waits, and resolves once every attempt has ended. */
  async close(): Promise<void> {
    await this.scheduler.close();
    this.provider.close();
  }
}

// A tenant: one service (or team) that calls through the gateway with its own keys, an optional
// priority, its own request/token rates and spending budget inside the upstream's, and the
// models it may use. Keys are kept only as SHA-256 digests.
import { createHash } from "node:crypto";
import type { CallLayer } from "../cache/call-layer.ts";
import type { Clock } from "../core/clock.ts";
import { Budget } from "../cost/budget.ts";
import { budgetLayer } from "../cost/budget-layer.ts";
import type { Pricing } from "../cost/pricing.ts";
import type { CostEstimate, ProviderRequest } from "../providers/provider.ts";
import { type ModelMatcher, modelMatcher } from "./model-pattern.ts";
import { TenantLimiter } from "./tenant-limiter.ts";

export type TenantOptions = {
  /** A unique name: in the audit log's context (`tenant`), metrics and the dashboard. */
  name: string;
  /** The tenant's gateway keys, as given to it (kept as SHA-256 digests only). @default none */
  keys?: readonly string[] | undefined;
  /** Keys as lowercase hex SHA-256 digests, for configs that should not hold the keys. @default none */
  keySha256?: readonly string[] | undefined;
  /** Higher is admitted first; equal priorities share fairly (round-robin). @default 0 */
  priority?: number | undefined;
  /** Requests per minute, across every upstream. @default unlimited */
  requestsPerMinute?: number | undefined;
  /** Input + output tokens per minute, across every upstream. @default unlimited */
  tokensPerMinute?: number | undefined;
  /** Seconds of its per-minute limits that may go at once. @default 1 */
  burstSeconds?: number | undefined;
  /** Most of its calls holding a slot at once on each upstream. @default no cap of its own */
  maxConcurrency?: number | undefined;
  /** Most USD it may spend while the gateway runs. @default unlimited */
  maxCostUsd?: number | undefined;
  /** Most tokens (input + output) it may use while the gateway runs. @default unlimited */
  maxTokens?: number | undefined;
  /** Models it may call (exact names or `*` patterns). @default every model */
  models?: readonly string[] | undefined;
  /** May see every tenant's figures (dashboard, /salvo/status, /metrics). @default false */
  admin?: boolean | undefined;
};

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export class Tenant {
  readonly name: string;
  readonly priority: number;
  readonly maxConcurrency: number | undefined;
  readonly admin: boolean;
  readonly limiter: TenantLimiter;
  readonly budget: Budget | undefined;
  readonly allows: ModelMatcher;
  readonly digests: readonly string[];
  /** The budget in front of the upstream's client, if the tenant has one. */
  readonly budgetLayer: CallLayer | undefined;

  constructor(
    options: TenantOptions,
    context: {
      clock: Clock;
      pricing: Pricing;
      estimate: (request: ProviderRequest) => CostEstimate;
    },
  ) {
    this.name = options.name;
    this.priority = options.priority ?? 0;
    this.maxConcurrency = options.maxConcurrency;
    this.admin = options.admin ?? false;
    this.allows = modelMatcher(options.models);
    this.digests = [
      ...(options.keys ?? []).map(sha256Hex),
      ...(options.keySha256 ?? []).map((d) => d.toLowerCase()),
    ];
    this.limiter = new TenantLimiter(
      {
        requestsPerMinute: options.requestsPerMinute,
        tokensPerMinute: options.tokensPerMinute,
        burstSeconds: options.burstSeconds,
      },
      context.clock,
    );
    this.budget =
      options.maxCostUsd === undefined && options.maxTokens === undefined
        ? undefined
        : new Budget({ maxCostUsd: options.maxCostUsd, maxTokens: options.maxTokens });
    this.budgetLayer = this.budget
      ? budgetLayer({
          budget: this.budget,
          pricing: context.pricing,
          estimate: context.estimate,
          now: () => context.clock.now(),
        })
      : undefined;
  }
}

/** Finds a tenant by a presented key. */
export class KeyRing {
  readonly #byDigest = new Map<string, Tenant>();

  constructor(tenants: readonly Tenant[]) {
    for (const tenant of tenants)
      for (const digest of tenant.digests) this.#byDigest.set(digest, tenant);
  }

  get size(): number {
    return this.#byDigest.size;
  }

  /**
   * The tenant of a presented key. Looked up by the key's SHA-256: comparing digests leaks
   * nothing usable about the key through timing.
   */
  find(key: string): Tenant | undefined {
    return this.#byDigest.get(sha256Hex(key));
  }
}

/** The key a request presents: `Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key` (Anthropic). */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth !== null) {
    const match = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (match?.[1]) return match[1].trim();
  }
  const key = headers.get("x-api-key") ?? headers.get("api-key");
  return key !== null && key.trim() !== "" ? key.trim() : undefined;
}

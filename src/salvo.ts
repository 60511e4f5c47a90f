// The Salvo client: one provider behind one scheduler. Every call is estimated, admitted by the
// scheduler (slot, request and token buckets, cooldown), made once per attempt by the provider
// with the SDK's own retries off, and reconciled with the real usage and rate-limit headers.
import type { AuditContext } from "./audit/audit-context.ts";
import type { CallAuditor } from "./audit/call-auditor.ts";
import type { ItemId, Outcome } from "./core/outcome.ts";
import { Scheduler } from "./core/scheduler.ts";
import type { Cost, SchedulerOptions } from "./core/scheduler-options.ts";
import type { TaskContext } from "./core/task-context.ts";
import type {
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
} from "./providers/provider.ts";

export type SalvoOptions = SchedulerOptions & {
  /** The provider every call goes to: `new OpenAIProvider(...)`, `new AnthropicProvider(...)`, ... */
  provider: Provider;
  /** An existing scheduler to share (one per provider key); its own options then apply. */
  scheduler?: Scheduler | undefined;
  /**
   * Records every attempt (e.g. a `CallLog` from `openCallLog`). Its `capture` runs when a call
   * is submitted, in the caller's async context; each attempt's record carries that context.
   * @default none
   */
  audit?: CallAuditor | undefined;
};

/** Options of one call. */
export type SalvoCallOptions = {
  /** The item's id in events and outcomes. @default a number in submission order */
  id?: ItemId | undefined;
  /** Higher runs first; FIFO within a priority. @default 0 */
  priority?: number | undefined;
  /** Per-attempt timeout, ms. @default the scheduler's */
  timeoutMs?: number | undefined;
  /** Deadline across all attempts, ms from now. @default the scheduler's */
  deadlineMs?: number | undefined;
  /** Aborts the call, queued or running. */
  signal?: AbortSignal | undefined;
};

/**
 * What admission reserves for a request. OpenAI charges prompt + `max_tokens` against one TPM;
 * Anthropic charges input (ITPM) and output (OTPM) separately, and `tokens` is their sum.
 */
export function costOf(estimate: CostEstimate): Cost {
  return {
    requests: 1,
    tokens: estimate.inputTokens + estimate.outputTokens,
    inputTokens: estimate.inputTokens,
    outputTokens: estimate.outputTokens,
  };
}

export class Salvo {
  readonly provider: Provider;
  readonly scheduler: Scheduler;
  readonly #audit: CallAuditor | undefined;

  constructor(options: SalvoOptions) {
    const { provider, scheduler, audit, ...schedulerOptions } = options;
    this.provider = provider;
    this.#audit = audit;
    this.scheduler = scheduler ?? new Scheduler(schedulerOptions);
  }

  /** One request: resolves with the provider's answer, or rejects with a typed SalvoError. */
  call(request: ProviderRequest, options: SalvoCallOptions = {}): Promise<ProviderResult> {
    return this.scheduler.run(this.#attempt(request), { ...options, cost: this.#cost(request) });
  }

  /** One request, settled: never rejects. */
  settle(
    request: ProviderRequest,
    options: SalvoCallOptions = {},
  ): Promise<Outcome<ProviderResult>> {
    return this.scheduler.settle(this.#attempt(request), { ...options, cost: this.#cost(request) });
  }

  /** Many requests, settled, in input order. */
  map(
    requests: Iterable<ProviderRequest> | AsyncIterable<ProviderRequest>,
    options: Omit<SalvoCallOptions, "id"> = {},
  ): Promise<Array<Outcome<ProviderResult>>> {
    const captured = this.#audit?.capture();
    return this.scheduler.map(
      requests,
      (request, context) => this.#call(request, context, captured),
      {
        ...options,
        cost: (request) => this.#cost(request),
      },
    );
  }

  /** Many requests, settled, yielded in input order with a bounded read-ahead window. */
  stream(
    requests: Iterable<ProviderRequest> | AsyncIterable<ProviderRequest>,
    options: Omit<SalvoCallOptions, "id"> & { window?: number | undefined } = {},
  ): AsyncIterableIterator<Outcome<ProviderResult>> {
    const captured = this.#audit?.capture();
    return this.scheduler.stream(
      requests,
      (request, context) => this.#call(request, context, captured),
      {
        ...options,
        cost: (request) => this.#cost(request),
      },
    );
  }

  /** Stops admitting, settles what waits, and resolves when every attempt has ended. */
  close(reason?: unknown): Promise<void> {
    return this.scheduler.close(reason);
  }

  #cost(request: ProviderRequest): Cost {
    return costOf(this.provider.estimate(request));
  }

  #attempt(request: ProviderRequest) {
    const captured = this.#audit?.capture();
    return (context: TaskContext) => this.#call(request, context, captured);
  }

  async #call(
    request: ProviderRequest,
    context: TaskContext,
    captured?: AuditContext | undefined,
  ): Promise<ProviderResult> {
    const audit = this.#audit?.attempt(captured ?? {}, request, {
      id: context.id,
      index: context.index,
      attempt: context.attempt,
      provider: this.provider.name,
    });
    let result: ProviderResult;
    try {
      result = await this.provider.call(request, { signal: context.signal });
    } catch (error) {
      await audit?.failed(error);
      throw error;
    }
    if (result.rateLimits) context.reportRateLimits(result.rateLimits);
    if (result.usage) {
      const { inputTokens, outputTokens } = this.provider.charged(request, result.usage);
      context.reportUsage({ tokens: inputTokens + outputTokens, inputTokens, outputTokens });
    }
    await audit?.succeeded(result);
    return result;
  }
}

// The Salvo client: one provider behind one scheduler. A call goes down a chain of layers
// (STYLE.md §3): single-flight (identical requests in flight share one call), the response cache
// (a stored answer needs no call), the budget (a call reserves its upper bound before it may
// queue), then the scheduler (slot, request and token buckets, cooldown). Each attempt is made
// once by the provider with the SDK's own retries off, reconciled with the real usage and
// rate-limit headers, and priced. An answer from a layer never reaches the scheduler.
import { setMaxListeners } from "node:events";
import type { AuditContext } from "./audit/audit-context.ts";
import type { CallAuditor } from "./audit/call-auditor.ts";
import {
  answered,
  type CallContext,
  type CallLayer,
  type CallOutcome,
  callOutcomeOf,
  compose,
  type Next,
  type SalvoResult,
} from "./cache/call-layer.ts";
import { fingerprint, isShareable } from "./cache/fingerprint.ts";
import type { ResponseCache } from "./cache/response-cache.ts";
import { responseCacheLayer, singleFlightLayer } from "./cache/share-layers.ts";
import { type Clock, realClock } from "./core/clock.ts";
import type { ItemId } from "./core/outcome.ts";
import { Scheduler } from "./core/scheduler.ts";
import type { Cost, SchedulerOptions } from "./core/scheduler-options.ts";
import type { Scope } from "./core/scope.ts";
import type { TaskContext } from "./core/task-context.ts";
import type { Budget } from "./cost/budget.ts";
import { budgetLayer } from "./cost/budget-layer.ts";
import { modelOf, Pricing } from "./cost/pricing.ts";
import { AbortedError, ConfigError, KeepFailedError } from "./errors.ts";
import type { CostEstimate, Provider, ProviderRequest } from "./providers/provider.ts";

export type { CallOutcome, SalvoResult };

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
  /**
   * Identical shareable requests in flight at once make one call and share its outcome
   * (single-flight); see `shareSamples` for which requests are shareable. @default true
   */
  dedupe?: boolean | undefined;
  /**
   * A response cache (`await ResponseCache.open(dir, {ttlMs})`): a shareable request whose
   * answer is stored is answered from it, with no call, no slot and no rate budget; successful
   * answers are stored. @default none
   */
  cache?: ResponseCache | undefined;
  /**
   * Share (single-flight and cache) requests whose answer is a sample too. By default only
   * requests with `temperature: 0`, and embeddings and moderations, are shareable: a request
   * without a temperature samples at the provider's default of 1. @default false
   */
  shareSamples?: boolean | undefined;
  /**
   * A spending budget (`new Budget({maxCostUsd, maxTokens})`): each call reserves its upper
   * bound before it queues; once a call cannot fit, it and every later call fail with
   * BudgetExceededError while the calls in flight finish. @default none
   */
  budget?: Budget | undefined;
  /** Prices for each call's cost (`result.cost`) and the budget. @default the built-in table */
  pricing?: Pricing | undefined;
  /**
   * What identifies the server in request fingerprints, e.g. its base URL: set it when one
   * provider name serves several endpoints. @default "" (the provider's name alone)
   */
  endpoint?: string | undefined;
};

/** A call as it goes down the chain: the layers' context, and what the scheduler needs. */
type SalvoContext = CallContext & {
  priority: number | undefined;
  timeoutMs: number | undefined;
  deadlineMs: number | undefined;
  scope: Scope | undefined;
  captured: AuditContext | undefined;
  keep: SalvoCallOptions["keep"];
};

type Inputs = Iterable<ProviderRequest> | AsyncIterable<ProviderRequest>;

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
  /**
   * Admits the call through this scope of the client's scheduler (`salvo.scheduler.scope(...)`):
   * the scope's own cap and its fair share against other scopes at equal priority.
   * @default the scheduler's root scope
   */
  scope?: Scope | undefined;
  /**
   * Called with the provider's answer while its attempt still holds its concurrency slot; the
   * slot is freed once it resolves. A caller that must not lose a paid answer (a crash-safe
   * journal) writes it down here: then at most the concurrency limit's worth of answers is ever
   * paid for and not yet written, whatever the disk's delay. The attempt's timeout stops when
   * the answer arrives (writing it down is not the provider's time); the item's deadline and
   * the call's signal still apply, so the call may settle, aborted, before `keep` ends.
   * Called once per answered attempt (a retry after a timeout answers again); not called for an
   * answer from the cache or shared with another caller (nothing was paid). Should not reject:
   * a rejection fails the call with a KeepFailedError (`SALVO_KEEP_FAILED`), not retried. For
   * `call` and `settle`; `map` and `stream` ignore it.
   */
  keep?: ((answer: SalvoResult, attempt: number) => void | Promise<void>) | undefined;
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
  /** The prices each call's cost is computed with. */
  readonly pricing: Pricing;
  readonly #audit: CallAuditor | undefined;
  readonly #options: SalvoOptions;
  readonly #cache: ResponseCache | undefined;
  #clock: Clock;
  readonly #window: number;
  readonly #chain: Next<SalvoContext>;
  readonly #estimates = new WeakMap<ProviderRequest, CostEstimate>();
  readonly #keys = new WeakMap<ProviderRequest, string>();
  #closed = false;

  constructor(options: SalvoOptions) {
    this.#options = options;
    const {
      provider,
      scheduler,
      audit,
      dedupe,
      cache,
      shareSamples,
      budget,
      pricing,
      endpoint,
      ...schedulerOptions
    } = options;
    this.provider = provider;
    this.pricing = pricing ?? new Pricing();
    this.#audit = audit;
    this.#cache = cache;
    this.scheduler = scheduler ?? new Scheduler(schedulerOptions);
    this.#clock = (scheduler === undefined ? schedulerOptions.clock : undefined) ?? realClock;
    this.#window = schedulerOptions.window ?? 1024;
    const now = () => this.#clock.now();
    const share = {
      shareable: (request: ProviderRequest) => isShareable(request, shareSamples ?? false),
      keyOf: (request: ProviderRequest) => this.#key(request, endpoint),
      now,
    };
    const layers: CallLayer[] = [];
    if (dedupe ?? true) layers.push(singleFlightLayer(share));
    if (cache) layers.push(responseCacheLayer({ ...share, cache, provider: provider.name }));
    if (budget)
      layers.push(
        budgetLayer({ budget, pricing: this.pricing, estimate: (r) => this.#estimate(r), now }),
      );
    this.#chain = compose<SalvoContext>(layers, (request, context) =>
      this.#schedule(request, context),
    );
  }

  /**
   * A client on the same scheduler, audit, response cache, budget and prices that calls another
   * provider: how `salvoFetch` and the SDK wrappers send a request through the SDK's own HTTP
   * call while sharing this client's limits and records.
   */
  withProvider(provider: Provider): Salvo {
    const derived = new Salvo({
      ...this.#options,
      provider,
      scheduler: this.scheduler,
      pricing: this.pricing,
    });
    derived.#clock = this.#clock;
    return derived;
  }

  /** One request: resolves with the provider's answer, or rejects with a typed SalvoError. */
  async call(request: ProviderRequest, options: SalvoCallOptions = {}): Promise<SalvoResult> {
    const outcome = await this.settle(request, options);
    if (outcome.ok) return outcome.value;
    throw outcome.error;
  }

  /** One request, settled: never rejects. */
  settle(request: ProviderRequest, options: SalvoCallOptions = {}): Promise<CallOutcome> {
    const context = this.#context(0, options, options.signal, this.#audit?.capture());
    return this.#submit(request, { ...context, id: options.id, keep: options.keep });
  }

  /**
   * Many requests, settled, in input order. On abort or `close()`, input is no longer read: the
   * requests read get exactly one outcome each. Rejects only if reading the input throws (the
   * unfinished calls are then aborted).
   */
  async map(
    requests: Inputs,
    options: Omit<SalvoCallOptions, "id" | "keep"> = {},
  ): Promise<CallOutcome[]> {
    const captured = this.#audit?.capture();
    const { signal, stop } = this.#batchSignal(options.signal);
    const outcomes: Array<Promise<CallOutcome>> = [];
    const reader = readInputs(requests);
    try {
      for (;;) {
        if (this.#closed || signal.aborted) break;
        // A sync input is read synchronously: every request is submitted in one go.
        const read = reader.next(signal);
        const next = read instanceof Promise ? await read : read;
        if (next === undefined) break;
        const index = outcomes.length;
        outcomes.push(this.#submit(next, this.#context(index, options, signal, captured)));
      }
    } catch (error) {
      stop.abort(error);
      await Promise.all(outcomes);
      throw error;
    } finally {
      reader.close(); // an input left unread on a stop is told so (`return()`), not awaited
    }
    return Promise.all(outcomes);
  }

  /**
   * Many requests, settled, yielded in input order, reading at most `window` requests ahead of
   * the oldest outcome not yet yielded. Breaking out of the loop aborts the unfinished calls.
   */
  stream(
    requests: Inputs,
    options: Omit<SalvoCallOptions, "id" | "keep"> & { window?: number | undefined } = {},
  ): AsyncIterableIterator<CallOutcome> {
    const window = options.window ?? this.#window;
    if (!Number.isInteger(window) || window < 1)
      throw new ConfigError({ field: "window", expected: "an integer >= 1", got: window });
    // Captured now, in the caller's async context, not when iteration starts.
    return this.#stream(requests, options, window, this.#audit?.capture());
  }

  async *#stream(
    requests: Inputs,
    options: Omit<SalvoCallOptions, "id" | "keep">,
    window: number,
    captured: AuditContext | undefined,
  ): AsyncIterableIterator<CallOutcome> {
    const { signal, stop } = this.#batchSignal(options.signal);
    const reader = readInputs(requests);
    const ahead: Array<Promise<CallOutcome>> = [];
    let index = 0;
    try {
      for (;;) {
        if (ahead.length >= window) {
          yield await ahead.shift()!;
          continue;
        }
        if (this.#closed || signal.aborted) break;
        const read = reader.next(signal);
        const next = read instanceof Promise ? await read : read;
        if (next === undefined) break;
        ahead.push(this.#submit(next, this.#context(index++, options, signal, captured)));
      }
      while (ahead.length > 0) yield await ahead.shift()!;
    } finally {
      stop.abort(new AbortedError("the stream was closed before this item finished"));
      reader.close();
    }
  }

  /**
   * A graceful stop: admits nothing more (what waits settles with AbortedError), lets the calls
   * in flight finish without retrying them, and resolves once none is in flight. Answers that
   * arrive meanwhile reach their callers, followers of a shared call included.
   */
  drain(reason?: unknown): Promise<void> {
    this.#closed = true;
    return this.scheduler.drain(reason);
  }

  /** Stops admitting, settles what waits, and resolves when every attempt has ended. */
  async close(reason?: unknown): Promise<void> {
    this.#closed = true;
    await this.scheduler.close(reason);
    // An answer that arrived as the last attempts ended goes on to the cache a few promise steps
    // later: let those steps run (one turn of the event loop), then wait for its write.
    if (this.#cache) {
      await new Promise((resolve) => setImmediate(resolve));
      await this.#cache.flush();
    }
  }

  /** A signal for every item of one `map`/`stream`: the caller's, and `stop` for the batch. */
  #batchSignal(own: AbortSignal | undefined): { signal: AbortSignal; stop: AbortController } {
    const stop = new AbortController();
    const signal = own ? AbortSignal.any([own, stop.signal]) : stop.signal;
    // Every item listens to it (the scheduler, single-flight, the budget): not a leak.
    setMaxListeners(0, signal);
    return { signal, stop };
  }

  #context(
    index: number,
    options: Omit<SalvoCallOptions, "id">,
    signal: AbortSignal | undefined,
    captured: AuditContext | undefined,
  ): SalvoContext {
    return {
      id: undefined,
      index,
      signal,
      submittedAt: this.#clock.now(),
      priority: options.priority,
      timeoutMs: options.timeoutMs,
      deadlineMs: options.deadlineMs,
      scope: options.scope,
      captured,
      keep: undefined,
    };
  }

  /**
   * Down the chain. The outcome carries the input index (the scheduler saw a single call); an
   * answer that skipped the scheduler is still audited, as attempt 0.
   */
  async #submit(request: ProviderRequest, context: SalvoContext): Promise<CallOutcome> {
    let outcome: CallOutcome;
    try {
      outcome = await this.#chain(request, context);
    } catch (error) {
      // A request the chain cannot even estimate or fingerprint (e.g. `messages: [null]`) ends
      // as its own failed outcome, like a task's exception in the scheduler: `settle` and `map`
      // never reject for one item.
      return answered(context, this.#clock.now(), { ok: false, error });
    }
    if (outcome.index !== context.index) outcome = { ...outcome, index: context.index };
    if (this.#audit && outcome.ok && (outcome.value.cached || outcome.value.shared)) {
      const audit = this.#audit.attempt(context.captured ?? {}, request, {
        id: outcome.id,
        index: context.index,
        attempt: 0,
        provider: this.provider.name,
      });
      await audit.succeeded(outcome.value);
    }
    return outcome;
  }

  /** The end of the chain: admission by the scheduler, then one provider call per attempt. */
  async #schedule(request: ProviderRequest, context: SalvoContext): Promise<CallOutcome> {
    const admission = context.scope ?? this.scheduler;
    const outcome = await admission.settle(
      (task: TaskContext) => this.#attempt(request, task, context),
      {
        id: context.id,
        priority: context.priority,
        timeoutMs: context.timeoutMs,
        deadlineMs: context.deadlineMs,
        signal: context.signal,
        cost: costOf(this.#estimate(request)),
      },
    );
    return callOutcomeOf(outcome, this.provider.name);
  }

  #estimate(request: ProviderRequest): CostEstimate {
    let estimate = this.#estimates.get(request);
    if (estimate === undefined) {
      estimate = this.provider.estimate(request);
      this.#estimates.set(request, estimate);
    }
    return estimate;
  }

  #key(request: ProviderRequest, endpoint: string | undefined): string {
    let key = this.#keys.get(request);
    if (key === undefined) {
      key = fingerprint(request, { provider: this.provider.name, endpoint });
      this.#keys.set(request, key);
    }
    return key;
  }

  async #attempt(
    request: ProviderRequest,
    context: TaskContext,
    call: SalvoContext,
  ): Promise<SalvoResult> {
    const audit = this.#audit?.attempt(call.captured ?? {}, request, {
      id: context.id,
      index: call.index,
      attempt: context.attempt,
      provider: this.provider.name,
    });
    let result: SalvoResult;
    try {
      const answer = await this.provider.call(request, { signal: context.signal });
      // The call is over: writing its records down (audit, `keep`) is not the provider's time.
      context.answered();
      result = { ...answer, cached: false, shared: false };
    } catch (error) {
      await audit?.failed(error);
      throw error;
    }
    if (result.rateLimits) context.reportRateLimits(result.rateLimits);
    if (result.usage) {
      const { inputTokens, outputTokens } = this.provider.charged(request, result.usage);
      context.reportUsage({
        tokens: inputTokens + outputTokens,
        inputTokens,
        outputTokens,
        generatedTokens: result.usage.outputTokens,
      });
      // Priced as the answer's model (a dated snapshot) when known, else as the request's.
      const answered = modelOf(result.body);
      const model = this.pricing.priceOf(answered) ? answered : modelOf(request.body);
      result = { ...result, cost: this.pricing.cost(model, result.usage) };
    }
    await audit?.succeeded(result);
    if (call.keep) {
      try {
        await call.keep(result, context.attempt);
      } catch (error) {
        throw new KeepFailedError(
          `keeping the answer of ${this.provider.name} failed: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      }
    }
    return result;
  }
}

/**
 * Reads sync and async iterables alike (a sync one without a promise per read); a pending async
 * read is abandoned when `signal` aborts. `undefined`: no more input.
 */
function readInputs(inputs: Inputs): {
  next(signal: AbortSignal): ProviderRequest | undefined | Promise<ProviderRequest | undefined>;
  close(): void;
} {
  const sync = typeof (inputs as Iterable<ProviderRequest>)[Symbol.iterator] === "function";
  const iterator = sync
    ? (inputs as Iterable<ProviderRequest>)[Symbol.iterator]()
    : (inputs as AsyncIterable<ProviderRequest>)[Symbol.asyncIterator]();
  let done = false;
  const readAsync = async (signal: AbortSignal) => {
    const read = (iterator as AsyncIterator<ProviderRequest>).next();
    const next = await new Promise<IteratorResult<ProviderRequest> | undefined>(
      (resolve, reject) => {
        const onAbort = () => resolve(undefined);
        signal.addEventListener("abort", onAbort, { once: true });
        read.then(
          (value) => {
            signal.removeEventListener("abort", onAbort);
            resolve(value);
          },
          (error: unknown) => {
            signal.removeEventListener("abort", onAbort);
            reject(error);
          },
        );
      },
    );
    if (next === undefined) return undefined;
    done = next.done === true;
    return done ? undefined : next.value;
  };
  return {
    next(signal) {
      if (!sync) return readAsync(signal);
      const next = (iterator as Iterator<ProviderRequest>).next();
      done = next.done === true;
      return done ? undefined : next.value;
    },
    close() {
      if (done) return;
      done = true;
      try {
        const result = iterator.return?.();
        if (result instanceof Promise) result.catch(() => {});
      } catch {
        // The input's own cleanup failed; the outcomes are already decided.
      }
    },
  };
}

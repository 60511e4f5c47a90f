// The Salvo client's call path as a chain of layers, each `(request, context, next) => outcome`:
// single-flight, the response cache and the budget sit in front of the scheduler, which is the
// chain's end. A layer may answer without calling `next` (a cache hit, a shared call, a refused
// budget): such an answer never reaches the scheduler, so it takes no slot and no rate budget.
import type { FailureReason, ItemId, Outcome } from "../core/outcome.ts";
import type { CallCost } from "../cost/pricing.ts";
import { AbortedError, ProviderError, SalvoError } from "../errors.ts";
import type { ProviderRequest, ProviderResult } from "../providers/provider.ts";

/** What a Salvo call resolves with: the provider's result, and where it came from. */
export type SalvoResult = ProviderResult & {
  /** What this answer cost now (USD 0 for a cached or shared one); `usd` undefined: unknown price. */
  cost?: CallCost | undefined;
  /** From the response cache: no call was made. Always set: `false` for an answer called now. */
  cached: boolean;
  /**
   * Shared with an identical request in flight (single-flight): no call of its own. Always set:
   * `false` for an answer of its own.
   */
  shared: boolean;
};

/** A Salvo call's outcome: its error is always a typed SalvoError (see `salvoErrorOf`). */
export type CallOutcome = Outcome<SalvoResult, SalvoError>;

/** One call as it goes down the chain. */
export type CallContext = {
  /** The item's id, if the caller gave one (the scheduler numbers the others). */
  id: ItemId | undefined;
  /** The input position for `map`/`stream`, else 0. */
  index: number;
  /** The caller's signal, combined with the stream's own for `map`/`stream`. */
  signal: AbortSignal | undefined;
  /** When the call was submitted, ms on the scheduler's clock (for answers that skip it). */
  submittedAt: number;
};

/** The rest of the chain, as a layer sees it. */
export type Next<C extends CallContext> = (
  request: ProviderRequest,
  context: C,
) => Promise<CallOutcome>;

/** A layer passes the context on (possibly with another signal); it never drops fields. */
export type CallLayer = <C extends CallContext>(
  request: ProviderRequest,
  context: C,
  next: Next<C>,
) => Promise<CallOutcome>;

/** The layers, outermost first, in front of `end`. */
export function compose<C extends CallContext>(
  layers: readonly CallLayer[],
  end: Next<C>,
): Next<C> {
  let next = end;
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const inner = next;
    next = (request, context) => layer(request, context, inner);
  }
  return next;
}

/**
 * An outcome answered by a layer, without the scheduler: no attempt was made. Its id is the
 * caller's, or "" when the caller gave none (the scheduler numbers only what it runs). A refusal
 * (`ok: false`) has the reason `not-retryable` unless another is given.
 */
export function answered(
  context: CallContext,
  now: number,
  result:
    | { ok: true; value: SalvoResult }
    | { ok: false; error: unknown; reason?: FailureReason | undefined },
): CallOutcome {
  const base = {
    id: context.id ?? "",
    index: context.index,
    attempts: 0,
    latencyMs: Math.max(0, now - context.submittedAt),
  };
  if (result.ok) return { ...base, ok: true, value: result.value };
  const error = salvoErrorOf(result.error, "the call could not be made");
  return { ...base, ok: false, error, reason: result.reason ?? "not-retryable" };
}

/**
 * A typed SalvoError for anything a call can end with: a SalvoError as it is; anything else (an
 * exception of a layer, or of the code preparing the request) wrapped in a SalvoError whose
 * message says `what` and keeps the original's, with the original as `cause`.
 */
export function salvoErrorOf(error: unknown, what: string): SalvoError {
  if (error instanceof SalvoError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new SalvoError(`${what}: ${message}`, { cause: error });
}

/**
 * The scheduler's outcome of a provider call as a Salvo outcome. The scheduler's own stops are
 * SalvoErrors already, and so is every error of the built-in providers; what else a provider
 * throws (a custom provider's own exception) becomes a `ProviderError` naming the provider.
 */
export function callOutcomeOf(outcome: Outcome<SalvoResult>, provider: string): CallOutcome {
  if (outcome.ok || outcome.error instanceof SalvoError) return outcome as CallOutcome;
  const error = outcome.error;
  const message = error instanceof Error ? error.message : String(error);
  return {
    ...outcome,
    error: new ProviderError(
      `provider ${provider} failed: ${message}`,
      { provider },
      { cause: error },
    ),
  };
}

/** A caller's abort as the scheduler reports one: an AbortedError with the reason as its cause. */
export function abortedBy(reason: unknown): AbortedError {
  if (reason instanceof AbortedError) return reason;
  return new AbortedError(
    reason instanceof Error ? `aborted: ${reason.message}` : "the operation was aborted",
    { cause: reason },
  );
}

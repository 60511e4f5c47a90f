// The budget's place in the call path: in front of the scheduler, behind single-flight and the
// cache (a shared or cached answer is free). A call reserves its upper bound (estimated input +
// `max_tokens` of output, at the model's price) before it may queue for admission, and settles
// with its real usage when it ends; a refused call never reaches the scheduler.
import { abortedBy, answered, type CallLayer, type CallOutcome } from "../cache/call-layer.ts";
import { BudgetExceededError, PriceUnknownError } from "../errors.ts";
import type { CostEstimate, ProviderRequest } from "../providers/provider.ts";
import type { Budget, Reservation, Spend } from "./budget.ts";
import { modelOf, type Pricing } from "./pricing.ts";

export type BudgetLayerOptions = {
  budget: Budget;
  pricing: Pricing;
  /** The provider's estimate of a request (input tokens, and `max_tokens` as output). */
  estimate: (request: ProviderRequest) => CostEstimate;
  /** The scheduler's clock, ms. */
  now: () => number;
};

/**
 * What a call spent: its usage at its price; nothing if it failed (a refused or failed request is
 * not billed); its whole reservation if it succeeded without reporting usage (unknown, so the
 * bound is assumed).
 */
function spendOf(outcome: CallOutcome | undefined, reservation: Reservation): Spend {
  if (outcome === undefined || !outcome.ok) return { usd: 0, tokens: 0 };
  const usage = outcome.value.usage;
  if (usage === undefined) return reservation.amount;
  return { usd: outcome.value.cost?.usd ?? 0, tokens: usage.inputTokens + usage.outputTokens };
}

export function budgetLayer(options: BudgetLayerOptions): CallLayer {
  const { budget, pricing } = options;
  return async (request, context, next) => {
    const estimate = options.estimate(request);
    const model = modelOf(request.body);
    const usd = pricing.bound(model, estimate);
    if (usd === undefined && budget.limitsCost)
      return answered(context, options.now(), { ok: false, error: new PriceUnknownError(model) });
    let reservation: Reservation;
    try {
      reservation = await budget.reserve(
        { usd: usd ?? 0, tokens: estimate.inputTokens + estimate.outputTokens },
        context.signal,
      );
    } catch (error) {
      return error instanceof BudgetExceededError
        ? answered(context, options.now(), { ok: false, error })
        : answered(context, options.now(), {
            ok: false,
            error: abortedBy(error),
            reason: "aborted",
          });
    }
    let outcome: CallOutcome | undefined;
    try {
      outcome = await next(request, context);
      return outcome;
    } finally {
      reservation.settle(spendOf(outcome, reservation));
    }
  };
}

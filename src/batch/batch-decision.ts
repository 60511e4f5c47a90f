// What a line's provider-batch result means for its output line: the batch's answer (priced at
// the batch price), a final error (the provider refused the request: real time would too), or a
// run in real time (the batch errored in a way worth retrying, or never ran it) while the run
// deadline allows; past it, a line the batch never ran ends `SALVO_BATCH_NOT_RUN`.
import { classifyFailure } from "../core/retry/classify-failure.ts";
import { modelOf, type Pricing } from "../cost/pricing.ts";
import { BatchLineNotRunError } from "../errors.ts";
import { usageFromAnthropic } from "../providers/anthropic-provider.ts";
import { errorFromResponse } from "../providers/classify.ts";
import { usageFromOpenAI } from "../providers/openai-provider.ts";
import type { ProviderRequest, TokenUsage } from "../providers/provider.ts";
import type { ProviderName } from "../providers/provider-names.ts";
import type { SpooledResult } from "./batch-results.ts";
import { type ItemOutcome, itemError } from "./output-line.ts";

/** What to do with an item (`BatchBackend.decide`). */
export type Decision =
  /** The batch answered it: write this. */
  | {
      kind: "batch";
      outcome: ItemOutcome;
      usage: TokenUsage | undefined;
      /** At the batch price, and what it would have cost in real time; undefined: unpriced. */
      costUsd: number | undefined;
      realtimeCostUsd: number | undefined;
    }
  /** It ends here without a call (over budget, not run and no time left, refused). */
  | { kind: "final"; outcome: ItemOutcome; notRun: boolean }
  /**
   * Run it in real time, within `deadlineMs` of now when the run deadline bounds it; `fallback`:
   * the batch was meant to answer it and did not.
   */
  | { kind: "realtime"; deadlineMs: number | undefined; fallback: boolean };

export type DecisionContext = {
  provider: ProviderName;
  pricing: Pricing;
  /** Ms to the run deadline; undefined: no deadline. */
  remainingMs: number | undefined;
  /** From the batch's submission to its end, ms. */
  latencyMs: number;
};

/** The token usage in an answer's body. */
export function usageOfAnswer(provider: ProviderName, body: unknown): TokenUsage | undefined {
  return provider === "anthropic" ? usageFromAnthropic(body) : usageFromOpenAI(body);
}

/** An answer's cost: priced as the answer's model when known, else the request's. */
export function answerCost(
  pricing: Pricing,
  body: unknown,
  request: ProviderRequest | undefined,
  usage: TokenUsage,
  batch: boolean,
): number | undefined {
  const answered = modelOf(body);
  const model = pricing.priceOf(answered) ? answered : modelOf(request?.body);
  return pricing.cost(model, usage, { batch }).usd;
}

export function finalError(error: unknown, notRun = false, attempts = 0): Decision {
  return {
    kind: "final",
    notRun,
    outcome: { ok: false, error: itemError(error), attempts, latencyMs: 0 },
  };
}

/** The decision for an item whose batch result is `result`. */
export function decisionOf(
  request: ProviderRequest,
  result: SpooledResult,
  context: DecisionContext,
): Decision {
  const response = result.response;
  if (response && response.status < 300) {
    const usage = usageOfAnswer(context.provider, response.body);
    const cost = (batch: boolean) =>
      usage === undefined
        ? undefined
        : answerCost(context.pricing, response.body, request, usage, batch);
    const costUsd = cost(true);
    return {
      kind: "batch",
      usage,
      costUsd,
      realtimeCostUsd: cost(false),
      outcome: {
        ok: true,
        value: {
          status: response.status,
          body: response.body,
          requestId: response.request_id ?? undefined,
          usage,
          costUsd,
          batchId: result.batch,
        },
        attempts: 1,
        latencyMs: context.latencyMs,
      },
    };
  }
  if (response) {
    const error = errorFromResponse({
      status: response.status,
      body: response.body,
      provider: context.provider,
    });
    if (!classifyFailure(error).retryable) return finalError(error, false, 1);
  }
  return fallbackOf(result, context, false);
}

/**
 * A line the batch did not answer: real time while the run deadline allows (`force`: whatever
 * it says, for a batch abandoned so that real time could run its lines), else not run.
 */
export function fallbackOf(
  result: SpooledResult,
  context: Pick<DecisionContext, "provider" | "remainingMs">,
  force: boolean,
): Decision {
  const remaining = context.remainingMs;
  if (force || remaining === undefined || remaining > 0)
    return {
      kind: "realtime",
      deadlineMs: force || remaining === undefined ? undefined : remaining,
      fallback: true,
    };
  if (result.response)
    return finalError(
      errorFromResponse({
        status: result.response.status,
        body: result.response.body,
        provider: context.provider,
      }),
      true,
      1,
    );
  const reason =
    result.not_run === "expired"
      ? "expired"
      : result.not_run === "cancelled"
        ? "cancelled"
        : "failed";
  return finalError(
    new BatchLineNotRunError({
      reason,
      batchId: result.batch,
      ...(result.message ? { detail: result.message } : {}),
    }),
    true,
  );
}

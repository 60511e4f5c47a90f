// What a batch will cost before any call is made (`salvo run --dry-run`): input tokens by
// tokenizer, output tokens as an upper bound (`max_tokens`) and as an expected figure, and both
// in USD.
//
// The expected output is only as good as what is known about answer lengths, so it comes from a
// named source, never from a constant: the simulator's answer-length model when the run targets
// the simulator; else the answers already in this run's output (a resumed or budget-stopped run),
// as the ratio of the output tokens they used to the bound they had; else nothing: the
// expected figure is then unknown and only the bound is given.
import type { CostEstimate, ProviderRequest } from "../providers/provider.ts";
import { modelOf, type Pricing } from "./pricing.ts";

/** Where the expected output comes from. */
export type ExpectedOutput = {
  /** How it was estimated, for the report (e.g. "the simulator's answer lengths"). */
  source: string;
  /** Expected output tokens of a request whose output bound is `bound`. */
  tokens: (request: ProviderRequest, bound: number) => number;
};

export type BatchEstimateOptions = {
  /** The provider's estimate: input tokens, and the output bound (`max_tokens`). */
  estimate: (request: ProviderRequest) => CostEstimate;
  pricing: Pricing;
  /** @default none: the expected output is unknown */
  expected?: ExpectedOutput | undefined;
};

/** The estimate of the calls a batch will make. */
export type BatchEstimateSummary = {
  /** Calls to make (items not done, not invalid, not answered from the cache). */
  calls: number;
  tokens: {
    /** Input tokens, by tokenizer (o200k; within a few percent for other models). */
    input: number;
    /** Output tokens if every answer used its `max_tokens`: an upper bound. */
    outputBound: number;
    /** Expected output tokens; undefined when unknown. */
    outputExpected: number | undefined;
  };
  /** USD over the calls with a known price. */
  cost: { bound: number; expected: number | undefined };
  /** The models the calls name. */
  models: string[];
  /** Calls whose model has no known price (not in `cost`), and those models. */
  unpriced: number;
  unpricedModels: string[];
  /** Where the expected output came from; undefined when it is unknown. */
  expectedSource: string | undefined;
};

/**
 * The expected value of `min(k, cap)` for `k` uniform over the whole numbers `min..max`: the mean
 * answer length of a server that draws lengths uniformly and stops at `max_tokens`.
 */
export function uniformCappedMean(min: number, max: number, cap: number): number {
  let sum = 0;
  for (let k = min; k <= max; k++) sum += Math.max(1, Math.min(k, cap));
  return sum / (max - min + 1);
}

/** Accumulates the estimate, one request at a time (flat memory for any batch size). */
export class BatchEstimate {
  readonly #options: BatchEstimateOptions;
  readonly #unpricedModels = new Set<string>();
  readonly #models = new Set<string>();
  readonly #summary: BatchEstimateSummary;

  constructor(options: BatchEstimateOptions) {
    this.#options = options;
    const known = options.expected !== undefined;
    this.#summary = {
      calls: 0,
      tokens: { input: 0, outputBound: 0, outputExpected: known ? 0 : undefined },
      cost: { bound: 0, expected: known ? 0 : undefined },
      models: [],
      unpriced: 0,
      unpricedModels: [],
      expectedSource: options.expected?.source,
    };
  }

  /** Adds a call to make. */
  add(request: ProviderRequest): void {
    const { estimate, pricing, expected } = this.#options;
    const s = this.#summary;
    const { inputTokens, outputTokens } = estimate(request);
    s.calls += 1;
    s.tokens.input += inputTokens;
    s.tokens.outputBound += outputTokens;
    const expectedOutput = expected?.tokens(request, outputTokens);
    if (expectedOutput !== undefined && s.tokens.outputExpected !== undefined)
      s.tokens.outputExpected += expectedOutput;
    const model = modelOf(request.body);
    if (model !== undefined) this.#models.add(model);
    const bound = pricing.bound(model, { inputTokens, outputTokens });
    if (bound === undefined) {
      s.unpriced += 1;
      if (model !== undefined) this.#unpricedModels.add(model);
      return;
    }
    s.cost.bound += bound;
    if (expectedOutput !== undefined && s.cost.expected !== undefined)
      s.cost.expected += pricing.bound(model, { inputTokens, outputTokens: expectedOutput }) ?? 0;
  }

  summary(): BatchEstimateSummary {
    return {
      ...this.#summary,
      tokens: { ...this.#summary.tokens },
      cost: { ...this.#summary.cost },
      models: [...this.#models].sort(),
      unpricedModels: [...this.#unpricedModels].sort(),
    };
  }
}

/**
 * The expected output learned from answers already received: each new request is expected to use
 * the same share of its bound as the answered ones did overall. Undefined with fewer than
 * `minAnswers` answers (too few to say).
 */
export function expectedFromHistory(
  answers: { outputTokens: number; bound: number }[],
  minAnswers = 10,
): ExpectedOutput | undefined {
  if (answers.length < minAnswers) return undefined;
  let used = 0;
  let bound = 0;
  for (const answer of answers) {
    used += answer.outputTokens;
    bound += answer.bound;
  }
  if (bound <= 0) return undefined;
  const share = used / bound;
  return {
    source: `the ${answers.length} answers already in the output (they used ${(share * 100).toFixed(0)}% of their max_tokens)`,
    tokens: (_request, requestBound) => requestBound * share,
  };
}

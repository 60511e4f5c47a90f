// How much work an answer is, so that latencies of short and long answers can be compared. An LLM
// call takes about a + b * outputTokens (time to first token, then a rate per token), so the work
// of an answer is taken as `outputTokens + tau` with tau = a / b: the fixed part counted in
// tokens. Latency divided by work is then about the same for every length at a given load, and
// rises only with the load (queueing, contention): what the controller compares across limits.
//
// tau is learned by least squares within each group of samples taken at one load (the slope and
// intercept of latency on tokens); until a group has spread enough in length to tell, it is a
// prior of 50 tokens (OpenAI and Anthropic models take about 0.2-1 s to the first token and
// 5-20 ms per token). A wrong tau adds noise, never bias: every limit sees the same mix of lengths.

/** The fixed part of a call, in tokens, before anything is learned. */
export const PRIOR_TAU = 50;
/** Weight of the prior, in samples' worth: a few groups overrule it. */
const PRIOR_WEIGHT = 16;

/** Least-squares sums of latency on tokens, for one group of samples at one load. */
export class RegressionSums {
  n = 0;
  #t = 0;
  #y = 0;
  #tt = 0;
  #ty = 0;

  add(tokens: number, latencyMs: number): void {
    this.n++;
    this.#t += tokens;
    this.#y += latencyMs;
    this.#tt += tokens * tokens;
    this.#ty += tokens * latencyMs;
  }

  /**
   * The fixed part in tokens (intercept / slope) and how much to trust it (the samples, scaled
   * by how much the lengths spread), or undefined when the lengths hardly vary (then any tau
   * normalises them alike) or the fit is not an LLM's (a slope <= 0).
   */
  tau(): { tau: number; weight: number } | undefined {
    const n = this.n;
    if (n < 4) return undefined;
    const meanT = this.#t / n;
    const varT = this.#tt / n - meanT * meanT;
    // A spread under 20% of the mean length cannot tell the intercept from the slope.
    if (!(meanT > 0) || varT <= (0.2 * meanT) ** 2) return undefined;
    const slope = (this.#ty / n - meanT * (this.#y / n)) / varT;
    if (!(slope > 0)) return undefined;
    const intercept = this.#y / n - slope * meanT;
    const tau = Math.min(10_000, Math.max(0, intercept / slope));
    return { tau, weight: n * Math.min(1, Math.sqrt(varT) / meanT) };
  }

  reset(): void {
    this.n = 0;
    this.#t = 0;
    this.#y = 0;
    this.#tt = 0;
    this.#ty = 0;
  }
}

export class WorkModel {
  #tau = PRIOR_TAU;
  #weight = PRIOR_WEIGHT;
  #meanTokens: number | undefined;

  /** The fixed part of a call, in tokens. */
  get tau(): number {
    return this.#tau;
  }

  /** The work of an answer with this many output tokens (undefined: the usual length). */
  work(outputTokens: number | undefined): number {
    return (outputTokens ?? this.#meanTokens ?? 0) + this.#tau;
  }

  /** Records an answer's length (the usual length stands in for answers that have none). */
  observe(outputTokens: number | undefined): void {
    if (outputTokens === undefined) return;
    this.#meanTokens =
      this.#meanTokens === undefined
        ? outputTokens
        : this.#meanTokens + 0.05 * (outputTokens - this.#meanTokens);
  }

  /** Folds one group's fit into tau (a weighted running mean; the prior weighs a few groups). */
  learn(sums: RegressionSums): void {
    const fit = sums.tau();
    if (fit === undefined) return;
    const total = this.#weight + fit.weight;
    this.#tau += ((fit.tau - this.#tau) * fit.weight) / total;
    // Old groups fade: the weight saturates, so a provider whose fixed part changes is followed.
    this.#weight = Math.min(total, 400);
  }
}

// How long an answer takes and how long it is: time to first token plus time per output token,
// with seeded jitter, optionally slowed by load; and the output length drawn from a configured
// range and capped by the request's max_tokens.

import type { Random } from "./seeded-random.ts";

export type LatencySettings = {
  /** Time to first token, in ms. */
  ttftMs: number;
  /** Time per output token after the first, in ms. */
  msPerToken: number;
  /** Relative jitter: each time is scaled by a uniform factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
  /**
   * Slowdown per other request in service: times scale by
   * `1 + loadFactor * (inService - 1) ^ loadExponent`.
   */
  loadFactor: number;
  /**
   * How fast the slowdown grows with the requests in service: 1 is linear (throughput still
   * grows with more requests while `loadFactor` < 1); above 1 it is contention that peaks, as
   * seed 004's extraction API did (5 requests at once took longer than one after another).
   * @default 1
   */
  loadExponent?: number | undefined;
};

export type Timing = {
  /** Time to first token, in ms. */
  ttftMs: number;
  /** Time per following token, in ms. */
  msPerToken: number;
};

/**
 * The timing of one answer that starts service with `inService` requests in service (itself
 * included). Draws two numbers from `random` (or none when jitter is 0).
 */
export function sampleTiming(settings: LatencySettings, random: Random, inService: number): Timing {
  const load = 1 + settings.loadFactor * Math.max(0, inService - 1) ** (settings.loadExponent ?? 1);
  if (settings.jitter === 0) {
    return { ttftMs: settings.ttftMs * load, msPerToken: settings.msPerToken * load };
  }
  const a = 1 + settings.jitter * (2 * random() - 1);
  const b = 1 + settings.jitter * (2 * random() - 1);
  return { ttftMs: settings.ttftMs * load * a, msPerToken: settings.msPerToken * load * b };
}

/** Total service time of an answer of `outputTokens` tokens, in ms. */
export function serviceMs(timing: Timing, outputTokens: number): number {
  return timing.ttftMs + Math.max(0, outputTokens - 1) * timing.msPerToken;
}

/** The output length range, in tokens (`min === max` for a fixed length). */
export type OutputRange = { min: number; max: number };

export type OutputLength = {
  /** Tokens in the answer, at least 1. */
  tokens: number;
  /** Whether the request's cap cut the answer short (`finish_reason: "length"`). */
  capped: boolean;
};

/**
 * The answer's length: a whole number drawn uniformly from `range` with `u` in [0, 1), then
 * capped at `cap` (the request's max_tokens).
 */
export function outputLength(range: OutputRange, cap: number, u: number): OutputLength {
  const wanted = range.min + Math.floor(u * (range.max - range.min + 1));
  const tokens = Math.max(1, Math.min(wanted, cap));
  return { tokens, capped: wanted > cap };
}

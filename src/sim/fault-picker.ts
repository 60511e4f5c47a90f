// Which injected fault, if any, a request suffers: one seeded draw per request, in arrival order,
// so the same seed gives the same fault sequence.

import type { Random } from "./seeded-random.ts";

/** The faults the simulator can inject. */
export const FAULT_KINDS = [
  "server_error",
  "overloaded",
  "reset",
  "malformed",
  "truncated",
  "hang",
  "slow_first_byte",
] as const;

/**
 * - `server_error`: 500 in the provider's error shape.
 * - `overloaded`: 503 (OpenAI path) or 529 `overloaded_error` (Anthropic path).
 * - `reset`: the socket is destroyed without an answer.
 * - `malformed`: status 200 with a body that is not valid JSON.
 * - `truncated`: status 200 with the body cut in half (a stream ends without its terminator).
 * - `hang`: never answers, holding its slot, until the client goes away or the sim closes.
 * - `slow_first_byte`: a normal answer, with `slowMs` added before the first byte.
 */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Probability of each fault per request; their sum is at most 1. */
export type FaultProbabilities = Readonly<Record<FaultKind, number>>;

export class FaultPicker {
  readonly #random: Random;
  readonly #cumulative: number[];
  readonly #none: boolean;

  constructor(probabilities: FaultProbabilities, random: Random) {
    this.#random = random;
    let sum = 0;
    this.#cumulative = FAULT_KINDS.map((kind) => {
      sum += probabilities[kind];
      return sum;
    });
    this.#none = sum === 0;
  }

  /** The fault for the next request, or `undefined`. Draws once (never when all are 0). */
  pick(): FaultKind | undefined {
    if (this.#none) return undefined;
    const u = this.#random();
    for (let i = 0; i < FAULT_KINDS.length; i++) {
      if (u < this.#cumulative[i]!) return FAULT_KINDS[i];
    }
    return undefined;
  }
}

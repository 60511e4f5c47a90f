// Exponential backoff with jitter, so clients that failed together do not retry together.

import type { Random } from "../random.ts";

/**
 * `full`: uniform in [0, min(max, base * 2^(attempt-1))] (AWS "full jitter").
 * `decorrelated`: uniform in [base, min(max, 3 * previous)] (Polly / cockatiel default).
 */
export type Jitter = "full" | "decorrelated";

export type BackoffOptions = { jitter: Jitter; baseDelayMs: number; maxDelayMs: number };

/** The delay before the attempt after `attempt` (1-based), in ms. */
export function backoffDelay(
  options: BackoffOptions,
  attempt: number,
  previousDelayMs: number,
  random: Random,
): number {
  const { baseDelayMs: base, maxDelayMs: max } = options;
  if (options.jitter === "decorrelated") {
    const upper = Math.min(max, Math.max(base, previousDelayMs * 3));
    return Math.min(max, base + random() * (upper - base));
  }
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt - 1, 52));
  return random() * ceiling;
}

// A fixed concurrency limit that the user may change while work runs.

import { ConfigError } from "../../errors.ts";
import type { ConcurrencyController } from "./concurrency-controller.ts";

export class StaticConcurrency implements ConcurrencyController {
  #limit: number;
  readonly #listeners = new Set<(limit: number) => void>();

  /** @param limit attempts holding a slot at once; an integer >= 1. */
  constructor(limit: number) {
    this.#limit = check(limit);
  }

  get limit(): number {
    return this.#limit;
  }

  /** Changes the limit. Lowering never interrupts running attempts; no new one starts above it. */
  setLimit(limit: number): void {
    const next = check(limit);
    if (next === this.#limit) return;
    this.#limit = next;
    for (const listener of this.#listeners) listener(next);
  }

  onStart(): void {}

  onOutcome(): void {}

  subscribe(listener: (limit: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

function check(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ConfigError({ field: "concurrency", expected: "an integer >= 1", got: limit });
  }
  return limit;
}

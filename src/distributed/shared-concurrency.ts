// The concurrency controller of a process that shares its upstream's limit through Redis: its
// local limit follows the shared one (a fixed number, or the one AIMD limit every process moves
// under `auto`), so a process never holds more slots than the whole upstream may use. The local
// samples teach it nothing: the shared limit moves in Redis, from every process's outcomes
// (see shared-admission.ts).
import type { ConcurrencyController } from "../core/concurrency/concurrency-controller.ts";

/** Something that knows the shared limit: a `SharedAdmission`. */
export type SharedLimitSource = {
  readonly limit: number;
  onLimit(listener: (limit: number) => void): () => void;
};

export class SharedConcurrency implements ConcurrencyController {
  readonly #source: SharedLimitSource;
  readonly #listeners = new Set<(limit: number) => void>();
  #unsubscribe: (() => void) | undefined;

  constructor(source: SharedLimitSource) {
    this.#source = source;
  }

  get limit(): number {
    return this.#source.limit;
  }

  onStart(): void {}

  onOutcome(): void {}

  subscribe(listener: (limit: number) => void): () => void {
    this.#listeners.add(listener);
    this.#unsubscribe ??= this.#source.onLimit((limit) => {
      for (const l of this.#listeners) l(limit);
    });
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#unsubscribe?.();
        this.#unsubscribe = undefined;
      }
    };
  }
}

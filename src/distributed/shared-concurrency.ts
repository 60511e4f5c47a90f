// The concurrency controller of a process that shares its upstream's limit through Redis: its
// local limit follows the shared one (a fixed number, or the one AIMD limit every process moves
// under `auto`), so a process never holds more slots than the whole upstream may use; an optional
// cap keeps one process (a small machine) below it. The local
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
  readonly #cap: number;
  readonly #listeners = new Set<(limit: number) => void>();
  #unsubscribe: (() => void) | undefined;

  /** @param cap the most this process holds whatever the shared limit. @default Infinity */
  constructor(source: SharedLimitSource, cap = Number.POSITIVE_INFINITY) {
    this.#source = source;
    this.#cap = cap;
  }

  get limit(): number {
    return Math.min(this.#source.limit, this.#cap);
  }

  onStart(): void {}

  onOutcome(): void {}

  subscribe(listener: (limit: number) => void): () => void {
    this.#listeners.add(listener);
    this.#unsubscribe ??= this.#source.onLimit((limit) => {
      const local = Math.min(limit, this.#cap);
      for (const l of this.#listeners) l(local);
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

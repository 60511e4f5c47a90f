// A small typed event emitter. A listener that throws is isolated: the error goes to
// `onListenerError` and neither the other listeners nor the emitter's caller see it.

export type Listener<P> = (payload: P) => void;

export class Emitter<Events extends Record<string, unknown>> {
  readonly #listeners = new Map<keyof Events, Array<Listener<never>>>();
  readonly #onListenerError: (error: unknown, event: keyof Events) => void;
  readonly #invoke: (listener: Listener<never>, payload: never) => void;

  /**
   * @param onListenerError receives what a listener threw.
   * @param invoke calls a listener; lets the owner choose the context listeners run in.
   */
  constructor(
    onListenerError: (error: unknown, event: keyof Events) => void,
    invoke: (listener: Listener<never>, payload: never) => void = (listener, payload) =>
      listener(payload),
  ) {
    this.#onListenerError = onListenerError;
    this.#invoke = invoke;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const list = this.#listeners.get(event);
    // Copy on write, so an emit in progress keeps the list it started with.
    this.#listeners.set(event, list ? [...list, listener] : [listener]);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    const next = list.filter((l) => l !== listener);
    if (next.length > 0) this.#listeners.set(event, next);
    else this.#listeners.delete(event);
  }

  /** Whether anyone listens; callers skip building a payload nobody reads. */
  has(event: keyof Events): boolean {
    return this.#listeners.has(event);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#listeners.get(event) as Array<Listener<Events[K]>> | undefined;
    if (!list) return;
    for (const listener of list) {
      try {
        this.#invoke(listener as Listener<never>, payload as never);
      } catch (error) {
        try {
          this.#onListenerError(error, event);
        } catch {
          // The error handler itself failed; there is nowhere safer to report it.
        }
      }
    }
  }
}

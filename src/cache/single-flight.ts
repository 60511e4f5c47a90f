// Single-flight: identical requests in flight at the same time make one call and share its
// outcome. The first caller for a key starts the call; later callers for the same key join it
// until it settles.
//
// Cancellation: each caller has its own signal. A caller that aborts leaves at once (its own
// promise rejects with its signal's reason); the shared call goes on for the others, and is
// aborted only when every caller has left. A call whose callers have all left is forgotten at
// once, so a new caller for the same key starts a fresh call instead of joining a dying one.

type Flight<T> = {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  callers: number;
};

/** How a caller got its value: `leader` started the call, `follower` joined one in flight. */
export type FlightRole = "leader" | "follower";

export class SingleFlight<T> {
  readonly #flights = new Map<string, Flight<T>>();

  /** Calls in flight now (keys with at least one caller). */
  get size(): number {
    return this.#flights.size;
  }

  /**
   * Joins the call in flight for `key`, or starts one with `start(signal)`, where `signal` aborts
   * only when every caller has left. Resolves or rejects with the call's outcome; rejects with
   * `signal.reason` if this caller's `signal` aborts first. `onJoin` is told the caller's role
   * synchronously.
   */
  run(
    key: string,
    start: (signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal | undefined,
    onJoin?: (role: FlightRole) => void,
  ): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let flight = this.#flights.get(key);
    onJoin?.(flight === undefined ? "leader" : "follower");
    if (flight === undefined) {
      const controller = new AbortController();
      const created: Flight<T> = {
        controller,
        callers: 0,
        promise: Promise.resolve()
          .then(() => start(controller.signal))
          .finally(() => this.#forget(key, created)),
      };
      flight = created;
      this.#flights.set(key, flight);
    }
    flight.callers += 1;
    if (signal === undefined) return flight.promise;
    return this.#race(key, flight, signal);
  }

  #race(key: string, flight: Flight<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        flight.callers -= 1;
        if (flight.callers === 0) {
          this.#forget(key, flight);
          flight.controller.abort(signal.reason);
        }
        reject(signal.reason);
      };
      signal.addEventListener("abort", leave, { once: true });
      flight.promise.then(
        (value) => {
          signal.removeEventListener("abort", leave);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", leave);
          reject(error);
        },
      );
    });
  }

  #forget(key: string, flight: Flight<T>): void {
    if (this.#flights.get(key) === flight) this.#flights.delete(key);
  }
}

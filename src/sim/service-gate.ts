// The server's capacity: `slots` requests in service at once, the rest wait in a FIFO queue, and
// beyond `queueLimit` waiting requests new arrivals are turned away, as real inference servers do
// (more client concurrency means longer latency, not more throughput).

/** One request's place at the gate. */
export class Ticket {
  /** `queued` -> `serving` -> `done`, or `queued` -> `done` when cancelled while waiting. */
  state: "queued" | "serving" | "done" = "queued";
  readonly #start: () => void;
  constructor(start: () => void) {
    this.#start = start;
  }
  /** Called by the gate when the ticket gets a slot. */
  begin(): void {
    this.state = "serving";
    this.#start();
  }
}

export type ServiceGateOptions = {
  /** Requests in service at once. `Infinity` for no limit. */
  slots: number;
  /** Requests allowed to wait for a slot. `Infinity` for no limit. */
  queueLimit: number;
  /** Requests in the server (in service + queued) at most; more are refused (`full`). @default Infinity */
  rejectAbove?: number;
};

export class ServiceGate {
  readonly slots: number;
  readonly queueLimit: number;
  readonly rejectAbove: number;
  #inService = 0;
  #queued = 0;
  #maxInService = 0;
  #maxInServer = 0;
  // FIFO of tickets; cancelled tickets stay in place (state `done`) and are skipped when reached,
  // so cancelling is O(1). `#head` is the index of the oldest entry still in the array.
  #queue: Ticket[] = [];
  #head = 0;
  #draining = false;

  constructor(options: ServiceGateOptions) {
    this.slots = options.slots;
    this.queueLimit = options.queueLimit;
    this.rejectAbove = options.rejectAbove ?? Number.POSITIVE_INFINITY;
  }

  /** Whether the server holds `rejectAbove` requests already: a new one is refused (429). */
  get full(): boolean {
    return this.#inService + this.#queued >= this.rejectAbove;
  }

  get inService(): number {
    return this.#inService;
  }
  get queued(): number {
    return this.#queued;
  }
  /** The most requests seen in service at once. */
  get maxInService(): number {
    return this.#maxInService;
  }
  /** The most requests seen in the server (in service + queued) at once. */
  get maxInServer(): number {
    return this.#maxInServer;
  }

  /**
   * Puts `ticket` in service now (its start callback runs synchronously), or in the queue, or
   * refuses it when the queue is full (returns false; the callback never runs).
   */
  enter(ticket: Ticket): boolean {
    if (this.#inService < this.slots && this.#queued === 0) {
      this.#inService++;
      this.#peaks();
      ticket.begin();
      return true;
    }
    if (this.#queued >= this.queueLimit) {
      ticket.state = "done";
      return false;
    }
    this.#queue.push(ticket);
    this.#queued++;
    this.#peaks();
    return true;
  }

  /**
   * Ends a ticket: frees its slot (and starts the next waiter) if it was in service, or removes
   * it from the queue if it was waiting. Calling it again is a no-op.
   */
  release(ticket: Ticket): void {
    if (ticket.state === "queued") {
      ticket.state = "done";
      this.#queued--;
      return;
    }
    if (ticket.state !== "serving") return;
    ticket.state = "done";
    this.#inService--;
    this.#drain();
  }

  /** Forgets the peaks (the current counts stay). */
  resetPeaks(): void {
    this.#maxInService = this.#inService;
    this.#maxInServer = this.#inService + this.#queued;
  }

  // A trampoline: a ticket that finishes synchronously inside `begin` calls `release`, which must
  // not recurse into another `begin`; the outer loop starts the next one instead.
  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#inService < this.slots && this.#queued > 0) {
        const next = this.#queue[this.#head]!;
        this.#queue[this.#head] = undefined as unknown as Ticket;
        this.#head++;
        if (next.state !== "queued") continue;
        this.#queued--;
        this.#inService++;
        this.#peaks();
        next.begin();
      }
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (this.#queued === 0 && this.#head > 0) {
        this.#queue = [];
        this.#head = 0;
      }
    } finally {
      this.#draining = false;
    }
  }

  #peaks(): void {
    if (this.#inService > this.#maxInService) this.#maxInService = this.#inService;
    const inServer = this.#inService + this.#queued;
    if (inServer > this.#maxInServer) this.#maxInServer = inServer;
  }
}

// A run's spending budget: at most `maxCostUsd` dollars and/or `maxTokens` tokens (input +
// output, as the provider reports them). Each call reserves its upper bound (the estimated input
// and `max_tokens` of output) before it is admitted, and the reservation is settled with the real
// usage when the call ends (a failed call spends nothing).
//
// Admission is FIFO: a call that does not fit waits while other reservations are outstanding,
// since they usually settle below their bound; when nothing is reserved and it still does not
// fit, the budget is exhausted: that call and every waiting and later one is refused with
// BudgetExceededError. So a run stops with `limit - spent` below one call's bound, and never
// spends past the limit while estimates are upper bounds.
import { AbortedError, type BudgetDimension, BudgetExceededError } from "../errors.ts";

/** An amount in both dimensions. */
export type Spend = { usd: number; tokens: number };

export type BudgetLimits = {
  /** Most USD the run may spend. @default Infinity (no cost budget) */
  maxCostUsd?: number | undefined;
  /** Most tokens (input + output) the run may use. @default Infinity (no token budget) */
  maxTokens?: number | undefined;
};

type Waiter = {
  amount: Spend;
  resolve: (reservation: Reservation) => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
};

/** Rounding slack for sums of prices (floating point). */
const EPSILON = 1e-12;

/** One admitted call's hold on the budget; settle it exactly once. */
export class Reservation {
  readonly amount: Spend;
  readonly #budget: Budget;
  #settled = false;
  constructor(budget: Budget, amount: Spend) {
    this.#budget = budget;
    this.amount = amount;
  }
  /** Releases the hold and records what the call really spent (zeros for a failed call). */
  settle(actual: Spend): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#budget.release(this.amount, actual);
  }
}

export class Budget {
  readonly maxCostUsd: number;
  readonly maxTokens: number;
  readonly spent: Spend = { usd: 0, tokens: 0 };
  readonly reserved: Spend = { usd: 0, tokens: 0 };
  /** Calls refused so far. */
  refused = 0;
  #exhausted: BudgetExceededError | undefined;
  readonly #queue: Waiter[] = [];
  /** Reservations not yet settled. */
  #held = 0;

  constructor(limits: BudgetLimits) {
    this.maxCostUsd = limits.maxCostUsd ?? Number.POSITIVE_INFINITY;
    this.maxTokens = limits.maxTokens ?? Number.POSITIVE_INFINITY;
    for (const [name, value] of [
      ["maxCostUsd", this.maxCostUsd],
      ["maxTokens", this.maxTokens],
    ] as const)
      if (!(value > 0)) throw new RangeError(`Budget: ${name} must be > 0, got ${value}`);
  }

  /** Whether a cost budget is set (then every call needs a known price). */
  get limitsCost(): boolean {
    return Number.isFinite(this.maxCostUsd);
  }

  /** The refusal that exhausted the budget, once it is exhausted. */
  get exhausted(): BudgetExceededError | undefined {
    return this.#exhausted;
  }

  /**
   * Reserves `amount` (the call's upper bound), waiting in FIFO order while it does not fit and
   * other reservations are outstanding. Rejects with BudgetExceededError once the budget is
   * exhausted, or with `signal.reason` (an AbortedError if none) if the signal aborts first.
   */
  reserve(amount: Spend, signal?: AbortSignal | undefined): Promise<Reservation> {
    if (this.#exhausted) return this.#refuse();
    if (signal?.aborted) return Promise.reject(signal.reason ?? new AbortedError());
    if (this.#queue.length === 0 && this.#fits(amount)) return Promise.resolve(this.#hold(amount));
    return new Promise<Reservation>((resolve, reject) => {
      const waiter: Waiter = {
        amount,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.#queue.indexOf(waiter);
          if (at >= 0) this.#queue.splice(at, 1);
          reject(signal?.reason ?? new AbortedError());
          this.#pump();
        },
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.#queue.push(waiter);
      this.#pump();
    });
  }

  /** What is left before the limits, spending and outstanding reservations taken off. */
  get available(): Spend {
    return {
      usd: Math.max(0, this.maxCostUsd - this.spent.usd - this.reserved.usd),
      tokens: Math.max(0, this.maxTokens - this.spent.tokens - this.reserved.tokens),
    };
  }

  /**
   * Records spending nobody reserved here: what a provider batch submitted by an earlier run of
   * the same output turned out to cost once its results came back (the money is spent whatever
   * this run's budget says).
   */
  charge(actual: Spend): void {
    this.spent.usd += actual.usd;
    this.spent.tokens += actual.tokens;
  }

  /**
   * Refuses a call its caller sized itself and will not make (items of a provider batch that did
   * not fit what is `available`): the budget is exhausted from now on, as when `reserve` refuses,
   * and the refusal is counted. Returns the error to settle the item with.
   */
  refuse(amount: Spend): BudgetExceededError {
    if (this.#exhausted === undefined) {
      const dimension = this.#overflow(amount) ?? "cost";
      this.#exhausted = new BudgetExceededError({
        dimension,
        limit: dimension === "cost" ? this.maxCostUsd : this.maxTokens,
        spent: dimension === "cost" ? this.spent.usd : this.spent.tokens,
        cost: dimension === "cost" ? amount.usd : amount.tokens,
      });
      this.#pump();
    }
    this.refused += 1;
    return this.#exhausted;
  }

  /** Called by `Reservation.settle`. */
  release(amount: Spend, actual: Spend): void {
    this.#held -= 1;
    this.reserved.usd -= amount.usd;
    this.reserved.tokens -= amount.tokens;
    this.spent.usd += actual.usd;
    this.spent.tokens += actual.tokens;
    this.#pump();
  }

  #hold(amount: Spend): Reservation {
    this.#held += 1;
    this.reserved.usd += amount.usd;
    this.reserved.tokens += amount.tokens;
    return new Reservation(this, amount);
  }

  /** The first dimension `amount` does not fit in, or undefined if it fits. */
  #overflow(amount: Spend): BudgetDimension | undefined {
    if (this.spent.usd + this.reserved.usd + amount.usd > this.maxCostUsd + EPSILON) return "cost";
    if (this.spent.tokens + this.reserved.tokens + amount.tokens > this.maxTokens) return "tokens";
    return undefined;
  }

  #fits(amount: Spend): boolean {
    return this.#overflow(amount) === undefined;
  }

  #pump(): void {
    while (this.#queue.length > 0 && this.#exhausted === undefined) {
      const head = this.#queue[0]!;
      if (this.#fits(head.amount)) {
        this.#queue.shift();
        head.signal?.removeEventListener("abort", head.onAbort);
        head.resolve(this.#hold(head.amount));
        continue;
      }
      // Outstanding reservations may settle below their bound: wait for them.
      if (this.#held > 0) return;
      const dimension = this.#overflow(head.amount)!;
      this.#exhausted = new BudgetExceededError({
        dimension,
        limit: dimension === "cost" ? this.maxCostUsd : this.maxTokens,
        spent: dimension === "cost" ? this.spent.usd : this.spent.tokens,
        cost: dimension === "cost" ? head.amount.usd : head.amount.tokens,
      });
    }
    if (this.#exhausted === undefined) return;
    for (const waiter of this.#queue.splice(0)) {
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      this.refused += 1;
      waiter.reject(this.#exhausted);
    }
  }

  #refuse(): Promise<never> {
    this.refused += 1;
    return Promise.reject(this.#exhausted);
  }
}

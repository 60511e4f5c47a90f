// Calls to a provider's batch API that are not answers (upload, create, retrieve, results,
// cancel): retried on failures that waiting fixes (5xx, 429, the network; the provider's hint
// first, else 1 s, 2 s, 4 s...), turned into a BatchApiError when waiting will not help, and
// sleeps on the injected clock that an abort cuts short.
import { type Clock, sleepOn } from "../core/clock.ts";
import { classifyFailure } from "../core/retry/classify-failure.ts";
import { BatchApiError, ProviderError } from "../errors.ts";

/** Attempts per control call, the first included. */
const ATTEMPTS = 5;

export class BatchControl {
  readonly #provider: string;
  readonly #clock: Clock;
  readonly signal: AbortSignal;

  constructor(provider: string, clock: Clock, signal: AbortSignal) {
    this.#provider = provider;
    this.#clock = clock;
    this.signal = signal;
  }

  /** Runs `call`, retrying it on failures that waiting fixes; rejects with BatchApiError. */
  async call<T>(operation: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(this.signal);
      } catch (error) {
        if (this.signal.aborted) throw this.signal.reason;
        if (!classifyFailure(error).retryable || attempt >= ATTEMPTS)
          throw this.error(operation, error);
        await this.sleep(backoffMs(attempt, error));
      }
    }
  }

  /** Whether another attempt may fix `error`. */
  retryable(error: unknown): boolean {
    return classifyFailure(error).retryable;
  }

  /** `error` as a BatchApiError naming the provider and the operation. */
  error(operation: string, error: unknown): BatchApiError {
    if (error instanceof BatchApiError) return error;
    const status = error instanceof ProviderError ? error.status : undefined;
    return new BatchApiError(
      `${this.#provider} batch API: ${operation} failed: ${(error as Error).message ?? String(error)}`,
      { provider: this.#provider, operation, status },
      { cause: error },
    );
  }

  /** Sleeps on the clock; the signal wakes it early. */
  async sleep(ms: number): Promise<void> {
    await sleepOn(this.#clock, ms, this.signal);
  }
}

/** 1 s, 2 s, 4 s... up to 60 s, or the provider's own hint. */
export function backoffMs(attempt: number, error: unknown): number {
  const hint = error instanceof ProviderError ? error.retryAfterMs : undefined;
  return hint ?? Math.min(60_000, 1000 * 2 ** (attempt - 1));
}

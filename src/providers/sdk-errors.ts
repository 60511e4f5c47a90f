// Maps what the official SDKs throw to Salvo's typed errors. Both SDKs share one error design
// (`APIError` with `status`, `headers`, `error`; `APIConnectionError`; `APIUserAbortError`).
import {
  InvalidResponseError,
  NetworkError,
  type ProviderError,
  SalvoError,
  TimeoutError,
} from "../errors.ts";
import { errorFromResponse } from "./classify.ts";

type SdkApiError = Error & { status?: number; headers?: Headers; error?: unknown };

/**
 * The error to reject a call with, given what the SDK threw.
 * When the attempt's signal has fired, its reason wins: the scheduler set it and knows why.
 */
export function errorFromSdk(error: unknown, provider: string, signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  if (error instanceof SalvoError) return error;
  if (!(error instanceof Error)) {
    return new NetworkError(`${provider}: unexpected failure: ${String(error)}`, { provider });
  }
  const api = error as SdkApiError;
  if (typeof api.status === "number") {
    return errorFromResponse(
      { status: api.status, headers: api.headers, body: api.error, message: api.message, provider },
      { cause: error },
    );
  }
  const kind = error.constructor.name;
  if (kind === "APIConnectionTimeoutError") {
    return new TimeoutError(
      `${provider}: the SDK timed out waiting for an answer`,
      { provider },
      { cause: error },
    );
  }
  if (error instanceof SyntaxError) {
    return new InvalidResponseError(
      `${provider}: the answer was not valid JSON: ${error.message}`,
      { provider, status: 200 },
      { cause: error },
    );
  }
  const reason =
    error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
  return new NetworkError(
    `${provider}: connection failed: ${reason}`,
    { provider },
    { cause: error },
  );
}

/** Checks the fields every caller relies on; a 2xx without them is a malformed answer. */
export function invalidBody(provider: string, what: string, requestId?: string): ProviderError {
  return new InvalidResponseError(`${provider}: the answer has no ${what}`, {
    provider,
    status: 200,
    requestId,
  });
}

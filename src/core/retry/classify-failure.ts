// Which failures are worth another attempt, by the typed error's failure class and status, never
// by message text. See `DefaultRetryPolicy` for the override hook (`retryOn`).
//
// | failure                                   | retried |
// |-------------------------------------------|---------|
// | `x-should-retry: true` / `false`          | yes / no (wins over everything below) |
// | rate_limit (429)                          | yes (and pauses the key) |
// | quota (429 insufficient_quota, spend cap) | no |
// | overload (529, 503)                       | yes |
// | server (5xx)                              | yes |
// | network, timeout, invalid_response        | yes |
// | client 408, 409                           | yes |
// | client 400, 401, 403, 404, 413, 422, ...  | no |
// | not a ProviderError (the task's own bug)  | no |

import { ProviderError } from "../../errors.ts";
import type { AttemptResult } from "../concurrency/concurrency-controller.ts";

export type Classification = { result: AttemptResult; retryable: boolean };

export function classifyFailure(error: unknown): Classification {
  if (!(error instanceof ProviderError)) return { result: "task_error", retryable: false };
  const result = error.failureClass;
  if (error.shouldRetry !== undefined) return { result, retryable: error.shouldRetry };
  return { result, retryable: isRetryable(error) };
}

function isRetryable(error: ProviderError): boolean {
  const status = error.status;
  switch (error.failureClass) {
    case "quota":
      return false;
    case "client":
      return status === 408 || status === 409;
    case "server":
      // The base ProviderError defaults to `server`; trust a 4xx status over that default.
      return !(
        status !== undefined &&
        status >= 400 &&
        status < 500 &&
        status !== 408 &&
        status !== 409 &&
        status !== 429
      );
    default:
      return true;
  }
}

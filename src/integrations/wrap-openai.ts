// A drop-in for existing OpenAI code: `wrapOpenAI(client, salvo)` returns the same client, typed
// the same, whose every request goes through Salvo's scheduler (admission, rate limits, one retry
// authority, usage reconciliation, audit, traces) by way of `salvoFetch`.
//
// `chat.completions.create`, `responses.create` and `embeddings.create` (plain and streaming)
// keep the SDK's promise (`.withResponse()`, `.asResponse()`) and reject with Salvo's typed
// errors (RateLimitError, QuotaExceededError, TimeoutError, ...). A streamed answer holds its
// slot until it has been read to the end, cancelled or aborted. The other methods are the
// client's own, through the same fetch (model requests admitted, the rest passed through).
import type OpenAI from "openai";
import type { Scheduler } from "../core/scheduler.ts";
import type { Salvo } from "../salvo.ts";
import { type SalvoFetchOptions, type SalvoFetchTarget, salvoFetch } from "./salvo-fetch.ts";
import { replaceMethods, SDK_TIMEOUT_MS, withSalvoErrors } from "./sdk-wrap.ts";

/** The methods whose errors are Salvo's typed errors. */
export const OPENAI_WRAPPED_METHODS = [
  "chat.completions.create",
  "responses.create",
  "embeddings.create",
] as const;

/**
 * Returns a copy of `client` whose requests go through `salvo` (a Salvo, a shared Scheduler, or
 * the options of a new client). The SDK's own retries are off on the copy; Salvo retries.
 */
export function wrapOpenAI<C extends OpenAI>(
  client: C,
  salvo: Salvo | Scheduler | SalvoFetchTarget,
  options: SalvoFetchOptions = {},
): C {
  const routed = client.withOptions({
    fetch: salvoFetch(salvo, options),
    maxRetries: 0,
    timeout: SDK_TIMEOUT_MS,
  }) as C;
  return replaceMethods(
    routed,
    OPENAI_WRAPPED_METHODS,
    (method) =>
      (...args) =>
        withSalvoErrors(method(...args) as Parameters<typeof withSalvoErrors>[0], "openai"),
  );
}

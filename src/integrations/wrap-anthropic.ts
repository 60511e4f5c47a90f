// A drop-in for existing Anthropic code: `wrapAnthropic(client, salvo)` returns the same client,
// typed the same, whose every request goes through Salvo's scheduler by way of `salvoFetch`:
// admission against RPM, ITPM and OTPM, one retry authority, usage reconciliation (the real
// output, not max_tokens), audit and traces.
//
// `messages.create` (plain and `stream: true`) keeps the SDK's promise and rejects with Salvo's
// typed errors; `messages.stream()` and every other method are the client's own, through the same
// fetch. A streamed answer holds its slot until it has been read to the end, cancelled or aborted.
import type Anthropic from "@anthropic-ai/sdk";
import type { Scheduler } from "../core/scheduler.ts";
import type { Salvo } from "../salvo.ts";
import { type SalvoFetchOptions, type SalvoFetchTarget, salvoFetch } from "./salvo-fetch.ts";
import { replaceMethods, SDK_TIMEOUT_MS, withSalvoErrors } from "./sdk-wrap.ts";

/** The methods whose errors are Salvo's typed errors. */
export const ANTHROPIC_WRAPPED_METHODS = ["messages.create"] as const;

/**
 * Returns a copy of `client` whose requests go through `salvo` (a Salvo, a shared Scheduler, or
 * the options of a new client). The SDK's own retries are off on the copy; Salvo retries.
 */
export function wrapAnthropic<C extends Anthropic>(
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
    ANTHROPIC_WRAPPED_METHODS,
    (method) =>
      (...args) =>
        withSalvoErrors(method(...args) as Parameters<typeof withSalvoErrors>[0], "anthropic"),
  );
}

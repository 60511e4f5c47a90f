// The two layers that keep Salvo from paying twice for one answer: single-flight (identical
// requests in flight share one call) and the response cache (an answer stored on disk is
// returned without a call). Both apply only to shareable requests (see `isShareable`), and both
// key on the request's fingerprint.
//
// Order: single-flight is outside the cache. A duplicate that arrives while the first copy is
// being looked up, called or written to disk joins it, so there is no window in which it misses
// the cache only because the first answer is not on disk yet.
import { modelOf } from "../cost/pricing.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import {
  abortedBy,
  answered,
  type CallLayer,
  type CallOutcome,
  type SalvoResult,
} from "./call-layer.ts";
import type { ResponseCache } from "./response-cache.ts";
import { type FlightRole, SingleFlight } from "./single-flight.ts";

export type ShareOptions = {
  /** Whether a request's answer may be shared (see `isShareable`). */
  shareable: (request: ProviderRequest) => boolean;
  /** The request's fingerprint. */
  keyOf: (request: ProviderRequest) => string;
  /** The scheduler's clock, ms, for the latency of answers that skip it. */
  now: () => number;
};

/** A shared or cached answer cost nothing now. */
function free(value: SalvoResult): SalvoResult["cost"] {
  return { usd: 0, model: value.cost?.model ?? modelOf(value.body) };
}

/**
 * Identical shareable requests in flight at once make one call; the others get its outcome, as
 * their own (their id, index and latency; `attempts: 0`; the value marked `shared`). A caller
 * that aborts leaves with an AbortedError; the call is aborted only when all have left.
 */
export function singleFlightLayer(options: ShareOptions): CallLayer {
  const flights = new SingleFlight<CallOutcome>();
  return async (request, context, next) => {
    if (!options.shareable(request)) return next(request, context);
    let role: FlightRole = "leader";
    let outcome: CallOutcome;
    try {
      outcome = await flights.run(
        options.keyOf(request),
        (signal) => next(request, { ...context, signal }),
        context.signal,
        (joined) => {
          role = joined;
        },
      );
    } catch (reason) {
      return answered(context, options.now(), {
        ok: false,
        error: abortedBy(reason),
        reason: "aborted",
      });
    }
    if (role === "leader") return outcome;
    if (!outcome.ok)
      return answered(context, options.now(), {
        ok: false,
        error: outcome.error,
        reason: outcome.reason,
      });
    const value = outcome.value;
    return answered(context, options.now(), {
      ok: true,
      value: { ...value, shared: true, cost: free(value) },
    });
  };
}

/**
 * Answers a shareable request from the cache when a fresh answer is stored (`cached: true`, no
 * call, no slot, no rate budget); otherwise calls, and stores a successful (2xx) answer that was
 * really called (not itself cached or shared).
 */
export function responseCacheLayer(
  options: ShareOptions & { cache: ResponseCache; provider: string },
): CallLayer {
  const { cache } = options;
  return async (request, context, next) => {
    if (!options.shareable(request)) return next(request, context);
    const key = options.keyOf(request);
    const hit = await cache.get(key);
    if (hit !== undefined) {
      const { status, body, usage, requestId } = hit.answer;
      const value: SalvoResult = {
        status,
        body,
        usage,
        requestId,
        rateLimits: undefined,
        cached: true,
        shared: false,
      };
      return answered(context, options.now(), {
        ok: true,
        value: { ...value, cost: free(value) },
      });
    }
    const outcome = await next(request, context);
    if (outcome.ok) {
      const value = outcome.value;
      if (!value.cached && !value.shared && value.status >= 200 && value.status < 300)
        await cache.put(
          key,
          {
            status: value.status,
            body: value.body,
            usage: value.usage,
            requestId: value.requestId,
          },
          {
            provider: options.provider,
            model: value.cost?.model ?? modelOf(request.body),
            costUsd: value.cost?.usd,
          },
        );
    }
    return outcome;
  };
}

// One attempt through an official SDK's generic `post`, shared by the OpenAI and Anthropic
// adapters: the SDK parses the answer, a failure becomes a typed Salvo error, and a 2xx answer
// without the fields every caller relies on is a malformed answer.

import type { ProviderResult, TokenUsage } from "./provider.ts";
import { parseRateLimitHeaders } from "./rate-limit-headers.ts";
import { errorFromSdk, invalidBody } from "./sdk-errors.ts";

/** The SDKs' own timeout is effectively off: the scheduler's per-attempt timeout governs. */
export const SDK_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** The part of both SDK clients that a call needs. */
export type SdkClient = {
  post<T>(
    path: string,
    options: { body: unknown; signal: AbortSignal },
  ): { withResponse(): Promise<{ data: T; response: Response }> };
};

/** The options every SDK client of ours runs with: no retries of its own, no timeout of its own. */
const OWN_RETRIES_OFF = { maxRetries: 0, timeout: SDK_TIMEOUT_MS } as const;

/**
 * The SDK client an adapter uses: the caller's, reconfigured, or a new one from `create`, both
 * with the SDK's own retries and timeout off (the scheduler is the one retry authority).
 */
export function sdkClient<C extends { withOptions(options: typeof OWN_RETRIES_OFF): C }>(
  given: C | undefined,
  create: (options: typeof OWN_RETRIES_OFF) => C,
): C {
  return given ? given.withOptions(OWN_RETRIES_OFF) : create(OWN_RETRIES_OFF);
}

/** What differs between the providers' wire formats for one attempt. */
export type SdkWire = {
  /** The path as the SDK's base URL needs it. */
  apiPath: (path: string) => string;
  /** The response header holding the provider's request id. */
  requestIdHeader: string;
  /** A field an answer on this path must have (e.g. `choices`); undefined for none. */
  requiredArray: (path: string) => string | undefined;
  usage: (body: unknown) => TokenUsage | undefined;
};

/** One attempt of `request` through `client`, in the provider's wire format. */
export function callThrough(
  client: SdkClient,
  provider: string,
  wire: SdkWire,
  request: { path: string; body: unknown },
  signal: AbortSignal,
): Promise<ProviderResult> {
  return sdkCall({
    client,
    provider,
    path: wire.apiPath(request.path),
    body: request.body,
    signal,
    requestIdHeader: wire.requestIdHeader,
    requiredArray: wire.requiredArray(request.path),
    usage: wire.usage,
  });
}

export type SdkCall = {
  client: SdkClient;
  provider: string;
  /** The path as the SDK's base URL needs it. */
  path: string;
  body: unknown;
  signal: AbortSignal;
  /** The response header holding the provider's request id. */
  requestIdHeader: string;
  /** A field the answer must have, e.g. `choices` for chat completions; undefined for none. */
  requiredArray: string | undefined;
  usage: (body: unknown) => TokenUsage | undefined;
};

export async function sdkCall(call: SdkCall): Promise<ProviderResult> {
  const { provider, signal } = call;
  let data: unknown;
  let response: Response;
  try {
    ({ data, response } = await call.client
      .post<unknown>(call.path, { body: call.body, signal })
      .withResponse());
  } catch (error) {
    throw errorFromSdk(error, provider, signal);
  }
  const requestId = response.headers.get(call.requestIdHeader) ?? undefined;
  if (typeof data !== "object" || data === null)
    throw invalidBody(provider, "JSON object", requestId);
  const field = call.requiredArray;
  if (field !== undefined && !Array.isArray((data as Record<string, unknown>)[field])) {
    throw invalidBody(provider, `\`${field}\``, requestId);
  }
  return {
    status: response.status,
    body: data,
    usage: call.usage(data),
    rateLimits: parseRateLimitHeaders(response.headers),
    requestId,
  };
}

// One attempt through an official SDK's generic `post`, shared by the OpenAI and Anthropic
// adapters: the SDK parses the answer, a failure becomes a typed Salvo error, and a 2xx answer
// without the fields every caller relies on is a malformed answer.
//
// This is the provider boundary: nothing leaves it carrying the API key (results, errors and
// their causes are scrubbed of it, whatever the server echoed), and nothing crosses it nested
// deeper than MAX_JSON_DEPTH (a deeper request is refused unsent; a deeper answer is malformed),
// so the recursive code on either side (the SDK's JSON.stringify, canonical JSON) cannot
// overflow the stack.

import { InvalidResponseError, RequestInvalidError } from "../errors.ts";
import { MAX_JSON_DEPTH, valueTooDeep } from "./json-depth.ts";
import type { ProviderResult, TokenUsage } from "./provider.ts";
import { parseRateLimitHeaders } from "./rate-limit-headers.ts";
import { errorFromSdk, invalidBody } from "./sdk-errors.ts";
import { registerSecret, SecretScrubber } from "./secret-scrubber.ts";

/** The SDKs' own timeout is effectively off: the scheduler's per-attempt timeout governs. */
export const SDK_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** The part of both SDK clients that a call needs. */
export type SdkClient = {
  /** The key the SDK sends (OpenAI `Authorization: Bearer`, Anthropic `x-api-key`). */
  apiKey?: string | null | undefined;
  /** Anthropic's bearer token, when it authenticates with one instead. */
  authToken?: string | null | undefined;
  post<T>(
    path: string,
    options: { body: unknown; signal: AbortSignal },
  ): { withResponse(): Promise<{ data: T; response: Response }> };
};

/** The options every SDK client of ours runs with: no retries of its own, no timeout of its own. */
const OWN_RETRIES_OFF = { maxRetries: 0, timeout: SDK_TIMEOUT_MS } as const;

/**
 * The SDK client an adapter uses: the caller's, reconfigured, or a new one from `create`, both
 * with the SDK's own retries and timeout off (the scheduler is the one retry authority). Its key
 * is registered as a secret at once, before any log is written.
 */
export function sdkClient<
  C extends { withOptions(options: typeof OWN_RETRIES_OFF): C } & Pick<
    SdkClient,
    "apiKey" | "authToken"
  >,
>(given: C | undefined, create: (options: typeof OWN_RETRIES_OFF) => C): C {
  const client = given ? given.withOptions(OWN_RETRIES_OFF) : create(OWN_RETRIES_OFF);
  clientScrubber(client);
  return client;
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

/**
 * The scrubber of the keys `client` sends now (read per call: a key may be rotated), each also
 * registered process-wide so that the audit log masks it whatever its variable's name.
 */
export function clientScrubber(client: Pick<SdkClient, "apiKey" | "authToken">): SecretScrubber {
  const keys = [client.apiKey, client.authToken];
  for (const key of keys) registerSecret(key);
  return new SecretScrubber(keys);
}

export async function sdkCall(call: SdkCall): Promise<ProviderResult> {
  const { provider, signal } = call;
  if (valueTooDeep(call.body))
    throw new RequestInvalidError(
      `${provider}: the request body nests deeper than ${MAX_JSON_DEPTH} levels; it was not sent`,
    );
  let data: unknown;
  let response: Response;
  try {
    ({ data, response } = await call.client
      .post<unknown>(call.path, { body: call.body, signal })
      .withResponse());
  } catch (error) {
    // The keys read after the call: a key given as a function is fetched by the call itself.
    const scrubber = clientScrubber(call.client);
    throw scrubber.error(errorFromSdk(scrubber.error(error), provider, signal));
  }
  const scrubber = clientScrubber(call.client);
  const header = response.headers.get(call.requestIdHeader);
  const requestId = header === null ? undefined : scrubber.text(header);
  if (typeof data !== "object" || data === null)
    throw invalidBody(provider, "JSON object", requestId);
  if (valueTooDeep(data))
    throw new InvalidResponseError(
      `${provider}: the answer nests deeper than ${MAX_JSON_DEPTH} levels`,
      { provider, status: response.status, requestId },
    );
  const field = call.requiredArray;
  if (field !== undefined && !Array.isArray((data as Record<string, unknown>)[field])) {
    throw invalidBody(provider, `\`${field}\``, requestId);
  }
  data = scrubber.value(data);
  return {
    status: response.status,
    body: data,
    usage: call.usage(data),
    rateLimits: parseRateLimitHeaders(response.headers),
    requestId,
  };
}

// One `fetch` that makes any SDK Salvo-managed: give it to the `fetch` option of `openai`,
// `@anthropic-ai/sdk`, LangChain's clients or anything else that takes one. Every model request
// (a JSON POST with a `model`) goes through Salvo: admitted by the scheduler with the tokens its
// body will cost, retried by Salvo alone, reconciled with the answer's usage and rate-limit
// headers, audited, traced. A streamed answer is handed over at once and holds its slot until
// it has been read, cancelled or aborted. Other requests (model lists, file uploads) pass
// straight through.
//
// What the SDK sees: the provider's own answer. After Salvo's last attempt a failed answer is
// returned as the provider sent it, with `x-should-retry: false`, so the SDK raises its own
// typed error (RateLimitError, ...) and never retries it; a failure without an answer (network,
// timeout, deadline, a closed client) rejects the fetch with Salvo's typed error, which the SDKs
// wrap (`APIConnectionError` with it as `cause`). The SDK's own retries must be off
// (`maxRetries: 0`): an SDK retry arriving here is refused, with a warning.

import { requestAttributes } from "../audit/call-record.ts";
import { Scheduler } from "../core/scheduler.ts";
import { ConfigError, RequestInvalidError } from "../errors.ts";
import { MAX_JSON_DEPTH, valueTooDeep } from "../providers/json-depth.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { Salvo, type SalvoOptions, type SalvoResult } from "../salvo.ts";
import { bodyHeaders, FetchProvider, rawAnswers, type Transport } from "./fetch-provider.ts";
import { instrument, withGenAiRequest } from "./otel/telemetry.ts";
import { type ApiKind, apiKind, DEFAULT_MAX_TOKENS } from "./request-shape.ts";

/** The function `salvoFetch` returns: `fetch`'s signature. */
export type SalvoFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export type SalvoFetchOptions = {
  /** The `fetch` that sends each attempt. @default globalThis.fetch */
  fetch?: typeof fetch | undefined;
  /**
   * Output tokens to reserve for an OpenAI request that sets no maximum (OpenAI charges the
   * maximum against TPM up front). @default 4096
   */
  defaultMaxTokens?: number | undefined;
};

/** A Salvo client, a scheduler, or the options of a new Salvo client (no provider). */
export type SalvoFetchTarget =
  | Salvo
  | Scheduler
  | (Omit<SalvoOptions, "provider"> & SalvoFetchOptions);

/** The header the Stainless-generated SDKs (openai, @anthropic-ai/sdk) number their retries in. */
const SDK_RETRY_HEADER = "x-stainless-retry-count";

async function bodyText(
  init: RequestInit | undefined,
  request: Request | undefined,
): Promise<string | undefined> {
  const body = init?.body;
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    return new TextDecoder().decode(body);
  }
  if (body === undefined && request !== undefined && request.body !== null) {
    const type = request.headers.get("content-type") ?? "";
    return type.includes("json") ? request.clone().text() : undefined;
  }
  return undefined;
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The OTel GenAI attributes of a request, with the server it goes to. */
function callAttributes(kind: ApiKind, request: ProviderRequest, url: URL) {
  const attributes = requestAttributes(kind, request) as Record<string, string | number>;
  const max = request.body.max_output_tokens;
  if (typeof max === "number") attributes["gen_ai.request.max_tokens"] = max;
  attributes["server.address"] = url.hostname;
  const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  attributes["server.port"] = port;
  return attributes;
}

/** The Response a caller gets for a result: the provider's bytes, or the shared/cached body. */
function responseOf(result: SalvoResult): Response {
  const raw = rawAnswers.get(result.body as object);
  const headers = raw
    ? bodyHeaders(raw.headers)
    : new Headers({ "content-type": "application/json" });
  if (result.cached) headers.set("x-salvo-cache", "hit");
  if (result.shared) headers.set("x-salvo-shared", "true");
  if (raw) {
    return new Response(raw.bytes, { status: raw.status, statusText: raw.statusText, headers });
  }
  return new Response(JSON.stringify(result.body), { status: result.status || 200, headers });
}

/**
 * A `fetch` whose model requests go through Salvo. `target` is a Salvo client (its scheduler,
 * audit, cache, budget and prices apply), a Scheduler, or the options of a new client, e.g.
 * `salvoFetch({concurrency: 4, requestsPerMinute: 300})`. One upstream (one API key) per
 * `salvoFetch`: its scheduler holds that key's limits.
 */
export function salvoFetch(
  target: SalvoFetchTarget = {},
  options: SalvoFetchOptions = {},
): SalvoFetch {
  let settings: SalvoFetchOptions = options;
  let make: (provider: FetchProvider) => Salvo;
  if (target instanceof Salvo) {
    make = (provider) => target.withProvider(provider);
  } else if (target instanceof Scheduler) {
    make = (provider) => new Salvo({ provider, scheduler: target });
  } else {
    const { fetch: own, defaultMaxTokens, ...salvoOptions } = target;
    settings = { fetch: own, defaultMaxTokens, ...options };
    let first: Salvo | undefined;
    make = (provider) => {
      first = first ? first.withProvider(provider) : new Salvo({ ...salvoOptions, provider });
      return first;
    };
  }
  const send = settings.fetch ?? globalThis.fetch.bind(globalThis);
  const maxTokens = settings.defaultMaxTokens ?? DEFAULT_MAX_TOKENS;
  const lanes = new Map<ApiKind, { provider: FetchProvider; client: Salvo }>();
  const lane = (kind: ApiKind) => {
    let found = lanes.get(kind);
    if (found === undefined) {
      const provider = new FetchProvider(kind, send, maxTokens);
      found = { provider, client: make(provider) };
      lanes.set(kind, found);
      instrument(found.client.scheduler);
    }
    return found;
  };
  let warned = false;

  return async (input, init) => {
    const request = input instanceof Request ? input : undefined;
    const method = (init?.method ?? request?.method ?? "GET").toUpperCase();
    if (method !== "POST") return send(input, init);
    const text = await bodyText(init, request);
    const body = text === undefined ? undefined : jsonObject(text);
    if (text === undefined || body === undefined || typeof body.model !== "string") {
      return send(input, init);
    }
    const url = new URL(request?.url ?? String(input));
    const headers = new Headers(init?.headers ?? request?.headers);
    const signal = init?.signal ?? request?.signal ?? undefined;
    const retry = Number(headers.get(SDK_RETRY_HEADER) ?? 0);
    if (retry > 0) {
      const error = new ConfigError({
        field: "maxRetries",
        where: "the SDK client whose fetch is salvoFetch",
        expected: "0: Salvo retries, and refuses the SDK's retry of a request it already retried",
        got: `the SDK's retry ${retry} of ${method} ${url.pathname}`,
      });
      if (!warned) {
        warned = true;
        process.emitWarning(error.message, { code: "SALVO_SDK_RETRIES" });
      }
      throw error;
    }
    if (valueTooDeep(body)) {
      // Refused before it reaches the fingerprint or the audit log, as the SDK providers do.
      throw new RequestInvalidError(
        `${method} ${url.pathname}: the request body nests deeper than ${MAX_JSON_DEPTH} levels; it was not sent`,
      );
    }
    const kind = apiKind(url.pathname, headers);
    const { provider, client } = lane(kind);
    const call: ProviderRequest = { path: url.pathname, body };
    const { body: _body, signal: _signal, headers: _headers, ...rest } = init ?? {};
    let deliver!: (response: Response) => void;
    const delivered = new Promise<Response>((resolve) => {
      deliver = resolve;
    });
    const transport: Transport = {
      url: url.href,
      init: { ...rest, method },
      headers,
      body: text,
      deliver,
      attempts: 0,
      delivered: false,
    };
    provider.register(call, transport);
    const outcome = withGenAiRequest({ attributes: callAttributes(kind, call, url) }, () =>
      client.call(call, { signal: signal ?? undefined }),
    );
    const first = await Promise.race([
      delivered.then((response) => ({ response }) as const),
      outcome.then(
        (result) => ({ result }) as const,
        (error: unknown) => ({ error }) as const,
      ),
    ]);
    if ("response" in first) {
      // A stream: its call settles when the caller has read it (or let it go).
      outcome.catch(() => {});
      return first.response;
    }
    if ("result" in first) return responseOf(first.result);
    const raw = rawAnswers.get(first.error as object);
    if (raw) {
      // Salvo has stopped retrying: the SDK gets the provider's answer, and may not retry it.
      const answer = bodyHeaders(raw.headers);
      answer.set("x-should-retry", "false");
      return new Response(raw.bytes, {
        status: raw.status,
        statusText: raw.statusText,
        headers: answer,
      });
    }
    if (signal?.aborted) throw signal.reason;
    throw first.error;
  };
}

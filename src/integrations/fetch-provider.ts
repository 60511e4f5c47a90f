// A Provider whose attempt is the SDK's own HTTP request, sent with the `fetch` underneath
// `salvoFetch`. The request's URL and headers (the API key among them) travel beside the
// ProviderRequest, never in it, so they reach no log, record or fingerprint. A failed answer
// becomes Salvo's typed error (its bytes kept, so the caller's SDK can be given the provider's
// own answer once Salvo stops retrying); a streamed answer is handed to the caller as soon as its
// headers arrive and the attempt (and its slot) lasts until the caller has read it or let it go.

import { InvalidResponseError, ProviderError, TimeoutError } from "../errors.ts";
import { errorFromResponse } from "../providers/classify.ts";
import type {
  CallOptions,
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "../providers/provider.ts";
import { parseRateLimitHeaders } from "../providers/rate-limit-headers.ts";
import { errorFromSdk } from "../providers/sdk-errors.ts";
import { registerSecret, SecretScrubber } from "../providers/secret-scrubber.ts";
import { holdStream } from "./held-stream.ts";
import {
  type ApiKind,
  chargedFor,
  DEFAULT_MAX_TOKENS,
  estimateRequest,
  usageOf,
} from "./request-shape.ts";
import { StreamObserver } from "./stream-observer.ts";

/** The HTTP side of one request; lives beside its ProviderRequest, never inside it. */
export type Transport = {
  url: string;
  /** The caller's request options, less `body` and `signal`. */
  init: RequestInit;
  headers: Headers;
  body: string;
  /** Called with a streamed answer as soon as it starts; the attempt then lasts until it ends. */
  deliver: (response: Response) => void;
  /** Attempts made so far. */
  attempts: number;
  /** A streamed answer has been handed to the caller: nothing may be sent again. */
  delivered: boolean;
};

/** An answer as the provider sent it, to give the caller's SDK after Salvo's last attempt. */
export type RawAnswer = { status: number; statusText: string; headers: Headers; bytes: Uint8Array };

/** The answers behind parsed bodies and typed errors, for `salvoFetch` to hand back. */
export const rawAnswers = new WeakMap<object, RawAnswer>();

/** A successful attempt's result, with its response headers (the audit keeps an allowlist). */
export type FetchResult = ProviderResult & { headers: Headers };

/** Headers that described the bytes on the wire, not the decoded body a Response is built from. */
const WIRE_HEADERS = ["content-encoding", "content-length", "transfer-encoding"];

/** The response headers minus those that no longer hold once the body is decoded. */
export function bodyHeaders(headers: Headers): Headers {
  const copy = new Headers(headers);
  for (const name of WIRE_HEADERS) copy.delete(name);
  return copy;
}

/** The headers the SDKs send their key in. */
const KEY_HEADERS = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/**
 * The scrubber of the keys a request sends (each also registered process-wide, so the audit log
 * masks it): what a server echoes of them never reaches a result, an error or a record. The
 * caller's own SDK still gets the answer as it was sent.
 */
function keyScrubber(headers: Headers): SecretScrubber {
  const keys: string[] = [];
  for (const name of KEY_HEADERS) {
    const value = headers.get(name);
    if (value === null) continue;
    const key = value.replace(/^(Bearer|Basic)\s+/i, "");
    keys.push(key);
    registerSecret(key);
  }
  return new SecretScrubber(keys);
}

const REQUIRED_ARRAY: Array<[RegExp, string]> = [
  [/(^|\/)chat\/completions$/, "choices"],
  [/(^|\/)embeddings$/, "data"],
  [/(^|\/)responses$/, "output"],
  [/(^|\/)messages$/, "content"],
];

export class FetchProvider implements Provider {
  readonly name: ApiKind;
  readonly #fetch: typeof fetch;
  readonly #defaultMaxTokens: number;
  readonly #transports = new WeakMap<ProviderRequest, Transport>();

  constructor(kind: ApiKind, fetchImpl: typeof fetch, defaultMaxTokens = DEFAULT_MAX_TOKENS) {
    this.name = kind;
    this.#fetch = fetchImpl;
    this.#defaultMaxTokens = defaultMaxTokens;
  }

  /** Attaches the HTTP side of `request` (before it is submitted). */
  register(request: ProviderRequest, transport: Transport): void {
    this.#transports.set(request, transport);
  }

  estimate(request: ProviderRequest): CostEstimate {
    return estimateRequest(this.name, request.path, request.body, this.#defaultMaxTokens);
  }

  charged(request: ProviderRequest, usage: TokenUsage): CostEstimate {
    return chargedFor(this.name, this.estimate(request), usage);
  }

  async call(request: ProviderRequest, { signal }: CallOptions): Promise<ProviderResult> {
    const transport = this.#transports.get(request);
    if (transport === undefined) {
      throw new TypeError("FetchProvider.call: a request must be registered before it is sent");
    }
    if (transport.delivered) {
      // A retry policy asked to retry after the stream was handed over: nobody would read it.
      throw new InvalidResponseError(
        `${this.name}: the streamed answer was already handed to its caller; it is not sent again`,
        { provider: this.name, shouldRetry: false },
      );
    }
    transport.attempts++;
    const scrubber = keyScrubber(transport.headers);
    const headers = new Headers(transport.headers);
    // Upstream sees Salvo's attempt number where the SDKs put theirs.
    if (headers.has("x-stainless-retry-count")) {
      headers.set("x-stainless-retry-count", String(transport.attempts - 1));
    }
    let response: Response;
    try {
      response = await this.#fetch(transport.url, {
        ...transport.init,
        headers,
        body: transport.body,
        signal,
      });
    } catch (error) {
      throw scrubber.error(errorFromSdk(scrubber.error(error), this.name, signal));
    }
    const rateLimits = parseRateLimitHeaders(response.headers);
    const idHeader = response.headers.get("x-request-id") ?? response.headers.get("request-id");
    const requestId = idHeader === null ? undefined : scrubber.text(idHeader);
    if (!response.ok) {
      const bytes = await this.#read(response, signal);
      const text = new TextDecoder().decode(bytes);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      const error = scrubber.error(
        errorFromResponse({
          status: response.status,
          headers: scrubber.headers(response.headers),
          body: scrubber.value(body),
          message:
            body === undefined
              ? scrubber.text(text.slice(0, 500)) || response.statusText
              : undefined,
          provider: this.name,
        }),
      );
      rawAnswers.set(error, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
        bytes,
      });
      throw error;
    }
    const type = response.headers.get("content-type") ?? "";
    if (type.includes("text/event-stream") && response.body !== null) {
      return this.#stream(transport, response, signal, rateLimits, requestId, scrubber);
    }
    const bytes = await this.#read(response, signal);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      throw new InvalidResponseError(
        `${this.name}: the answer was not valid JSON: ${(error as Error).message}`,
        { provider: this.name, status: response.status, requestId },
        { cause: error },
      );
    }
    if (typeof parsed !== "object" || parsed === null) {
      throw new InvalidResponseError(`${this.name}: the answer is not a JSON object`, {
        provider: this.name,
        status: response.status,
        requestId,
      });
    }
    const body = scrubber.value(parsed);
    for (const [path, field] of REQUIRED_ARRAY) {
      if (path.test(request.path) && !Array.isArray((body as Record<string, unknown>)[field])) {
        throw new InvalidResponseError(`${this.name}: the answer has no \`${field}\``, {
          provider: this.name,
          status: response.status,
          requestId,
        });
      }
    }
    rawAnswers.set(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
      bytes,
    });
    const result: FetchResult = {
      status: response.status,
      body,
      usage: usageOf(this.name, body),
      rateLimits,
      requestId,
      headers: scrubber.headers(response.headers),
    };
    return result;
  }

  async #read(response: Response, signal: AbortSignal): Promise<Uint8Array> {
    try {
      return new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      throw errorFromSdk(error, this.name, signal);
    }
  }

  /**
   * Hands the caller a Response whose body is the provider's stream, read through an observer;
   * resolves when the caller has read it to the end (the observer's usage and assembled answer)
   * and rejects when it broke off, was cancelled, or the attempt was aborted (its timeout, the
   * caller's signal): an abandoned stream holds its slot no longer than the attempt's timeout.
   * The rejection is never retried: the caller already holds the answer.
   */
  #stream(
    transport: Transport,
    response: Response,
    signal: AbortSignal,
    rateLimits: ProviderResult["rateLimits"],
    requestId: string | undefined,
    scrubber: SecretScrubber,
  ): Promise<ProviderResult> {
    const kind = this.name;
    const observer = new StreamObserver(kind);
    const held = holdStream(
      response.body as ReadableStream<Uint8Array>,
      signal,
      (bytes) => observer.push(bytes),
      () => observer.end(),
    );
    transport.delivered = true;
    transport.deliver(
      new Response(held.stream, {
        status: response.status,
        statusText: response.statusText,
        headers: bodyHeaders(response.headers),
      }),
    );
    return held.ended.then((how) => {
      if (how.kind === "aborted") {
        // A timeout cut the stream the caller holds: failed, and never sent again.
        if (how.reason instanceof ProviderError) {
          throw new TimeoutError(
            `${kind}: the streamed answer was cut off: ${how.reason.message}`,
            { provider: kind, status: response.status, requestId, shouldRetry: false },
            { cause: how.reason },
          );
        }
        throw how.reason;
      }
      if (how.kind === "cancelled") throw how.error;
      if (how.kind === "done" && observer.complete && observer.error === undefined) {
        const body = scrubber.value(observer.body());
        const result: FetchResult = {
          status: response.status,
          body,
          usage: usageOf(kind, body),
          rateLimits,
          requestId,
          headers: scrubber.headers(response.headers),
        };
        return result;
      }
      const why =
        how.kind === "error"
          ? `the stream broke off: ${how.error instanceof Error ? how.error.message : String(how.error)}`
          : observer.error !== undefined
            ? `the stream carried an error: ${scrubber.text(JSON.stringify(observer.error).slice(0, 300))}`
            : "the stream ended before its final event";
      throw scrubber.error(
        new InvalidResponseError(
          `${kind}: ${why}`,
          { provider: kind, status: response.status, requestId, shouldRetry: false },
          { cause: how.kind === "error" ? how.error : undefined },
        ),
      );
    });
  }
}

// The gateway's provider: one attempt of a request to an upstream (OpenAI-compatible or
// Anthropic), in the provider's own wire format, over `fetch`. A proxy passes answers on, so it
// keeps what the SDK-based adapters parse away: a failed answer's exact status, headers and body
// (for the client's own error handling), and a streamed answer as raw server-sent events, passed
// on event by event while the attempt holds its slot. Token estimates and charges are the
// library adapters', so admission counts exactly as `salvo run` does.
import {
  InvalidResponseError,
  NetworkError,
  ProviderError,
  SalvoError,
  ServerError,
} from "../errors.ts";
import { AnthropicProvider, usageFromAnthropic } from "../providers/anthropic-provider.ts";
import { errorFromResponse } from "../providers/classify.ts";
import { OpenAIProvider, usageFromOpenAI } from "../providers/openai-provider.ts";
import type {
  CallOptions,
  CostEstimate,
  Provider,
  ProviderRequest,
  ProviderResult,
  TokenUsage,
} from "../providers/provider.ts";
import { parseRateLimitHeaders } from "../providers/rate-limit-headers.ts";
import { countTokens } from "../providers/token-estimate.ts";
import { SseSplitter } from "./sse-splitter.ts";
import type { StreamReader } from "./stream-reader.ts";
import type { StreamRelay } from "./stream-relay.ts";
import {
  FetchTransport,
  type HeaderBag,
  NodeHttpTransport,
  type TransportResponse,
  type UpstreamTransport,
} from "./upstream-transport.ts";

export type UpstreamKind = "openai" | "anthropic";

export type UpstreamProviderOptions = {
  /** The wire format: `openai` (any OpenAI-compatible server) or `anthropic`. */
  provider: UpstreamKind;
  /**
   * Where requests go. OpenAI: the base URL with its version (`https://api.openai.com/v1`);
   * Anthropic: the origin (`https://api.anthropic.com`; a trailing `/v1` is accepted).
   */
  baseUrl: string;
  /** The upstream's API key: sent to the upstream only, never logged, written or returned. */
  apiKey: string;
  /** Extra headers for every upstream request (e.g. `OpenAI-Organization`). @default none */
  headers?: Readonly<Record<string, string>> | undefined;
  /** Anthropic's API version, when the client sends none. @default "2023-06-01" */
  anthropicVersion?: string | undefined;
  /** Output tokens to reserve for an OpenAI request without `max_tokens`. @default 4096 */
  defaultMaxTokens?: number | undefined;
  /** A fetch to call the upstream with, instead of Node's http client. @default Node's http/https */
  fetch?: typeof fetch | undefined;
};

/** A failed upstream answer as it arrived, for passing on to the client. */
export type UpstreamAnswer = {
  status: number;
  /** The response headers worth passing on (retry hints, request id, content type). */
  headers: Record<string, string>;
  /** The body, as received. */
  body: string;
};

/** What one request carries besides its body: headers to forward and, for a stream, its relay. */
export type Exchange = {
  /** Client headers forwarded upstream (`anthropic-version`, `anthropic-beta`). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** For `stream: true`: where the events go, and how to read them. */
  stream?: { relay: StreamRelay; reader: () => StreamReader } | undefined;
  /** Set when an error event has reached the client inside the stream. */
  errorForwarded?: boolean | undefined;
  /** The upstream's request id of the attempt that streams, once its answer began. */
  requestId?: string | undefined;
};

/** A successful attempt's result, with the response headers (the audit log keeps an allowlist). */
export type UpstreamResult = ProviderResult & { headers: HeaderBag };

const answers = new WeakMap<object, UpstreamAnswer>();

/** The upstream's own answer behind a failed attempt's error, if it was an HTTP answer. */
export function upstreamAnswerOf(error: unknown): UpstreamAnswer | undefined {
  for (let e = error, depth = 0; e && typeof e === "object" && depth < 4; depth++) {
    const answer = answers.get(e);
    if (answer) return answer;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Response headers a client may rely on after an error: retry hints, ids, the content type. */
const PASSED_ON = [
  "content-type",
  "retry-after",
  "retry-after-ms",
  "x-should-retry",
  "x-request-id",
  "request-id",
];

const REQUIRED_ARRAY: Array<[RegExp, string]> = [
  [/\/chat\/completions$/, "choices"],
  [/\/completions$/, "choices"],
  [/\/messages$/, "content"],
  [/\/embeddings$/, "data"],
  [/\/responses$/, "output"],
];

/** The text each answer body was parsed from, so that the gateway passes it on as it came. */
const answerTexts = new WeakMap<object, string>();

/** The upstream's own text of an answer `body` this provider parsed; undefined for any other. */
export function answerTextOf(body: unknown): string | undefined {
  return typeof body === "object" && body !== null ? answerTexts.get(body) : undefined;
}

export class UpstreamProvider implements Provider {
  readonly name: UpstreamKind;
  /** The upstream's base URL, as configured (no credentials). */
  readonly baseUrl: string;
  readonly #root: string;
  readonly #auth: Record<string, string>;
  readonly #transport: UpstreamTransport;
  readonly #estimator: Provider;
  readonly #estimates = new WeakMap<ProviderRequest, CostEstimate>();
  readonly #exchanges = new WeakMap<ProviderRequest, Exchange>();
  readonly #defaultMaxTokens: number;
  readonly #secret: string;

  constructor(options: UpstreamProviderOptions) {
    this.#secret = options.apiKey;
    this.name = options.provider;
    this.baseUrl = options.baseUrl;
    this.#transport = options.fetch ? new FetchTransport(options.fetch) : new NodeHttpTransport();
    this.#defaultMaxTokens = options.defaultMaxTokens ?? 4096;
    const base = options.baseUrl.replace(/\/+$/, "");
    this.#root = this.name === "anthropic" ? base.replace(/\/v1$/, "") : base;
    this.#auth =
      this.name === "anthropic"
        ? {
            "x-api-key": options.apiKey,
            "anthropic-version": options.anthropicVersion ?? "2023-06-01",
          }
        : { authorization: `Bearer ${options.apiKey}` };
    this.#auth = { ...(options.headers ?? {}), ...this.#auth };
    // Only their token arithmetic is used: no key, no client call.
    this.#estimator =
      this.name === "anthropic"
        ? new AnthropicProvider({ apiKey: "unused", baseURL: "http://unused.invalid" })
        : new OpenAIProvider({
            apiKey: "unused",
            baseURL: "http://unused.invalid",
            defaultMaxTokens: this.#defaultMaxTokens,
          });
  }

  /** Closes the idle upstream connections. */
  close(): void {
    this.#transport.close();
  }

  /** Attaches what `request` carries besides its body; read by the attempts of that request. */
  attach(request: ProviderRequest, exchange: Exchange): void {
    this.#exchanges.set(request, exchange);
  }

  estimate(request: ProviderRequest): CostEstimate {
    // The gateway estimates a request to queue it, the scheduler again to admit it: counted once.
    let estimate = this.#estimates.get(request);
    if (estimate === undefined) {
      estimate = this.#estimateOf(request);
      this.#estimates.set(request, estimate);
    }
    return estimate;
  }

  #estimateOf(request: ProviderRequest): CostEstimate {
    if (this.name === "openai" && request.path.endsWith("/responses")) {
      const body = request.body;
      const max = body.max_output_tokens;
      return {
        inputTokens: 3 + countTokens(textOf(body.instructions)) + countTokens(textOf(body.input)),
        outputTokens: typeof max === "number" ? max : this.#defaultMaxTokens,
      };
    }
    return this.#estimator.estimate(request);
  }

  charged(request: ProviderRequest, usage: TokenUsage): CostEstimate {
    if (this.name === "openai" && request.path.endsWith("/responses"))
      return { inputTokens: usage.inputTokens, outputTokens: this.estimate(request).outputTokens };
    return this.#estimator.charged(request, usage);
  }

  async call(request: ProviderRequest, { signal }: CallOptions): Promise<ProviderResult> {
    const exchange = this.#exchanges.get(request);
    const path = request.path.startsWith("/v1/") ? request.path.slice(3) : request.path;
    const url = this.name === "anthropic" ? `${this.#root}/v1${path}` : `${this.#root}${path}`;
    let response: TransportResponse;
    try {
      response = await this.#transport.send(
        "POST",
        url,
        {
          "content-type": "application/json",
          accept: exchange?.stream ? "text/event-stream" : "application/json",
          ...(exchange?.headers ?? {}),
          ...this.#auth,
        },
        JSON.stringify(request.body),
        signal,
      );
    } catch (error) {
      throw this.#failure(error, signal, "connection failed");
    }
    const headers = this.#cleanHeaders(response.headers);
    const requestId = headers.get("x-request-id") ?? headers.get("request-id") ?? undefined;
    if (response.status < 200 || response.status > 299)
      throw await this.#refused(response, headers, signal);
    if (exchange?.stream && isEventStream(response))
      return this.#stream(response, headers, exchange, requestId, signal);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.#failure(error, signal, "the answer was cut off");
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new InvalidResponseError(`${this.name}: the answer was not valid JSON`, {
        provider: this.name,
        status: response.status,
        requestId,
      });
    }
    if (typeof body !== "object" || body === null)
      throw new InvalidResponseError(`${this.name}: the answer was not a JSON object`, {
        provider: this.name,
        status: response.status,
        requestId,
      });
    const field = REQUIRED_ARRAY.find(([pattern]) => pattern.test(path))?.[1];
    if (field !== undefined && !Array.isArray((body as Record<string, unknown>)[field]))
      throw new InvalidResponseError(`${this.name}: the answer has no \`${field}\``, {
        provider: this.name,
        status: response.status,
        requestId,
      });
    answerTexts.set(body, text);
    const result: UpstreamResult = {
      status: response.status,
      body,
      usage: this.name === "anthropic" ? usageFromAnthropic(body) : usageFromOpenAI(body),
      rateLimits: parseRateLimitHeaders(headers),
      requestId,
      headers,
    };
    return result;
  }

  /**
   * The model ids the upstream lists (`GET /v1/models`; Anthropic's first 1,000). Not scheduled:
   * listing models is not a call the rate limits count.
   */
  async listModels(signal: AbortSignal): Promise<string[]> {
    const url =
      this.name === "anthropic" ? `${this.#root}/v1/models?limit=1000` : `${this.#root}/models`;
    const response = await this.#transport.send(
      "GET",
      url,
      { accept: "application/json", ...this.#auth },
      undefined,
      signal,
    );
    if (response.status !== 200) {
      response.cancel();
      throw new ServerError(`${this.name}: listing models answered ${response.status}`, {
        provider: this.name,
        status: response.status,
      });
    }
    const body = JSON.parse(await response.text()) as { data?: Array<{ id?: unknown }> };
    return (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
  }

  /** Passes a streamed answer on, event by event; resolves when its last event has been read. */
  async #stream(
    response: TransportResponse,
    headers: HeaderBag,
    exchange: Exchange,
    requestId: string | undefined,
    signal: AbortSignal,
  ): Promise<UpstreamResult> {
    const { relay, reader: makeReader } = exchange.stream!;
    exchange.requestId = requestId;
    const reader = makeReader();
    const splitter = new SseSplitter();
    const body = response.chunks()[Symbol.asyncIterator]();
    // From the first event on the client has seen part of the answer: a retry would repeat it.
    const seen = (error: unknown) => (relay.isOpen ? notRetried(error) : error);
    try {
      for (;;) {
        let read: IteratorResult<Uint8Array>;
        try {
          read = await body.next();
        } catch (error) {
          throw this.#failure(error, signal, "the stream was cut off");
        }
        const events = read.done ? splitter.end() : splitter.push(read.value);
        for (const event of events) {
          if (!reader.read(event)) continue;
          if (reader.error !== undefined) {
            exchange.errorForwarded = true;
            await relay.write(`${this.#scrub(event.raw)}\n\n`);
          } else await relay.write(`${event.raw}\n\n`);
        }
        if (read.done) break;
        if (signal.aborted) throw signal.reason;
      }
    } catch (error) {
      response.cancel();
      throw seen(error);
    }
    if (reader.error !== undefined) {
      const failure = errorFromResponse({
        status: 500,
        body: JSON.parse(this.#scrub(JSON.stringify(reader.error))),
        provider: this.name,
        message: "the upstream sent an error inside the stream",
      });
      throw notRetried(failure);
    }
    if (!reader.done)
      throw seen(
        new InvalidResponseError(`${this.name}: the stream ended before its last event`, {
          provider: this.name,
          status: response.status,
          requestId,
        }),
      );
    const { body: assembled, usage } = reader.result();
    return {
      status: response.status,
      body: assembled,
      usage,
      rateLimits: parseRateLimitHeaders(headers),
      requestId,
      headers,
    };
  }

  /** The typed error of a non-2xx answer; its raw answer is kept for the client. */
  async #refused(
    response: TransportResponse,
    clean: HeaderBag,
    signal: AbortSignal,
  ): Promise<unknown> {
    let text: string;
    try {
      // An upstream may echo the key it was sent (a proxy's error page, a debug message): it is
      // removed here, before the answer becomes an error message, a log record or a response.
      text = this.#scrub(await response.text());
    } catch (error) {
      return this.#failure(error, signal, "the error answer was cut off");
    }
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON (a proxy's HTML page): classified by status alone.
    }
    const error = errorFromResponse({
      status: response.status,
      headers: clean,
      body,
      provider: this.name,
    });
    const headers: Record<string, string> = {};
    for (const name of PASSED_ON) {
      const value = clean.get(name);
      if (value !== null) headers[name] = value;
    }
    answers.set(error, { status: response.status, headers, body: text });
    return error;
  }

  /** The response headers, without the upstream key in any value (the same object if none has it). */
  #cleanHeaders(headers: HeaderBag): HeaderBag {
    if (this.#secret.length < 8) return headers;
    let dirty = false;
    for (const [, value] of headers) if (value.includes(this.#secret)) dirty = true;
    if (!dirty) return headers;
    const clean = new Headers();
    for (const [name, value] of headers) clean.append(name, this.#scrub(value));
    return clean as unknown as HeaderBag;
  }

  /** `text` without the upstream key in it. */
  #scrub(text: string): string {
    return this.#secret.length >= 8 && text.includes(this.#secret)
      ? text.split(this.#secret).join("[redacted]")
      : text;
  }

  /** What a failed fetch or read becomes: the scheduler's abort reason wins, else a NetworkError. */
  #failure(error: unknown, signal: AbortSignal, what: string): unknown {
    if (signal.aborted) return signal.reason;
    if (error instanceof SalvoError) return error;
    const cause = (error as { cause?: { message?: unknown; code?: unknown } } | undefined)?.cause;
    const detail =
      cause && typeof cause === "object"
        ? String(cause.code ?? cause.message ?? "")
        : String((error as Error)?.message ?? error);
    return new NetworkError(
      `${this.name}: ${what}${detail ? `: ${detail}` : ""}`,
      { provider: this.name },
      { cause: error },
    );
  }
}

function isEventStream(response: TransportResponse): boolean {
  return (response.headers.get("content-type") ?? "").includes("text/event-stream");
}

/** The same failure, marked not to be retried (the client has already seen part of the answer). */
function notRetried(error: unknown): unknown {
  if (!(error instanceof ProviderError) || error.shouldRetry === false) return error;
  const Kind = error.constructor as new (
    message: string,
    details: ConstructorParameters<typeof ProviderError>[1],
    options?: { cause?: unknown },
  ) => ProviderError;
  const copy = new (Kind === ProviderError ? ServerError : Kind)(
    error.message,
    {
      status: error.status,
      providerCode: error.providerCode,
      retryAfterMs: error.retryAfterMs,
      shouldRetry: false,
      requestId: error.requestId,
      provider: error.provider,
      rateLimits: error.rateLimits,
    },
    { cause: error },
  );
  return copy;
}

/** The text of a Responses API `input`/`instructions`: a string, or items with text content. */
function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) {
    let text = "";
    for (const item of value as Array<Record<string, unknown>>) {
      if (typeof item === "string") text += item;
      else if (item && typeof item === "object") {
        const content = item.content ?? item.text;
        text += typeof content === "string" ? content : textOf(content);
      }
    }
    return text;
  }
  return JSON.stringify(value);
}

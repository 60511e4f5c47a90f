// The simulated LLM provider: a real HTTP server on loopback that answers the OpenAI (chat
// completions, responses, embeddings) and Anthropic (messages) APIs with the providers' capacity, rate limits, headers, errors and faults, so
// everything Salvo does can be tested and benchmarked offline. Uses real time; the rules it
// applies live in small units tested on fake time.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { ConfigError } from "../errors.ts";
import { anthropicWire } from "./anthropic-wire.ts";
import { type FaultKind, FaultPicker } from "./fault-picker.ts";
import { outputLength, sampleTiming, serviceMs, type Timing } from "./latency-model.ts";
import {
  answerHead,
  answerPiece,
  answerText,
  echoOf,
  expectedMarker,
  markerKey,
} from "./marker.ts";
import { openaiEmbeddingsWire } from "./openai-embeddings-wire.ts";
import { openaiResponsesWire } from "./openai-responses-wire.ts";
import { openaiWire } from "./openai-wire.ts";
import { countPromptTokens } from "./prompt-tokens.ts";
import { type ChargedTotals, RateLimiter } from "./rate-limiter.ts";
import { hashUniform, type Random, seededRandom } from "./seeded-random.ts";
import { ServiceGate, Ticket } from "./service-gate.ts";
import {
  type PoolConfig,
  resolveSimConfig,
  type SimConfig,
  type SimConfigInput,
} from "./sim-config.ts";
import { type SimStats, StatsRecorder } from "./sim-stats.ts";
import { type Answer, type ChatRequest, isBadRequest, type Wire } from "./wire.ts";

/** The endpoints answered, by request path (POST). */
const WIRES: ReadonlyMap<string, Wire> = new Map([
  ["/v1/chat/completions", openaiWire],
  ["/v1/responses", openaiResponsesWire],
  ["/v1/embeddings", openaiEmbeddingsWire],
  ["/v1/messages", anthropicWire],
]);

/** A running simulator. */
export type SimHandle = {
  /** The OpenAI SDK's `baseURL`: `http://127.0.0.1:PORT/v1`. */
  readonly baseUrl: string;
  /** The Anthropic SDK's `baseURL` (it appends `/v1/messages` itself): `http://127.0.0.1:PORT`. */
  readonly origin: string;
  readonly port: number;
  /** The settings in effect, defaults applied. */
  readonly config: SimConfig;
  /** The statistics; `timeline: false` leaves the (possibly large) timeline out. */
  stats(options?: { timeline?: boolean }): SimStats;
  /**
   * Zeroes the statistics, refills every bucket, re-seeds the randomness and restarts the clock
   * (a request in flight across a reset keeps its earlier arrival time, now negative).
   */
  reset(): void;
  /** Stops listening and destroys every open connection (hanging requests included). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
};

/** Largest request body accepted, in bytes; larger bodies get a 413. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

type Pool = { gate: ServiceGate; limiter: RateLimiter };

// One request from arrival to its end.
type Exchange = {
  id: number;
  wire: Wire;
  pool: Pool;
  res: ServerResponse;
  arrivalMs: number;
  startMs: number | null;
  request: ChatRequest | undefined;
  marker: string | null;
  promptTokens: number;
  maxTokens: number;
  fault: FaultKind | undefined;
  /**
   * The rate-limit headers as they stood when the request was admitted. A provider checks its
   * limits at admission, so its headers describe the buckets at arrival, not when it answers.
   */
  limitHeaders: Record<string, string> | undefined;
  ticket: Ticket | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The caller's credential as sent (`Authorization` or `x-api-key`), for the echo faults. */
  credential: string | undefined;
  outputTokens: number;
  inServer: boolean;
  ended: boolean;
};

/**
 * Starts a simulator. Validates `config` first (a `ConfigError` names the bad field) and resolves
 * once it listens.
 */
export async function startSimulator(config: SimConfigInput = {}): Promise<SimHandle> {
  const resolved = resolveSimConfig(config, { where: "startSimulator options" });
  const sim = new Simulator(resolved);
  await sim.listen();
  return sim;
}

class Simulator implements SimHandle {
  readonly config: SimConfig;
  baseUrl = "";
  origin = "";
  port = 0;
  readonly #server: Server;
  readonly #pools: { openai: Pool; anthropic: Pool; all: Pool[] };
  readonly #active = new Set<Exchange>();
  #origin = performance.now();
  #seq = 0;
  #stats: StatsRecorder;
  #faults!: FaultPicker;
  #latencyRandom!: Random;
  #echoRandom!: Random;
  #closing: Promise<void> | undefined;
  #closed = false;

  constructor(config: SimConfig) {
    this.config = config;
    const now = () => performance.now();
    const makePool = (p: PoolConfig): Pool => ({
      gate: new ServiceGate({ slots: p.slots, queueLimit: p.queue }),
      limiter: new RateLimiter(p, now),
    });
    const openai = makePool(config.pools.openai);
    const anthropic =
      config.pools.anthropic === config.pools.openai ? openai : makePool(config.pools.anthropic);
    this.#pools = { openai, anthropic, all: openai === anthropic ? [openai] : [openai, anthropic] };
    this.#stats = new StatsRecorder(config.timelineLimit);
    this.#seed();
    this.#server = createServer({ keepAlive: true, noDelay: true }, (req, res) =>
      this.#onRequest(req, res),
    );
  }

  listen(): Promise<void> {
    const { host, port } = this.config;
    return new Promise((resolve, reject) => {
      const onError = (error: Error) =>
        reject(
          new ConfigError(
            { field: "port", expected: `a free port on ${host}`, got: port },
            { cause: error },
          ),
        );
      this.#server.once("error", onError);
      this.#server.listen(port, host, () => {
        this.#server.off("error", onError);
        this.port = (this.#server.address() as AddressInfo).port;
        const shown = host.includes(":") ? `[${host}]` : host;
        this.origin = `http://${shown}:${this.port}`;
        this.baseUrl = `${this.origin}/v1`;
        resolve();
      });
    });
  }

  stats(options: { timeline?: boolean } = {}): SimStats {
    let queued = 0;
    const charged: ChargedTotals = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 };
    for (const pool of this.#pools.all) {
      queued += pool.gate.queued;
      charged.requests += pool.limiter.charged.requests;
      charged.tokens += pool.limiter.charged.tokens;
      charged.inputTokens += pool.limiter.charged.inputTokens;
      charged.outputTokens += pool.limiter.charged.outputTokens;
    }
    return this.#stats.snapshot(round(this.#now()), queued, charged, options.timeline ?? true);
  }

  reset(): void {
    this.#origin = performance.now();
    this.#stats.reset();
    for (const pool of this.#pools.all) {
      pool.limiter.reset();
      pool.gate.resetPeaks();
    }
    this.#seed();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      // Every open request ends now with no answer (status 0), so the stats are final when
      // close() resolves; a queued request that a release would start sees #closing and stops.
      for (const ex of [...this.#active]) this.#end(ex, 0);
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #seed(): void {
    // Separate streams, so changing the latency settings does not change the fault sequence.
    this.#faults = new FaultPicker(this.config.faults, seededRandom(this.config.seed));
    this.#latencyRandom = seededRandom(this.config.seed ^ 0x5bd1e995);
    this.#echoRandom = seededRandom(this.config.seed ^ 0x2545f491);
  }

  #now(): number {
    return performance.now() - this.#origin;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (req.method === "POST") {
      const wire = WIRES.get(path);
      if (wire) {
        this.#chat(req, res, wire);
        return;
      }
      if (path === "/_sim/reset") {
        req.resume();
        this.reset();
        sendJson(res, 200, '{"ok":true}');
        return;
      }
    } else if (req.method === "GET") {
      if (path === "/v1/models") {
        this.#models(req, res);
        return;
      }
      if (path === "/_sim/stats") {
        const timeline = !/[?&]timeline=(0|false)\b/.test(url);
        sendJson(res, 200, JSON.stringify(this.stats({ timeline })));
        return;
      }
    }
    req.resume();
    const wire =
      path.startsWith("/v1/messages") || req.headers["anthropic-version"]
        ? anthropicWire
        : openaiWire;
    const error = wire.error(
      { kind: "not_found", message: `Unknown request URL: ${req.method} ${path}` },
      "req_sim_0",
    );
    sendJson(res, error.status, error.body);
  }

  #models(req: IncomingMessage, res: ServerResponse): void {
    const created = Math.floor(Date.now() / 1000);
    if (req.headers["anthropic-version"]) {
      const data = ["sim-claude", "sim-claude-small"].map((id) => ({
        type: "model",
        id,
        display_name: id,
        created_at: new Date(created * 1000).toISOString(),
      }));
      const body = { data, has_more: false, first_id: data[0]!.id, last_id: data.at(-1)!.id };
      sendJson(res, 200, JSON.stringify(body));
      return;
    }
    const data = ["sim-gpt", "sim-gpt-mini"].map((id) => ({
      id,
      object: "model",
      created,
      owned_by: "salvo-sim",
    }));
    sendJson(res, 200, JSON.stringify({ object: "list", data }));
  }

  #chat(req: IncomingMessage, res: ServerResponse, wire: Wire): void {
    this.#stats.arrivals++;
    const ex: Exchange = {
      id: ++this.#seq,
      wire,
      pool: wire.path === "openai" ? this.#pools.openai : this.#pools.anthropic,
      res,
      arrivalMs: this.#now(),
      startMs: null,
      request: undefined,
      marker: null,
      promptTokens: 0,
      maxTokens: 0,
      fault: undefined,
      limitHeaders: undefined,
      ticket: undefined,
      timer: undefined,
      outputTokens: 0,
      inServer: false,
      ended: false,
      credential: credentialOf(req),
    };
    this.#active.add(ex);
    res.on("close", () => {
      // The client went away (or close() cut the connection) before the answer ended.
      if (!ex.ended) this.#end(ex, this.#closed ? 0 : 499);
    });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("end", () => {
      if (ex.ended) return;
      if (size > MAX_BODY_BYTES) {
        this.#stats.refusals.badRequest++;
        const message = `Request body too large: ${size} bytes, limit ${MAX_BODY_BYTES}.`;
        const error = wire.error(
          { kind: "bad_request", message, param: null },
          this.#requestId(ex),
        );
        this.#sendError(ex, { ...error, status: 413 }, undefined);
        return;
      }
      const text =
        chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8");
      this.#arrive(ex, text);
    });
  }

  #requestId(ex: Exchange): string {
    return `req_sim${ex.id.toString(36).padStart(8, "0")}`;
  }

  #arrive(ex: Exchange, text: string): void {
    const { wire, pool } = ex;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      this.#refuseBadRequest(
        ex,
        "We could not parse the JSON body of your request. The body must be valid JSON.",
        null,
      );
      return;
    }
    const request = wire.parse(body);
    if (isBadRequest(request)) {
      this.#refuseBadRequest(ex, request.error, request.param, request.code);
      return;
    }
    // Every valid arrival draws its fault, refused or not, so the fault sequence by arrival
    // order does not depend on real-time races at the rate limits.
    const fault = this.#faults.pick();
    const { pEchoKeyError } = this.config.faults;
    if (pEchoKeyError > 0 && this.#echoRandom() < pEchoKeyError) {
      // A server that quotes the key it refuses, in full.
      const message = `Incorrect API key provided: ${ex.credential ?? "(none)"}.`;
      const error = wire.error({ kind: "bad_request", message, param: null }, this.#requestId(ex));
      this.#sendError(ex, { ...error, status: 401 }, { "x-should-retry": "false" });
      return;
    }
    ex.request = request;
    ex.marker = expectedMarker(request.messages, { system: request.system });
    ex.promptTokens = request.promptTokens ?? countPromptTokens(request.messages, request.system);
    ex.maxTokens = request.maxTokens ?? this.config.output.defaultMaxTokens;
    if (this.config.quota) {
      this.#stats.refusals.quota++;
      const error = wire.error({ kind: "quota" }, this.#requestId(ex));
      this.#sendError(ex, error, { "x-should-retry": "false" });
      return;
    }
    const refusal = pool.limiter.admit({
      tokens: ex.promptTokens + ex.maxTokens,
      inputTokens: ex.promptTokens,
    });
    if (refusal) {
      const error = wire.error(
        { kind: "rate_limited", refusal, model: request.model },
        this.#requestId(ex),
      );
      if (refusal.tooLarge) {
        this.#stats.refusals.tooLarge++;
        this.#sendError(ex, error, { "x-should-retry": "false" });
        return;
      }
      this.#stats.refusals.rateLimited++;
      const ms = Math.ceil(refusal.retryAfterMs);
      this.#sendError(ex, error, {
        "retry-after": String(Math.ceil(ms / 1000)),
        "retry-after-ms": String(ms),
      });
      return;
    }
    this.#stats.promptTokens += ex.promptTokens;
    ex.limitHeaders = {};
    wire.rateLimitHeaders(pool.limiter, ex.limitHeaders);
    ex.fault = fault;
    if (fault) this.#stats.fault(fault);
    ex.ticket = new Ticket(() => this.#serve(ex));
    // Counted in the server before the gate may start it: a request that ends synchronously at
    // the start of its service (an injected 500) must leave the count as it found it.
    const peak = this.#stats.maxInServer;
    ex.inServer = true;
    this.#stats.enterServer();
    if (!pool.gate.enter(ex.ticket)) {
      ex.inServer = false;
      this.#stats.inServer--;
      this.#stats.maxInServer = peak;
      this.#stats.refusals.queueFull++;
      const error = wire.error({ kind: "overloaded" }, this.#requestId(ex));
      this.#sendError(ex, error, undefined);
      return;
    }
  }

  #refuseBadRequest(
    ex: Exchange,
    message: string,
    param: string | null,
    code?: string | undefined,
  ): void {
    this.#stats.refusals.badRequest++;
    const error = ex.wire.error({ kind: "bad_request", message, param, code }, this.#requestId(ex));
    this.#sendError(ex, error, undefined);
  }

  // Called by the gate when the request gets a slot.
  #serve(ex: Exchange): void {
    ex.startMs = this.#now();
    this.#stats.enterService();
    if (this.#closed) return; // close() is ending it
    const retryHeader = this.config.faults.shouldRetry ? { "x-should-retry": "true" } : undefined;
    switch (ex.fault) {
      case "server_error":
        this.#sendError(
          ex,
          ex.wire.error({ kind: "server_error" }, this.#requestId(ex)),
          retryHeader,
        );
        return;
      case "overloaded":
        this.#sendError(
          ex,
          ex.wire.error({ kind: "overloaded" }, this.#requestId(ex)),
          retryHeader,
        );
        return;
      case "reset":
        this.#end(ex, 0);
        ex.res.socket?.destroy();
        return;
      case "hang":
        return; // holds its slot until the client goes away or close() cuts it
    }
    const request = ex.request!;
    const u = hashUniform(this.config.seed, markerKey(ex.marker!));
    // An embedding has no output tokens: its service time is the time to first token.
    const length = request.embedding
      ? { tokens: 0, capped: false }
      : outputLength(this.config.output.range, ex.maxTokens, u);
    const timing = sampleTiming(this.config.latency, this.#latencyRandom, ex.pool.gate.inService);
    const delay = ex.fault === "slow_first_byte" ? this.config.faults.slowMs : 0;
    const answer: Answer = {
      id: `${ex.wire.idPrefix}sim${ex.id.toString(36)}`,
      model: request.model,
      text: "",
      promptTokens: ex.promptTokens,
      outputTokens: length.tokens,
      capped: length.capped,
      includeUsage: request.includeUsage,
      request,
    };
    const head = answerHead(ex.marker!, echoOf(request.messages, this.config.output.echoChars));
    if (request.stream) {
      const first = timing.ttftMs + delay;
      if (first <= 0) {
        this.#stream(ex, answer, head, timing);
        return;
      }
      ex.timer = setTimeout(() => this.#stream(ex, answer, head, timing), first);
      return;
    }
    const total = serviceMs(timing, length.tokens) + delay;
    if (total <= 0) {
      this.#answer(ex, answer, head);
      return;
    }
    ex.timer = setTimeout(() => this.#answer(ex, answer, head), total);
  }

  #answer(ex: Exchange, answer: Answer, head: string): void {
    if (ex.ended) return;
    answer.text = answerText(head, answer.outputTokens);
    if (this.config.faults.echoKeyAnswer && ex.credential) answer.text += ` ${ex.credential}`;
    let body = ex.wire.completion(answer);
    if (ex.fault === "malformed") body = `{,${body.slice(1)}`;
    else if (ex.fault === "truncated") body = body.slice(0, body.length >> 1);
    const headers = this.#headers(ex, "application/json");
    headers["content-length"] = String(Buffer.byteLength(body));
    ex.res.writeHead(200, headers);
    ex.res.end(body);
    this.#produced(ex, answer.outputTokens);
    if (ex.fault !== "malformed" && ex.fault !== "truncated") this.#stats.completions++;
    this.#end(ex, 200);
  }

  #stream(ex: Exchange, answer: Answer, head: string, timing: Timing): void {
    if (ex.ended) return;
    const { res } = ex;
    const format = ex.wire.stream(answer);
    const headers = this.#headers(ex, "text/event-stream; charset=utf-8");
    headers["cache-control"] = "no-cache";
    res.writeHead(200, headers);
    const total = answer.outputTokens;
    // A truncated stream stops after half its pieces, without its closing events.
    const last = ex.fault === "truncated" ? Math.max(1, total >> 1) : total;
    const t0 = performance.now();
    let sent = 0;
    let out = format.head();
    const tick = () => {
      ex.timer = undefined;
      if (ex.ended) return;
      const due =
        timing.msPerToken <= 0
          ? last
          : Math.min(last, 1 + Math.floor((performance.now() - t0) / timing.msPerToken));
      while (sent < due) out += format.piece(answerPiece(head, sent++));
      if (sent < last) {
        if (out !== "") res.write(out);
        out = "";
        const next = t0 + sent * timing.msPerToken - performance.now();
        ex.timer = setTimeout(tick, Math.max(1, next));
        return;
      }
      if (ex.fault === "truncated") res.end(out);
      else if (ex.fault === "malformed") res.end(out + format.garbage());
      else {
        res.end(out + format.tail());
        this.#stats.completions++;
      }
      this.#produced(ex, ex.fault === "truncated" ? last : total);
      this.#end(ex, 200);
    };
    tick();
  }

  #produced(ex: Exchange, tokens: number): void {
    ex.outputTokens = tokens;
    this.#stats.outputTokens += tokens;
    ex.pool.limiter.settleOutput(tokens);
  }

  #headers(ex: Exchange, contentType: string): Record<string, string> {
    const headers: Record<string, string> = {
      "content-type": contentType,
      [ex.wire.requestIdHeader]: this.#requestId(ex),
    };
    if (ex.limitHeaders) Object.assign(headers, ex.limitHeaders);
    else ex.wire.rateLimitHeaders(ex.pool.limiter, headers);
    if (this.config.faults.echoKeyHeader && ex.credential)
      headers[ex.wire.requestIdHeader] = `${this.#requestId(ex)} ${ex.credential}`;
    return headers;
  }

  #sendError(
    ex: Exchange,
    error: { status: number; body: string },
    extra: Record<string, string> | undefined,
  ): void {
    if (ex.ended) return;
    const headers = this.#headers(ex, "application/json");
    if (extra) Object.assign(headers, extra);
    headers["content-length"] = String(Buffer.byteLength(error.body));
    ex.res.writeHead(error.status, headers);
    ex.res.end(error.body);
    this.#end(ex, error.status);
  }

  // Every exchange ends here exactly once: frees its slot, and records it.
  #end(ex: Exchange, status: number): void {
    if (ex.ended) return;
    ex.ended = true;
    if (ex.timer) clearTimeout(ex.timer);
    const serving = ex.ticket?.state === "serving";
    if (serving) this.#stats.inService--;
    if (ex.inServer) this.#stats.inServer--;
    this.#active.delete(ex);
    this.#stats.end({
      id: ex.id,
      path: ex.wire.path,
      endpoint: ex.wire.endpoint,
      arrivalMs: round(ex.arrivalMs),
      startMs: ex.startMs === null ? null : round(ex.startMs),
      endMs: round(this.#now()),
      status,
      fault: ex.fault ?? null,
      stream: ex.request?.stream ?? false,
      promptTokens: ex.promptTokens,
      outputTokens: ex.outputTokens,
      marker: ex.marker,
    });
    // Last: releasing may start the next queued request synchronously.
    if (ex.ticket) ex.pool.gate.release(ex.ticket);
  }
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** The credential a request was sent with, as sent. */
function credentialOf(req: IncomingMessage): string | undefined {
  const value = req.headers.authorization ?? req.headers["x-api-key"];
  return Array.isArray(value) ? value[0] : value;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

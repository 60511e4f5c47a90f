// `salvo serve`'s library entry point: an OpenAI- and Anthropic-compatible gateway as one
// `(Request) => Promise<Response>` handler (tested without a port; `listen` serves it). Every
// request from every client, in any language, goes through the one scheduler of its upstream,
// so many processes share one rate limit as if they were one. Tenants authenticate with gateway
// keys and have their own priority, rates, budget and models; upstream keys never leave.
//
// A call: authenticate -> read and check the body -> route by path and model -> backpressure
// (bounded queue; an expected wait the caller cannot afford is a 429 with a computed
// retry-after) -> the tenant's rates -> the tenant's budget -> the upstream's Salvo client
// (single-flight, cache, budget, scheduler, retries, audit) -> the answer, or the upstream's own
// error as it came. A streamed answer holds its slot until its last event.
import { Hono } from "hono";
import { withContext } from "../audit/audit-context.ts";
import type { CallAuditor } from "../audit/call-auditor.ts";
import type { CallOutcome } from "../cache/call-layer.ts";
import type { ResponseCache } from "../cache/response-cache.ts";
import { type Clock, realClock, sleepOn } from "../core/clock.ts";
import { Pricing } from "../cost/pricing.ts";
import { AbortedError, ConfigError } from "../errors.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import { runBatchLine } from "./batch-line.ts";
import { batchRoutes } from "./batch-routes.ts";
import { BatchRunner } from "./batch-runner.ts";
import { BatchStore } from "./batch-store.ts";
import { callContext, callerDeadlineMs } from "./call-context.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { GatewayStats, type RefusalReason } from "./gateway-stats.ts";
import { type GatewayStatus, gatewayStatus, HistoryRecorder } from "./gateway-status.ts";
import { GatewayMetrics } from "./prometheus.ts";
import {
  ChatStreamReader,
  MessagesStreamReader,
  ResponsesStreamReader,
  type StreamReader,
} from "./stream-reader.ts";
import { StreamRelay } from "./stream-relay.ts";
import { KeyRing, presentedKey, Tenant, type TenantOptions } from "./tenant.ts";
import { isRefusal } from "./tenant-limiter.ts";
import { Upstream, type UpstreamOptions } from "./upstream.ts";
import { answerTextOf, type Exchange } from "./upstream-provider.ts";
import {
  errorResponse,
  failureError,
  retryHeaders,
  streamErrorEvent,
  type Wire,
  type WireError,
} from "./wire-errors.ts";

export type GatewayOptions = {
  /** The upstreams, at least one. A request goes to the first that speaks its wire and serves its model. */
  upstreams: readonly UpstreamOptions[];
  /**
   * The tenants and their keys. Without any, every caller is the tenant `default` with no limits
   * of its own, and `listen` binds loopback only. @default none
   */
  tenants?: readonly TenantOptions[] | undefined;
  /** Records every attempt (e.g. `await openCallLog(path)`), with each call's context. @default none */
  audit?: CallAuditor | undefined;
  /** The response cache, shared by every upstream. @default none */
  cache?: ResponseCache | undefined;
  /** Share and cache sampled answers too (see `SalvoOptions.shareSamples`). @default false */
  shareSamples?: boolean | undefined;
  /** Prices for costs and budgets. @default the built-in table */
  pricing?: Pricing | undefined;
  /** Largest request body, bytes; larger ones get a 413. @default 33_554_432 (32 MiB) */
  maxBodyBytes?: number | undefined;
  /** One record per request answered: for an access log. Never holds a key or a body. @default none */
  onAccess?: ((record: AccessRecord) => void) | undefined;
  /** Include Node's process metrics (memory, CPU, event loop) in /metrics. @default true */
  processMetrics?: boolean | undefined;
  /** The clock. @default realClock */
  clock?: Clock | undefined;
  /**
   * The state directory of the batch APIs (OpenAI files and batches, Anthropic message batches):
   * files, batches and their results, so that a restart resumes every batch. Without one the
   * batch endpoints answer 404. @default none
   */
  stateDir?: string | undefined;
  /**
   * Most requests of one batch unrecorded at once (sent, or answered and being recorded), below
   * its upstream's concurrency limit, which also bounds it: a kill re-pays at most that many.
   * @default 64
   */
  batchWindow?: number | undefined;
};

/** One line of the access log. */
export type AccessRecord = {
  ts: string;
  id: string;
  tenant: string | undefined;
  upstream: string | undefined;
  method: string;
  path: string;
  model: string | undefined;
  status: number;
  ms: number;
  stream: boolean;
  attempts?: number | undefined;
  cache?: "hit" | "shared" | undefined;
  input_tokens?: number | undefined;
  output_tokens?: number | undefined;
  cost_usd?: number | undefined;
  error?: string | undefined;
  refused?: RefusalReason | undefined;
};

export interface Gateway {
  /**
   * The handler: any fetch-style server (or a test) calls it. Under Node, `env.incoming` (the
   * request as Node received it, as @hono/node-server passes it) lets the body be read without
   * a stream copy.
   */
  fetch(request: Request, env?: NodeEnv): Promise<Response>;
  /** Whether callers must present a key (tenants are configured). */
  readonly requiresKeys: boolean;
  /** Calls being handled now (queued, waiting, in flight or streaming). */
  readonly active: number;
  /**
   * The figures the dashboard shows: every tenant's, or as the tenant `viewer` may see them (its
   * own only, unless it is an admin).
   */
  status(viewer?: string): GatewayStatus;
  /** The Prometheus exposition of the same figures. */
  metrics(): Promise<string>;
  /** Stops accepting calls (503 with a retry-after; `/healthz` says draining); calls in flight go on. */
  drain(): void;
  /** Resolves when no call is being handled (at once if none is). */
  idle(signal?: AbortSignal): Promise<void>;
  /** Stops every upstream's scheduler (calls still running are aborted) and the timers. */
  close(): Promise<void>;
}

const OPENAI_PATHS = ["/chat/completions", "/completions", "/embeddings", "/responses"] as const;
const STREAMABLE = new Set(["/chat/completions", "/completions", "/responses", "/messages"]);
const FORWARDED_HEADERS: Record<Wire, readonly string[]> = {
  openai: [],
  anthropic: ["anthropic-version", "anthropic-beta"],
};

/** Builds the gateway. Validates the options (a ConfigError names the field). */
export function createGateway(options: GatewayOptions): Gateway {
  return new SalvoGateway(options);
}

type Json = Record<string, unknown>;

class SalvoGateway implements Gateway {
  readonly requiresKeys: boolean;
  readonly #app = new Hono();
  readonly #clock: Clock;
  readonly #upstreams: Upstream[];
  readonly #tenants: Tenant[];
  readonly #keys: KeyRing;
  readonly #open: Tenant | undefined;
  readonly #stats: GatewayStats;
  readonly #history: HistoryRecorder;
  readonly #metrics: GatewayMetrics;
  readonly #maxBodyBytes: number;
  readonly #onAccess: ((record: AccessRecord) => void) | undefined;
  readonly #secrets: string[];
  /** Whether anything records a call's audit context (the call log). */
  readonly #audited: boolean;
  readonly #leave = new Map<string, () => void>();
  readonly #stops: Array<() => void> = [];
  readonly #idle = new Set<() => void>();
  /** The batch APIs' state directory, once open (undefined without one), and their runner. */
  readonly #batchStore: Promise<BatchStore | undefined>;
  #batchRunner: BatchRunner | undefined;
  #active = 0;
  #seq = 0;
  #draining = false;
  #closed = false;
  readonly #idPrefix = Math.floor(Math.random() * 0xffffff)
    .toString(36)
    .padStart(5, "0");

  constructor(options: GatewayOptions) {
    this.#clock = options.clock ?? realClock;
    const pricing = options.pricing ?? new Pricing();
    this.#maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
    this.#onAccess = options.onAccess;
    this.#stats = new GatewayStats(() => this.#clock.now());
    if (options.upstreams.length === 0)
      throw new ConfigError({ field: "upstreams", expected: "at least one upstream", got: [] });
    const names = new Set<string>();
    this.#upstreams = options.upstreams.map((upstream, i) => {
      const name = upstream.name ?? upstream.provider;
      if (names.has(name))
        throw new ConfigError({
          field: `upstreams[${i}].name`,
          expected: "a name no other upstream has (two of the same provider need names)",
          got: name,
        });
      names.add(name);
      return new Upstream(
        { ...upstream, name },
        {
          clock: this.#clock,
          audit: options.audit,
          cache: options.cache,
          shareSamples: options.shareSamples ?? false,
          pricing,
          figures: this.#stats.scheduler(name),
        },
      );
    });
    this.#secrets = options.upstreams.map((u) => u.apiKey).filter((k) => k.length >= 8);
    this.#audited = options.audit !== undefined;
    const estimate = (request: ProviderRequest) =>
      (
        this.#upstreams.find((u) => (request.path === "/messages") === (u.kind === "anthropic")) ??
        this.#upstreams[0]!
      ).provider.estimate(request);
    const tenantNames = new Set<string>();
    this.#tenants = (options.tenants ?? []).map((tenant, i) => {
      if (tenantNames.has(tenant.name))
        throw new ConfigError({
          field: `tenants[${i}].name`,
          expected: "a name no other tenant has",
          got: tenant.name,
        });
      tenantNames.add(tenant.name);
      if ((tenant.keys?.length ?? 0) + (tenant.keySha256?.length ?? 0) === 0)
        throw new ConfigError({
          field: `tenants[${i}].keys`,
          expected: "at least one key (keys or keySha256)",
          got: [],
        });
      return new Tenant(tenant, { clock: this.#clock, pricing, estimate });
    });
    this.#keys = new KeyRing(this.#tenants);
    this.requiresKeys = this.#tenants.length > 0;
    this.#open = this.requiresKeys
      ? undefined
      : new Tenant({ name: "default", admin: true }, { clock: this.#clock, pricing, estimate });
    for (const upstream of this.#upstreams) {
      this.#stops.push(this.#stats.watch(upstream.name, upstream.scheduler));
      this.#stops.push(
        upstream.scheduler.on("started", (e) => {
          if (e.attempt === 1) this.#leave.get(String(e.id))?.();
        }),
      );
    }
    this.#history = new HistoryRecorder(this.#clock, this.#upstreams, this.#stats);
    this.#metrics = new GatewayMetrics({
      upstreams: this.#upstreams,
      tenants: () => this.#allTenants(),
      stats: this.#stats,
      processMetrics: options.processMetrics ?? true,
      now: () => this.#clock.now(),
    });
    this.#batchStore = this.#openBatches(options);
    // A state directory that cannot be used is reported to each batch request (a 500 naming it).
    this.#batchStore.catch(() => {});
    this.#routes();
  }

  /** Opens the state directory and resumes every batch that had not ended. */
  async #openBatches(options: GatewayOptions): Promise<BatchStore | undefined> {
    if (options.stateDir === undefined) return undefined;
    const store = await BatchStore.open(options.stateDir);
    const most = options.batchWindow ?? 64;
    const runner = new BatchRunner({
      store,
      // No more unrecorded requests than the upstream serves at once: a kill re-pays at most those.
      window: (batch) => {
        const upstream =
          this.#upstreams.find(
            (u) =>
              (u.kind === "anthropic") === (batch.provider === "anthropic") &&
              (batch.model === null || u.serves(batch.model)),
          ) ?? this.#upstreams[0]!;
        return Math.min(most, upstream.scheduler.limit);
      },
      execute: (batch, line, signal) =>
        runBatchLine(
          {
            tenants: () => this.#allTenants(),
            upstreams: this.#upstreams,
            clock: this.#clock,
            secrets: this.#secrets,
            begin: () => this.#begin(),
            nextId: () => this.#nextId(),
            account: (upstream, tenant, outcome, status, submittedAt) =>
              this.#account(upstream, tenant, outcome, status, submittedAt, batchAccessRecord()),
          },
          batch,
          line,
          signal,
        ),
    });
    this.#batchRunner = runner;
    if (this.#draining) runner.drain();
    for (const batch of store.all()) runner.start(batch);
    return store;
  }

  get active(): number {
    return this.#active;
  }

  fetch(request: Request, env?: NodeEnv): Promise<Response> {
    return Promise.resolve(this.#app.fetch(request, env));
  }

  status(viewer?: string): GatewayStatus {
    if (viewer === undefined) return this.#statusFor(undefined);
    const tenant = this.#allTenants().find((t) => t.name === viewer);
    if (tenant === undefined)
      throw new ConfigError({
        field: "viewer",
        expected: `a tenant of this gateway (${this.#allTenants()
          .map((t) => t.name)
          .join(", ")})`,
        got: viewer,
      });
    return this.#statusFor(tenant);
  }

  metrics(): Promise<string> {
    return this.#metrics.text();
  }

  drain(): void {
    this.#draining = true;
    this.#batchRunner?.drain();
  }

  idle(signal?: AbortSignal): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#idle.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#idle.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#draining = true;
    this.#history.stop();
    for (const stop of this.#stops) stop();
    await this.#batchStore.catch(() => undefined);
    await this.#batchRunner?.close();
    await Promise.all(this.#upstreams.map((u) => u.close()));
  }

  #allTenants(): Tenant[] {
    return this.#open ? [this.#open] : this.#tenants;
  }

  /** The figures as `viewer` may see them; undefined: the process's own view (everything). */
  #statusFor(viewer: Tenant | undefined): GatewayStatus {
    return gatewayStatus({
      viewer: viewer?.name ?? "(gateway)",
      admin: viewer === undefined || viewer.admin || viewer === this.#open,
      upstreams: this.#upstreams,
      tenants: this.#allTenants(),
      stats: this.#stats,
      history: this.#history,
      draining: this.#draining,
      now: this.#clock.now(),
    });
  }

  #routes(): void {
    const app = this.#app;
    for (const path of OPENAI_PATHS)
      app.post(`/v1${path}`, (c) => this.#call(c.req.raw, c.env as NodeEnv, "openai", path));
    app.post("/v1/messages", (c) =>
      this.#call(c.req.raw, c.env as NodeEnv, "anthropic", "/messages"),
    );
    app.get("/v1/models", (c) => this.#models(c.req.raw, undefined));
    app.get("/v1/models/:id{.+}", (c) => this.#models(c.req.raw, c.req.param("id")));
    app.get("/healthz", () =>
      Response.json(
        { status: this.#draining ? "draining" : "ok", active: this.#active },
        { status: this.#draining ? 503 : 200 },
      ),
    );
    app.get("/metrics", async (c) => {
      const viewer = this.#viewer(c.req.raw.headers);
      if (!viewer?.admin) return this.#unauthorized(c.req.raw, "openai", viewer !== undefined);
      return new Response(await this.#metrics.text(), {
        headers: { "content-type": this.#metrics.contentType },
      });
    });
    app.get("/salvo/status", (c) => {
      const viewer = this.#viewer(c.req.raw.headers);
      if (viewer === undefined) return this.#unauthorized(c.req.raw, "openai", false);
      return Response.json(this.#statusFor(viewer), { headers: { "cache-control": "no-store" } });
    });
    batchRoutes(app, {
      store: () => this.#batchStore,
      runner: () => this.#batchRunner,
      tenantOf: (headers) => this.#viewer(headers),
      unauthorized: (request, wire) => this.#unauthorized(request, wire, false),
    });
    dashboardRoutes(app);
    app.notFound((c) => {
      const request = c.req.raw;
      const wire: Wire =
        request.headers.has("anthropic-version") ||
        new URL(request.url).pathname.includes("/messages")
          ? "anthropic"
          : "openai";
      return errorResponse(wire, {
        status: 404,
        code: "unknown_url",
        message: `Unknown request URL: ${request.method} ${new URL(request.url).pathname}. The gateway serves POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /v1/messages and GET /v1/models.`,
      });
    });
    app.onError((error, c) => {
      // Never a stack trace or a secret to the client; the operator sees the code.
      const code = (error as { code?: unknown }).code;
      return errorResponse(c.req.raw.headers.has("anthropic-version") ? "anthropic" : "openai", {
        status: 500,
        message: `salvo gateway: internal error${typeof code === "string" ? ` (${code})` : ""}`,
      });
    });
  }

  /** The tenant of a request: by its key, or the open tenant when no keys are configured. */
  #viewer(headers: Headers): Tenant | undefined {
    if (this.#open) return this.#open;
    const key = presentedKey(headers);
    return key === undefined ? undefined : this.#keys.find(key);
  }

  #unauthorized(request: Request, wire: Wire, forbidden: boolean): Response {
    if (forbidden)
      return errorResponse(wire, {
        status: 403,
        code: "admin_key_required",
        message: "salvo gateway: this needs an admin tenant's key",
      });
    const presented = presentedKey(request.headers) !== undefined;
    return errorResponse(wire, {
      status: 401,
      code: "invalid_api_key",
      message: presented
        ? "salvo gateway: the API key is not a key of this gateway (keys are never echoed)"
        : "salvo gateway: no API key; send the gateway key as `Authorization: Bearer KEY` or `x-api-key: KEY`",
    });
  }

  #nextId(): string {
    return `gw-${this.#idPrefix}-${(++this.#seq).toString(36).padStart(6, "0")}`;
  }

  #begin(): () => void {
    this.#active++;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      if (--this.#active === 0) for (const resolve of [...this.#idle]) resolve();
    };
  }

  /** One API call, from the raw request to the client's answer. */
  async #call(
    request: Request,
    env: NodeEnv | undefined,
    wire: Wire,
    path: string,
  ): Promise<Response> {
    const end = this.#begin();
    const started = this.#clock.now();
    const id = this.#nextId();
    const log: AccessRecord = {
      ts: this.#onAccess ? new Date().toISOString() : "",
      id,
      tenant: undefined,
      upstream: undefined,
      method: request.method,
      path: `/v1${path}`,
      model: undefined,
      status: 0,
      ms: 0,
      stream: false,
    };
    const headers: Record<string, string> = { "x-salvo-request-id": id };
    let finished = false;
    const finish = (response: Response, extra: Partial<AccessRecord> = {}): Response => {
      if (!finished) {
        finished = true;
        Object.assign(log, extra);
        log.status = response.status;
        log.ms = Math.round((this.#clock.now() - started) * 100) / 100;
        end();
        this.#onAccess?.(log);
      }
      return response;
    };
    const refuse = (reason: RefusalReason, error: WireError, pair?: [string, string]) => {
      this.#stats.refuse(pair?.[0], pair?.[1], reason);
      if (pair)
        this.#stats
          .pair(pair[0], pair[1])
          .byStatus.set(
            error.status,
            (this.#stats.pair(pair[0], pair[1]).byStatus.get(error.status) ?? 0) + 1,
          );
      return finish(errorResponse(wire, error, headers), { refused: reason });
    };
    try {
      if (this.#draining)
        return refuse("shutting_down", {
          status: 503,
          anthropicType: "overloaded_error",
          message: "salvo gateway: shutting down; try again shortly",
          headers: retryHeaders(1000),
        });
      const tenant = this.#viewer(request.headers);
      if (tenant === undefined) {
        this.#stats.refuse(undefined, undefined, "unauthorized");
        return finish(this.#unauthorized(request, wire, false), { refused: "unauthorized" });
      }
      log.tenant = tenant.name;
      const read = await readBody(request, env?.incoming, this.#maxBodyBytes);
      if (!read.ok) return refuse("bad_request", read.error);
      let body: Json;
      try {
        const parsed: unknown = JSON.parse(read.text);
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
          return refuse("bad_request", {
            status: 400,
            message: "The request body must be a JSON object.",
          });
        body = parsed as Json;
      } catch {
        return refuse("bad_request", {
          status: 400,
          message:
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
        });
      }
      const model = body.model;
      if (typeof model !== "string" || model === "")
        return refuse("bad_request", {
          status: 400,
          param: "model",
          code: "missing_required_parameter",
          message: "you must provide a model parameter",
        });
      log.model = model;
      const upstream = this.#upstreams.find(
        (u) => (u.kind === "anthropic") === (wire === "anthropic") && u.serves(model),
      );
      if (upstream === undefined)
        return refuse("bad_request", {
          status: 404,
          code: "model_not_found",
          param: "model",
          message: `The model \`${model}\` does not exist or you do not have access to it (no upstream of this gateway serves it).`,
        });
      log.upstream = upstream.name;
      const pair: [string, string] = [upstream.name, tenant.name];
      if (!tenant.allows(model))
        return refuse(
          "model_not_allowed",
          {
            status: 403,
            code: "model_not_allowed",
            param: "model",
            message: `salvo gateway: tenant ${tenant.name} may not use the model \`${model}\``,
          },
          pair,
        );
      const context = callContext(request.headers.get("x-salvo-context"), body.metadata);
      if (!context.ok)
        return refuse("bad_request", { status: 400, message: context.problem }, pair);
      const figures = this.#stats.pair(upstream.name, tenant.name);
      figures.received++;
      figures.active++;
      try {
        return await this.#forward({
          request,
          wire,
          path,
          body,
          id,
          tenant,
          upstream,
          contextFields: context.fields,
          headers,
          log,
          finish,
          refuse: (reason, error) => refuse(reason, error, pair),
        });
      } finally {
        figures.active--;
      }
    } catch (error) {
      return finish(
        errorResponse(
          wire,
          {
            status: 500,
            message: `salvo gateway: internal error${error instanceof Error && "code" in error ? ` (${String((error as { code: unknown }).code)})` : ""}`,
          },
          headers,
        ),
      );
    }
  }

  async #forward(call: {
    request: Request;
    wire: Wire;
    path: string;
    body: Json;
    id: string;
    tenant: Tenant;
    upstream: Upstream;
    contextFields: Record<string, string>;
    headers: Record<string, string>;
    log: AccessRecord;
    finish: (response: Response, extra?: Partial<AccessRecord>) => Response;
    refuse: (reason: RefusalReason, error: WireError) => Response;
  }): Promise<Response> {
    const { request, wire, path, id, tenant, upstream, headers, log, finish, refuse } = call;
    let body = call.body;
    const stream = body.stream === true && STREAMABLE.has(path);
    log.stream = stream;
    // Anthropic refuses metadata keys other than user_id: the others were for the gateway.
    if (wire === "anthropic" && isObject(body.metadata)) {
      const { user_id } = body.metadata as Json;
      const { metadata: _, ...rest } = body;
      body = user_id === undefined ? rest : { ...rest, metadata: { user_id } };
    }
    // The gateway reconciles a stream's usage from its final chunk, so it always asks for it.
    const clientWantsUsage =
      isObject(body.stream_options) && (body.stream_options as Json).include_usage === true;
    if (stream && wire === "openai" && path.endsWith("/completions"))
      body = {
        ...body,
        stream_options: {
          ...(isObject(body.stream_options) ? body.stream_options : {}),
          include_usage: true,
        },
      };
    const forwarded: Record<string, string> = {};
    for (const name of FORWARDED_HEADERS[wire]) {
      const value = request.headers.get(name);
      if (value !== null) forwarded[name] = value;
    }
    const providerRequest: ProviderRequest = { path, body };
    let tokens: number;
    try {
      const estimate = upstream.provider.estimate(providerRequest);
      tokens = estimate.inputTokens + estimate.outputTokens;
    } catch {
      return refuse("bad_request", {
        status: 400,
        message:
          "The request body is not a valid request for this endpoint (it could not be read for its tokens).",
      });
    }
    this.#stats.noteReserved(upstream.name, tokens);

    // Backpressure: a bounded queue, and no wait longer than the caller can afford.
    const deadlineMs = callerDeadlineMs(request.headers);
    const maxWaitMs = Math.min(upstream.maxWaitMs, deadlineMs ?? Number.POSITIVE_INFINITY);
    const waiting = upstream.waiting;
    const expected = upstream.expectedWaitMs(tenant.priority, tokens);
    if (waiting >= upstream.maxQueued) {
      const drain = (expected * (waiting - upstream.maxQueued + 1)) / (waiting + 1);
      return refuse("queue_full", {
        status: 429,
        code: "rate_limit_exceeded",
        message: `salvo gateway: upstream ${upstream.name} has ${waiting} requests waiting, the most it queues; try again in ${seconds(drain)}`,
        headers: retryHeaders(Math.max(drain, 50)),
      });
    }
    if (expected > maxWaitMs)
      return refuse("wait_too_long", {
        status: 429,
        code: "rate_limit_exceeded",
        message: `salvo gateway: upstream ${upstream.name} is busy: the expected wait (${seconds(expected)}) is longer than ${deadlineMs !== undefined && deadlineMs <= upstream.maxWaitMs ? "the request's timeout" : "the gateway's most"} (${seconds(maxWaitMs)}); try again in ${seconds(expected - maxWaitMs)}`,
        headers: retryHeaders(Math.max(expected - maxWaitMs, 50)),
      });
    const hold = tenant.limiter.reserve(tokens, maxWaitMs - expected);
    if (isRefusal(hold)) {
      const never = !Number.isFinite(hold.retryAfterMs);
      return refuse("tenant_rate_limit", {
        status: 429,
        type: hold.dimension,
        code: "rate_limit_exceeded",
        message: never
          ? `salvo gateway: the request needs ${tokens} tokens, more than tenant ${tenant.name}'s limit of ${hold.limitPerMinute} tokens per minute`
          : `salvo gateway: tenant ${tenant.name}'s rate limit of ${hold.limitPerMinute} ${hold.dimension} per minute is reached; try again in ${seconds(hold.retryAfterMs)}`,
        headers: never ? { "x-should-retry": "false" } : retryHeaders(hold.retryAfterMs),
      });
    }
    const relay = stream ? new StreamRelay() : undefined;
    const signal = relay ? AbortSignal.any([request.signal, relay.cancelled]) : request.signal;
    if (hold.waitMs > 0 && !(await sleepOn(this.#clock, hold.waitMs, signal))) {
      hold.cancel();
      return finish(new Response(null, { status: 499 }), { error: "SALVO_ABORTED" });
    }

    const exchange: Exchange = {
      headers: Object.keys(forwarded).length > 0 ? forwarded : undefined,
      stream: relay ? { relay, reader: () => readerFor(path, clientWantsUsage) } : undefined,
    };
    if (exchange.stream || exchange.headers) upstream.provider.attach(providerRequest, exchange);
    const salvo = stream || exchange.headers ? upstream.direct : upstream.shared;
    const scope = upstream.scopeFor(tenant.name, tenant.priority, tenant.maxConcurrency);
    const leave = upstream.enqueue(tenant.priority);
    this.#leave.set(id, leave);
    const submittedAt = this.#clock.now();
    const settle = (req: ProviderRequest, ctx: { signal: AbortSignal | undefined }) =>
      salvo.settle(req, {
        id,
        priority: tenant.priority,
        signal: ctx.signal,
        deadlineMs,
        scope,
      });
    const layer = tenant.budgetLayer;
    const send = () =>
      layer
        ? layer(providerRequest, { id, index: 0, signal, submittedAt }, settle)
        : settle(providerRequest, { signal });
    // The context travels with the call only to be recorded: without a call log, not at all.
    const outcome: Promise<CallOutcome> = (
      this.#audited
        ? withContext({ ...call.contextFields, tenant: tenant.name, gateway_request_id: id }, send)
        : send()
    ).finally(() => {
      leave();
      this.#leave.delete(id);
    });
    const done = (settled: CallOutcome, status: number) => {
      this.#account(upstream, tenant, settled, status, submittedAt, log);
      hold.settle(
        settled.ok && settled.value.usage
          ? settled.value.usage.inputTokens + settled.value.usage.outputTokens
          : settled.ok
            ? undefined
            : 0,
      );
    };

    if (relay === undefined) {
      const settled = await outcome;
      const response = this.#answer(wire, settled, headers, upstream);
      done(settled, response.status);
      return finish(response);
    }

    // A stream: answer when its first event is ready (an attempt that fails before that is
    // retried unseen), then pass the rest on while the attempt holds its slot.
    const first = await Promise.race([relay.opened.then(() => undefined), outcome]);
    if (first !== undefined && !relay.isOpen) {
      const response = this.#answer(wire, first, headers, upstream);
      done(first, response.status);
      return finish(response);
    }
    outcome.then((settled) => {
      if (!settled.ok && !exchange.errorForwarded && !relay.cancelled.aborted) {
        const failure = failureError(wire, settled.error, this.#secrets);
        void relay.write(streamErrorEvent(wire, failure.body));
      }
      relay.close();
      const status = settled.ok ? 200 : relay.cancelled.aborted ? 499 : 200;
      done(settled, status);
      finish(new Response(null, { status }), {
        error: settled.ok ? undefined : codeOf(settled.error),
      });
    });
    const out: Record<string, string> = {
      ...headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-salvo-upstream": upstream.name,
    };
    if (exchange.requestId !== undefined)
      out[wire === "anthropic" ? "request-id" : "x-request-id"] = exchange.requestId;
    return new Response(relay.readable, { status: 200, headers: out });
  }

  /** The client's answer to a settled call. */
  #answer(
    wire: Wire,
    outcome: CallOutcome,
    headers: Record<string, string>,
    upstream: Upstream,
  ): Response {
    if (outcome.ok) {
      const value = outcome.value;
      const out: Record<string, string> = {
        ...headers,
        "content-type": "application/json",
        "x-salvo-upstream": upstream.name,
        "x-salvo-attempts": String(outcome.attempts),
      };
      if (value.requestId !== undefined)
        out[wire === "anthropic" ? "request-id" : "x-request-id"] = value.requestId;
      if (value.cached) out["x-salvo-cache"] = "hit";
      else if (value.shared) out["x-salvo-cache"] = "shared";
      if (value.cost?.usd !== undefined) out["x-salvo-cost-usd"] = value.cost.usd.toFixed(8);
      // The upstream's own text when the body is the one it sent (not re-encoded per call).
      const text = answerTextOf(value.body) ?? JSON.stringify(value.body);
      return new Response(text, { status: value.status, headers: out });
    }
    const failure = failureError(wire, outcome.error, this.#secrets);
    return new Response(failure.status === 499 ? null : failure.body, {
      status: failure.status,
      headers: {
        ...headers,
        ...failure.headers,
        "content-type": "application/json",
        "x-salvo-upstream": upstream.name,
        "x-salvo-attempts": String(outcome.attempts),
      },
    });
  }

  /** Counts a settled call in the stats and its access record. */
  #account(
    upstream: Upstream,
    tenant: Tenant,
    outcome: CallOutcome,
    status: number,
    submittedAt: number,
    log: AccessRecord,
  ): void {
    const figures = this.#stats.pair(upstream.name, tenant.name);
    const now = this.#clock.now();
    figures.byStatus.set(status, (figures.byStatus.get(status) ?? 0) + 1);
    figures.latency.record(now - submittedAt, now);
    figures.requestRate.record(now);
    this.#metrics.observe(upstream.name, tenant.name, (now - submittedAt) / 1000);
    log.attempts = outcome.attempts;
    if (!outcome.ok) {
      log.error = codeOf(outcome.error);
      if (log.error === "SALVO_BUDGET_EXCEEDED")
        this.#stats.refuse(upstream.name, tenant.name, "budget");
      return;
    }
    const value = outcome.value;
    if (value.cached) {
      figures.cacheHits++;
      log.cache = "hit";
    } else if (value.shared) {
      figures.shared++;
      log.cache = "shared";
    }
    if (value.usage && !value.cached && !value.shared) {
      figures.inputTokens += value.usage.inputTokens;
      figures.outputTokens += value.usage.outputTokens;
      figures.tokenRate.record(now, value.usage.inputTokens + value.usage.outputTokens);
      log.input_tokens = value.usage.inputTokens;
      log.output_tokens = value.usage.outputTokens;
    }
    if (value.cost?.usd !== undefined) {
      figures.costUsd += value.cost.usd;
      log.cost_usd = value.cost.usd;
    }
  }

  /** GET /v1/models: what the upstreams of the client's wire serve that the tenant may use. */
  async #models(request: Request, id: string | undefined): Promise<Response> {
    const wire: Wire = request.headers.has("anthropic-version") ? "anthropic" : "openai";
    const tenant = this.#viewer(request.headers);
    if (tenant === undefined) return this.#unauthorized(request, wire, false);
    const upstreams = this.#upstreams.filter(
      (u) => (u.kind === "anthropic") === (wire === "anthropic"),
    );
    const lists = await Promise.all(
      upstreams.map(async (u) => (await u.models(request.signal)).filter((m) => u.serves(m))),
    );
    const models = [...new Set(lists.flat())].filter((m) => tenant.allows(m)).sort();
    const created = Math.floor(Date.now() / 1000);
    const entry = (model: string) =>
      wire === "anthropic"
        ? {
            type: "model",
            id: model,
            display_name: model,
            created_at: new Date(created * 1000).toISOString(),
          }
        : { id: model, object: "model", created, owned_by: "salvo-gateway" };
    if (id !== undefined) {
      if (!models.includes(id))
        return errorResponse(wire, {
          status: 404,
          code: "model_not_found",
          message: `The model \`${id}\` does not exist or you do not have access to it.`,
        });
      return Response.json(entry(id));
    }
    const data = models.map(entry);
    return Response.json(
      wire === "anthropic"
        ? { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
        : { object: "list", data },
    );
  }
}

/** The access record a batch request is counted with (batch requests are not access-logged). */
function batchAccessRecord(): AccessRecord {
  return {
    ts: "",
    id: "",
    tenant: undefined,
    upstream: undefined,
    method: "POST",
    path: "",
    model: undefined,
    status: 0,
    ms: 0,
    stream: false,
  };
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function readerFor(path: string, clientWantsUsage: boolean): StreamReader {
  if (path === "/messages") return new MessagesStreamReader();
  if (path === "/responses") return new ResponsesStreamReader();
  return new ChatStreamReader({ clientWantsUsage });
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : "ERROR";
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** Node's IncomingMessage, as far as reading a body needs it. */
type NodeReadable = AsyncIterable<Uint8Array> & {
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  once(event: string, listener: (error?: unknown) => void): unknown;
  pause(): unknown;
  readonly complete: boolean;
};

function isNodeReadable(value: unknown): value is NodeReadable {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { on?: unknown }).on === "function" &&
    "complete" in value
  );
}

/** What Node's adapter passes beside the Request: the request as Node received it. */
export type NodeEnv = { incoming?: AsyncIterable<Uint8Array> | undefined } | undefined;

/**
 * The body's text, refusing one longer than `max` bytes (413) before reading it all; from Node's
 * own request when there is one (no stream copy), else from the Request.
 */
async function readBody(
  request: Request,
  incoming: AsyncIterable<Uint8Array> | undefined,
  max: number,
): Promise<{ ok: true; text: string } | { ok: false; error: WireError }> {
  const tooLarge = (size: string): { ok: false; error: WireError } => ({
    ok: false,
    error: {
      status: 413,
      code: "request_too_large",
      message: `salvo gateway: the request body is ${size}; the most this gateway takes is ${max} bytes`,
    },
  });
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > max) return tooLarge(`${declared} bytes`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    if (isNodeReadable(incoming)) {
      // Node's own request, read with events (an async iterator costs more per call).
      const node = incoming;
      const over = await new Promise<boolean>((resolve, reject) => {
        node.on("data", (chunk: Uint8Array) => {
          size += chunk.byteLength;
          if (size <= max) chunks.push(chunk);
          else {
            node.pause();
            resolve(true);
          }
        });
        node.once("end", () => resolve(false));
        node.once("error", reject);
        node.once("close", () => {
          if (!node.complete) reject(new Error("the request body was cut off"));
        });
      });
      if (over) return tooLarge(`more than ${max} bytes`);
    } else {
      const source = incoming ?? request.body;
      if (source === null) return { ok: true, text: "" };
      for await (const chunk of source) {
        size += chunk.byteLength;
        if (size > max) return tooLarge(`more than ${max} bytes`);
        chunks.push(chunk);
      }
    }
  } catch (error) {
    throw new AbortedError("the client went away while sending the request", { cause: error });
  }
  return {
    ok: true,
    text:
      chunks.length === 1
        ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength).toString(
            "utf8",
          )
        : Buffer.concat(chunks).toString("utf8"),
  };
}

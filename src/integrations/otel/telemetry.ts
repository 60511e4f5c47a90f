// OpenTelemetry for a scheduler, built from its events and written through `@opentelemetry/api`
// only: with no SDK registered every span and instrument is a no-op. Per call, a span from
// submission to outcome, parented under the span active where the call was made; per attempt, a
// GenAI client span (`gen_ai.*` attributes of the semantic conventions) under it. Metrics: the
// GenAI client metrics (`gen_ai.client.operation.duration` per attempt,
// `gen_ai.client.token.usage` per answer) and the scheduler's own (queue depth, in flight, the
// limit in force, attempts, retries, 429s, cooldowns, calls by outcome, call duration).
//
// The request a call is for is not in the scheduler's events: the entry points (salvoFetch, the
// SDK wrappers, the AI SDK middleware) describe it with `withGenAiRequest` around the submission,
// and the `queued` event, emitted synchronously inside it, reads the description.

import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Attributes,
  type Context,
  type Counter,
  context,
  type Gauge,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import { responseAttributes } from "../../audit/call-record.ts";
import type { Counts, SchedulerEvents } from "../../core/events.ts";
import type { ItemId } from "../../core/outcome.ts";
import type { Scheduler } from "../../core/scheduler.ts";
import type { ProviderResult, TokenUsage } from "../../providers/provider.ts";
import { Salvo } from "../../salvo.ts";

/** The instrumentation scope name of every tracer and meter. */
export const INSTRUMENTATION_NAME = "salvo";

/** What an answer says, for its span and the token metric. */
export type ResponseDescription = {
  attributes: Attributes;
  usage: { inputTokens: number; outputTokens: number } | undefined;
};

/** A call as the entry point that submits it describes it. */
export type GenAiRequest = {
  /** `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `server.address`... */
  attributes: Attributes;
  /** Reads the answer (the task's value). @default reads a ProviderResult (body, usage) */
  describe?: ((value: unknown) => ResponseDescription) | undefined;
};

const described = new AsyncLocalStorage<GenAiRequest>();

/**
 * Runs `submit` with `request` as the description of the call(s) it submits to an instrumented
 * scheduler: their spans and metrics carry its attributes.
 */
export function withGenAiRequest<T>(request: GenAiRequest, submit: () => T): T {
  return described.run(request, submit);
}

/** The description of a ProviderResult (what `Salvo.call` resolves with). */
export function describeProviderResult(value: unknown): ResponseDescription {
  const result = value as Partial<ProviderResult> | undefined;
  if (
    result === undefined ||
    result === null ||
    typeof result !== "object" ||
    !("body" in result)
  ) {
    return { attributes: {}, usage: undefined };
  }
  const attributes = responseAttributes(result as ProviderResult) as Attributes;
  const usage = result.usage as TokenUsage | undefined;
  return {
    attributes,
    usage: usage ? { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens } : undefined,
  };
}

export type TelemetryOptions = {
  /** The tracer provider. @default the global one (`trace.setGlobalTracerProvider`) */
  tracerProvider?: TracerProvider | undefined;
  /** The meter provider. @default the global one (`metrics.setGlobalMeterProvider`) */
  meterProvider?: MeterProvider | undefined;
  /** Added to every span and metric point, e.g. `{"salvo.scheduler.name": "openai-main"}`. */
  attributes?: Attributes | undefined;
};

/** Bucket boundaries the GenAI semantic conventions advise. */
const DURATION_BUCKETS = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const TOKEN_BUCKETS = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];

type Instruments = {
  meter: Meter;
  operationDuration: Histogram;
  tokenUsage: Histogram;
  callDuration: Histogram;
  calls: Counter;
  attempts: Counter;
  retries: Counter;
  rateLimited: Counter;
  cooldowns: Counter;
  cooldownDuration: Histogram;
  queueSize: Gauge;
  inFlight: Gauge;
  limit: Gauge;
};

function createInstruments(meter: Meter): Instruments {
  return {
    meter,
    operationDuration: meter.createHistogram("gen_ai.client.operation.duration", {
      description: "GenAI operation duration (one model request: an attempt).",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    tokenUsage: meter.createHistogram("gen_ai.client.token.usage", {
      description: "Number of input and output tokens used.",
      unit: "{token}",
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    }),
    callDuration: meter.createHistogram("salvo.call.duration", {
      description: "From submission to outcome: queueing, cooldowns and retries included.",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    calls: meter.createCounter("salvo.scheduler.calls", {
      description: "Calls that ended, by outcome (salvo.outcome: succeeded | failed).",
      unit: "{call}",
    }),
    attempts: meter.createCounter("salvo.scheduler.attempts", {
      description: "Attempts started (each holds a slot).",
      unit: "{attempt}",
    }),
    retries: meter.createCounter("salvo.scheduler.retries", {
      description: "Retries scheduled.",
      unit: "{retry}",
    }),
    rateLimited: meter.createCounter("salvo.scheduler.rate_limited", {
      description: "Answers refused with 429 (rate limited).",
      unit: "{response}",
    }),
    cooldowns: meter.createCounter("salvo.scheduler.cooldowns", {
      description: "Times admission was paused for the whole key (a 429's shared cooldown).",
      unit: "{cooldown}",
    }),
    cooldownDuration: meter.createHistogram("salvo.scheduler.cooldown.duration", {
      description: "How long each cooldown paused admission.",
      unit: "s",
    }),
    queueSize: meter.createGauge("salvo.scheduler.queue.size", {
      description: "Items waiting for admission.",
      unit: "{item}",
    }),
    inFlight: meter.createGauge("salvo.scheduler.in_flight", {
      description: "Attempts holding a slot.",
      unit: "{attempt}",
    }),
    limit: meter.createGauge("salvo.scheduler.concurrency.limit", {
      description: "The concurrency limit in force (it moves under concurrency: auto).",
      unit: "{attempt}",
    }),
  };
}

type AttemptState = { span: Span; startedAt: number; attempt: number };

type CallState = {
  span: Span;
  context: Context;
  request: GenAiRequest | undefined;
  attempt: AttemptState | undefined;
};

/** The error's stable code (Salvo's), else its class name. */
function errorType(error: unknown): string {
  const e = error as { code?: unknown; name?: unknown } | undefined;
  if (typeof e?.code === "string") return e.code;
  if (typeof e?.name === "string") return e.name;
  return "_OTHER";
}

function errorAttributes(error: unknown): Attributes {
  const attributes: Attributes = { "error.type": errorType(error) };
  const status = (error as { status?: unknown } | undefined)?.status;
  if (typeof status === "number") attributes["http.response.status_code"] = status;
  return attributes;
}

// The attributes the GenAI metrics take from a call's own.
const METRIC_KEYS = [
  "gen_ai.operation.name",
  "gen_ai.provider.name",
  "gen_ai.request.model",
  "server.address",
  "server.port",
];

function spanName(attributes: Attributes): string {
  const operation = attributes["gen_ai.operation.name"] ?? "call";
  const model = attributes["gen_ai.request.model"];
  return model === undefined ? String(operation) : `${String(operation)} ${String(model)}`;
}

class SchedulerTelemetry {
  readonly #tracerProvider: TracerProvider | undefined;
  readonly #meterProvider: MeterProvider | undefined;
  readonly #attributes: Attributes;
  readonly #calls = new Map<ItemId, CallState[]>();
  #tracer: Tracer | undefined;
  #instruments: Instruments | undefined;
  #meterSource: MeterProvider | undefined;

  constructor(options: TelemetryOptions) {
    this.#tracerProvider = options.tracerProvider;
    this.#meterProvider = options.meterProvider;
    this.#attributes = options.attributes ?? {};
  }

  attach(scheduler: Scheduler): () => void {
    const on = <K extends keyof SchedulerEvents>(
      event: K,
      listener: (payload: SchedulerEvents[K]) => void,
    ) => scheduler.on(event, listener);
    const offs = [
      on("queued", (e) => this.#queued(e)),
      on("started", (e) => this.#started(e)),
      on("attempt-failed", (e) => this.#attemptFailed(e)),
      on("retry-scheduled", (e) => {
        this.#metrics().retries.add(1, this.#attributes);
        this.#gauges(e);
      }),
      on("rate-limited", (e) => {
        this.#metrics().rateLimited.add(1, this.#attributes);
        this.#find(e.id)?.attempt?.span.addEvent("salvo.rate_limited", {
          "salvo.retry_after_ms": e.retryAfterMs ?? -1,
        });
      }),
      on("cooldown", (e) => {
        const m = this.#metrics();
        m.cooldowns.add(1, this.#attributes);
        m.cooldownDuration.record(e.durationMs / 1000, this.#attributes);
        this.#gauges(e);
      }),
      on("succeeded", (e) => this.#ended(e, true, e.value, undefined)),
      on("failed", (e) => this.#ended(e, false, undefined, e.error)),
      on("limit-changed", (e) => this.#gauges(e)),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  #tracerOf(): Tracer {
    // The global provider is a proxy: a tracer taken before the SDK registers follows it.
    this.#tracer ??= (this.#tracerProvider ?? trace.getTracerProvider()).getTracer(
      INSTRUMENTATION_NAME,
    );
    return this.#tracer;
  }

  #metrics(): Instruments {
    // The global meter provider is not a proxy: instruments are remade when it changes.
    const source = this.#meterProvider ?? metrics.getMeterProvider();
    if (this.#instruments === undefined || this.#meterSource !== source) {
      this.#meterSource = source;
      this.#instruments = createInstruments(source.getMeter(INSTRUMENTATION_NAME));
    }
    return this.#instruments;
  }

  #gauges(e: Counts): void {
    const m = this.#metrics();
    m.queueSize.record(e.queued, this.#attributes);
    m.inFlight.record(e.inFlight, this.#attributes);
    m.limit.record(e.limit, this.#attributes);
  }

  #find(id: ItemId): CallState | undefined {
    return this.#calls.get(id)?.[0];
  }

  #queued(e: SchedulerEvents["queued"]): void {
    this.#gauges(e);
    if (e.attempt !== 1) return;
    // Emitted inside the submission, in the caller's async context: its active span is the parent.
    const request = described.getStore();
    const parent = context.active();
    const attributes: Attributes = {
      ...this.#attributes,
      ...request?.attributes,
      "salvo.item.id": String(e.id),
    };
    const span = this.#tracerOf().startSpan(
      `salvo ${spanName(attributes)}`,
      { kind: SpanKind.INTERNAL, attributes },
      parent,
    );
    const state: CallState = {
      span,
      context: trace.setSpan(parent, span),
      request,
      attempt: undefined,
    };
    const list = this.#calls.get(e.id);
    if (list) list.push(state);
    else this.#calls.set(e.id, [state]);
  }

  #started(e: SchedulerEvents["started"]): void {
    this.#metrics().attempts.add(1, this.#attributes);
    this.#gauges(e);
    const call = this.#find(e.id);
    if (call === undefined) return;
    const attributes: Attributes = {
      ...this.#attributes,
      ...call.request?.attributes,
      "salvo.item.id": String(e.id),
      "salvo.attempt": e.attempt,
      "salvo.queue.wait_ms": e.waitedMs,
    };
    const span = this.#tracerOf().startSpan(
      spanName(attributes),
      { kind: SpanKind.CLIENT, attributes },
      call.context,
    );
    call.attempt = { span, startedAt: performance.now(), attempt: e.attempt };
  }

  #metricAttributes(call: CallState | undefined, extra: Attributes): Attributes {
    const attributes: Attributes = { ...this.#attributes };
    const own = call?.request?.attributes ?? {};
    for (const key of METRIC_KEYS) if (own[key] !== undefined) attributes[key] = own[key];
    return Object.assign(attributes, extra);
  }

  #endAttempt(call: CallState, error: unknown, response: Attributes | undefined): void {
    const attempt = call.attempt;
    if (attempt === undefined) return;
    call.attempt = undefined;
    const seconds = (performance.now() - attempt.startedAt) / 1000;
    if (error !== undefined) {
      const attributes = errorAttributes(error);
      attempt.span.setAttributes(attributes);
      attempt.span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(error) });
      this.#metrics().operationDuration.record(seconds, this.#metricAttributes(call, attributes));
    } else {
      const extra: Attributes = {};
      if (response?.["gen_ai.response.model"] !== undefined) {
        extra["gen_ai.response.model"] = response["gen_ai.response.model"];
      }
      if (response) attempt.span.setAttributes(response);
      this.#metrics().operationDuration.record(seconds, this.#metricAttributes(call, extra));
    }
    attempt.span.end();
  }

  #attemptFailed(e: SchedulerEvents["attempt-failed"]): void {
    this.#gauges(e);
    const call = this.#find(e.id);
    if (call) this.#endAttempt(call, e.error ?? new Error("attempt failed"), undefined);
  }

  #ended(
    e: SchedulerEvents["succeeded"] | SchedulerEvents["failed"],
    ok: boolean,
    value: unknown,
    error: unknown,
  ): void {
    this.#gauges(e);
    const list = this.#calls.get(e.id);
    const call = list?.shift();
    if (list && list.length === 0) this.#calls.delete(e.id);
    const m = this.#metrics();
    const outcome: Attributes = ok
      ? { ...this.#attributes, "salvo.outcome": "succeeded" }
      : { ...this.#attributes, "salvo.outcome": "failed", "error.type": errorType(error) };
    m.calls.add(1, outcome);
    m.callDuration.record(e.latencyMs / 1000, this.#metricAttributes(call, ok ? {} : outcome));
    if (call === undefined) return;
    if (ok) {
      const description = (call.request?.describe ?? describeProviderResult)(value);
      this.#endAttempt(call, undefined, description.attributes);
      call.span.setAttributes({ ...description.attributes, "salvo.attempts": e.attempts });
      if (description.usage) {
        const base = this.#metricAttributes(call, {
          ...(description.attributes["gen_ai.response.model"] !== undefined
            ? { "gen_ai.response.model": description.attributes["gen_ai.response.model"] }
            : {}),
        });
        m.tokenUsage.record(description.usage.inputTokens, {
          ...base,
          "gen_ai.token.type": "input",
        });
        m.tokenUsage.record(description.usage.outputTokens, {
          ...base,
          "gen_ai.token.type": "output",
        });
      }
    } else {
      this.#endAttempt(call, error, undefined);
      call.span.setAttributes({ ...errorAttributes(error), "salvo.attempts": e.attempts });
      call.span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(error) });
    }
    call.span.end();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const instrumented = new WeakMap<Scheduler, () => void>();

/**
 * Emits OpenTelemetry spans and metrics for every call `target`'s scheduler runs (see the module
 * comment). Once per scheduler: later calls return the first's `stop`. Returns a function that
 * stops it.
 */
export function instrument(target: Salvo | Scheduler, options: TelemetryOptions = {}): () => void {
  const scheduler = target instanceof Salvo ? target.scheduler : target;
  const existing = instrumented.get(scheduler);
  if (existing) return existing;
  const off = new SchedulerTelemetry(options).attach(scheduler);
  const stop = () => {
    off();
    instrumented.delete(scheduler);
  };
  instrumented.set(scheduler, stop);
  return stop;
}

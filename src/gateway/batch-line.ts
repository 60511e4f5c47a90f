// One request of a gateway batch, run as the gateway runs a call (its tenant's models, rate limits
// and budget, the upstream's Salvo client and scheduler, the audit context), with two differences
// a batch wants: it is admitted behind the tenant's interactive calls (one priority lower, in a
// scope of its own), and it waits for the tenant's rate limits rather than being refused with a
// 429 (a batch is patient). The answer, or the error it ended with in the wire's shape, is the
// request's result; a request stopped by the gateway's shutdown is not a result.
import { withContext } from "../audit/audit-context.ts";
import type { CallOutcome } from "../cache/call-layer.ts";
import { type Clock, sleepOn } from "../core/clock.ts";
import { AbortedError, SchedulerClosedError } from "../errors.ts";
import type { ProviderRequest } from "../providers/provider.ts";
import type { BatchLine, LineOutcome } from "./batch-runner.ts";
import type { StoredBatch } from "./batch-store.ts";
import type { Tenant } from "./tenant.ts";
import { isRefusal } from "./tenant-limiter.ts";
import type { Upstream } from "./upstream.ts";
import { errorBody, failureError, type WireError } from "./wire-errors.ts";

export type BatchLineContext = {
  tenants: () => readonly Tenant[];
  upstreams: readonly Upstream[];
  clock: Clock;
  /** Upstream keys: never in an answer. */
  secrets: readonly string[];
  /** Counts a call as active until the returned function is called (graceful shutdown waits). */
  begin: () => () => void;
  nextId: () => string;
  /** Counts a settled call in the gateway's figures (dashboard, /metrics). */
  account: (
    upstream: Upstream,
    tenant: Tenant,
    outcome: CallOutcome,
    status: number,
    submittedAt: number,
  ) => void;
};

/** Runs one batch request through the gateway; never rejects. */
export async function runBatchLine(
  context: BatchLineContext,
  batch: StoredBatch,
  line: BatchLine,
  signal: AbortSignal,
): Promise<LineOutcome> {
  const wire = batch.provider;
  const refused = (error: WireError): LineOutcome => ({
    kind: "answered",
    status: wire === "anthropic" ? (error.anthropicStatus ?? error.status) : error.status,
    body: JSON.parse(errorBody(wire, error)),
    requestId: undefined,
  });
  const tenant = context.tenants().find((t) => t.name === batch.tenant);
  if (tenant === undefined)
    return refused({
      status: 401,
      code: "invalid_api_key",
      message: `salvo gateway: tenant ${batch.tenant}, whose batch this is, is no longer configured`,
    });
  let body = line.body;
  const model = body.model;
  if (typeof model !== "string" || model === "")
    return refused({
      status: 400,
      param: "model",
      code: "missing_required_parameter",
      message: "you must provide a model parameter",
    });
  const upstream = context.upstreams.find(
    (u) => (u.kind === "anthropic") === (wire === "anthropic") && u.serves(model),
  );
  if (upstream === undefined)
    return refused({
      status: 404,
      code: "model_not_found",
      param: "model",
      message: `The model \`${model}\` does not exist or you do not have access to it (no upstream of this gateway serves it).`,
    });
  if (!tenant.allows(model))
    return refused({
      status: 403,
      code: "model_not_allowed",
      param: "model",
      message: `salvo gateway: tenant ${tenant.name} may not use the model \`${model}\``,
    });
  if (body.stream === true)
    return refused({
      status: 400,
      param: "stream",
      message: "Streaming is not supported in a batch: remove `stream` from the request.",
    });
  // Anthropic refuses metadata keys other than user_id, as on the gateway's call path.
  if (wire === "anthropic" && isObject(body.metadata)) {
    const { user_id } = body.metadata as Record<string, unknown>;
    const { metadata: _, ...rest } = body;
    body = user_id === undefined ? rest : { ...rest, metadata: { user_id } };
  }
  const path = wire === "anthropic" ? "/messages" : batch.endpoint.replace(/^\/v1/, "");
  const request: ProviderRequest = { path, body };
  let tokens: number;
  try {
    const estimate = upstream.provider.estimate(request);
    tokens = estimate.inputTokens + estimate.outputTokens;
  } catch {
    return refused({
      status: 400,
      message:
        "The request body is not a valid request for this endpoint (it could not be read for its tokens).",
    });
  }
  // A batch waits for its tenant's rate limits; only a request larger than a whole limit is refused.
  const hold = tenant.limiter.reserve(tokens, Number.POSITIVE_INFINITY);
  if (isRefusal(hold))
    return refused({
      status: 429,
      type: hold.dimension,
      code: "rate_limit_exceeded",
      message: `salvo gateway: the request needs ${tokens} tokens, more than tenant ${tenant.name}'s limit of ${hold.limitPerMinute} tokens per minute`,
    });
  if (hold.waitMs > 0 && !(await sleepOn(context.clock, hold.waitMs, signal))) {
    hold.cancel();
    return { kind: "stopped" };
  }
  const priority = tenant.priority - 1;
  const scope = upstream.scopeFor(`${tenant.name} (batches)`, priority, tenant.maxConcurrency);
  const id = context.nextId();
  const end = context.begin();
  const submittedAt = context.clock.now();
  const settle = (req: ProviderRequest, ctx: { signal: AbortSignal | undefined }) =>
    upstream.shared.settle(req, { id, priority, signal: ctx.signal, scope });
  let outcome: CallOutcome;
  try {
    const layer = tenant.budgetLayer;
    outcome = await withContext(
      {
        tenant: tenant.name,
        gateway_request_id: id,
        gateway_batch_id: batch.id,
        custom_id: line.customId,
      },
      () =>
        layer
          ? layer(request, { id, index: 0, signal, submittedAt }, settle)
          : settle(request, { signal }),
    );
  } finally {
    end();
  }
  if (
    !outcome.ok &&
    (signal.aborted ||
      outcome.error instanceof AbortedError ||
      outcome.error instanceof SchedulerClosedError)
  ) {
    hold.cancel();
    return { kind: "stopped" };
  }
  const failure = outcome.ok ? undefined : failureError(wire, outcome.error, context.secrets);
  const status = outcome.ok ? outcome.value.status : failure!.status;
  context.account(upstream, tenant, outcome, status, submittedAt);
  hold.settle(
    outcome.ok && outcome.value.usage
      ? outcome.value.usage.inputTokens + outcome.value.usage.outputTokens
      : outcome.ok
        ? undefined
        : 0,
  );
  if (outcome.ok)
    return {
      kind: "answered",
      status: outcome.value.status,
      body: outcome.value.body,
      requestId: outcome.value.requestId,
    };
  let errorBodyValue: unknown;
  try {
    errorBodyValue = JSON.parse(failure!.body);
  } catch {
    errorBodyValue = { error: { message: failure!.body } };
  }
  return { kind: "answered", status, body: errorBodyValue, requestId: undefined };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

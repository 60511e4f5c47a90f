// The simulator's Anthropic Message Batches API: `POST /v1/messages/batches`, retrieve, list,
// cancel, delete and `results` (JSONL), with the real life cycle (`in_progress`, `canceling`,
// `ended`), `request_counts` that stay at `processing` until the batch ends, and results in the
// real shapes: {"custom_id":..,"result":{"type":"succeeded","message":{..}}}, `errored` with the
// API's error response, `expired`, `canceled`.

import type { IncomingMessage, ServerResponse } from "node:http";
import { anthropicWire } from "./anthropic-wire.ts";
import { judgeRequest } from "./batch-answers.ts";
import { type BatchContext, endBatch } from "./batch-context.ts";
import {
  limitParam,
  randomId,
  readBody,
  sendAnthropicError,
  sendBytes,
  sendJson,
} from "./batch-http.ts";
import { type SimBatch, wallAt } from "./batch-store.ts";
import { BatchTimeline } from "./batch-timeline.ts";
import { hashUniform } from "./seeded-random.ts";

const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;

/** `POST /v1/messages/batches`: the requests are checked now; each one's params when it ends. */
export async function createAnthropicBatch(
  context: BatchContext,
  req: IncomingMessage,
  res: ServerResponse,
  owner: string,
): Promise<void> {
  const limits = context.config.batch.limits.anthropic;
  const raw = await readBody(req, limits.maxBytes);
  if (raw === undefined) {
    sendAnthropicError(
      res,
      413,
      "request_too_large",
      `Request exceeds the maximum allowed number of bytes for a Message Batch (${limits.maxBytes}).`,
    );
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch {
    sendAnthropicError(res, 400, "invalid_request_error", "The request body is not valid JSON.");
    return;
  }
  const requests = (body as { requests?: unknown } | null)?.requests;
  if (!Array.isArray(requests)) {
    sendAnthropicError(res, 400, "invalid_request_error", "requests: Field required");
    return;
  }
  if (requests.length === 0) {
    sendAnthropicError(
      res,
      400,
      "invalid_request_error",
      "requests: List should have at least 1 item after validation, not 0",
    );
    return;
  }
  if (requests.length > limits.maxRequests) {
    sendAnthropicError(
      res,
      400,
      "invalid_request_error",
      `requests: List should have at most ${limits.maxRequests} items after validation, not ${requests.length}`,
    );
    return;
  }
  const seen = new Set<string>();
  const salt = context.nextSalt();
  const { pError } = context.config.batch;
  const entries: SimBatch["requests"] = [];
  for (let i = 0; i < requests.length; i++) {
    const item = requests[i] as { custom_id?: unknown; params?: unknown } | null;
    const customId = item?.custom_id;
    if (typeof customId !== "string" || !CUSTOM_ID.test(customId)) {
      sendAnthropicError(
        res,
        400,
        "invalid_request_error",
        `requests.${i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`,
      );
      return;
    }
    if (seen.has(customId)) {
      sendAnthropicError(
        res,
        400,
        "invalid_request_error",
        `requests.${i}.custom_id: Duplicate custom_id "${customId}": each request in a Message Batch needs a unique custom_id.`,
      );
      return;
    }
    seen.add(customId);
    if (typeof item?.params !== "object" || item.params === null || Array.isArray(item.params)) {
      sendAnthropicError(res, 400, "invalid_request_error", `requests.${i}.params: Field required`);
      return;
    }
    const fail = pError > 0 && hashUniform(context.config.seed ^ salt ^ 0x2545f491, i) < pError;
    entries.push({
      customId,
      judged: judgeRequest(anthropicWire, item.params, context.config, fail),
    });
  }
  const batch: SimBatch = {
    provider: "anthropic",
    id: `msgbatch_${randomId(24)}`,
    owner,
    createdWallMs: context.wallNow(),
    timeline: new BatchTimeline(context.config.batch, {
      createdMs: context.now(),
      requests: entries.length,
      salt,
      seed: context.config.seed,
    }),
    requests: entries,
    wire: anthropicWire,
  };
  context.batches.set(batch.id, batch);
  context.stats.submitted.anthropic += 1;
  context.stats.requests += entries.length;
  sendJson(res, 200, anthropicBatchObject(context, batch));
}

/** Writes the results of a batch that has ended (once). */
export function settleAnthropicBatch(context: BatchContext, batch: SimBatch, t: number): void {
  if (batch.ended !== undefined) return;
  const phase = batch.timeline.phaseAt(t);
  if (phase.phase !== "ended") return;
  const lines: string[] = [];
  const counts = endBatch(context, batch, phase.outcome, batch.timeline.cutoffAt(t), (i, r) => {
    const custom_id = batch.requests[i]!.customId;
    const result =
      r.kind === "answered"
        ? r.status < 300
          ? { type: "succeeded", message: r.body }
          : { type: "errored", error: r.body }
        : { type: r.kind === "expired" ? "expired" : "canceled" };
    lines.push(JSON.stringify({ custom_id, result }));
  });
  const { usage, ...rest } = counts;
  batch.ended = {
    outputFileId: null,
    errorFileId: null,
    results: Buffer.from(lines.length === 0 ? "" : `${lines.join("\n")}\n`),
    counts: rest,
    usage,
  };
}

/** The MessageBatch object at the simulator's current time. */
export function anthropicBatchObject(context: BatchContext, batch: SimBatch) {
  const t = context.now();
  settleAnthropicBatch(context, batch, t);
  const { timeline } = batch;
  const phase = timeline.phaseAt(t);
  const iso = (ms: number | undefined) =>
    ms === undefined ? null : new Date(wallAt(batch, ms)).toISOString();
  const ended = phase.phase === "ended";
  const counts = batch.ended?.counts;
  return {
    id: batch.id,
    type: "message_batch",
    processing_status: ended ? "ended" : phase.phase === "cancelling" ? "canceling" : "in_progress",
    request_counts: {
      processing: ended ? 0 : batch.requests.length,
      succeeded: counts?.succeeded ?? 0,
      errored: counts?.errored ?? 0,
      canceled: counts?.cancelled ?? 0,
      expired: counts?.expired ?? 0,
    },
    ended_at: ended ? iso(phase.at) : null,
    created_at: new Date(batch.createdWallMs).toISOString(),
    expires_at: iso(timeline.expiresMs),
    archived_at: null,
    cancel_initiated_at: iso(timeline.cancelMs),
    results_url: ended ? `${context.origin()}/v1/messages/batches/${batch.id}/results` : null,
  };
}

function find(
  context: BatchContext,
  res: ServerResponse,
  id: string,
  owner: string,
): SimBatch | undefined {
  const batch = context.batches.get(id);
  if (batch === undefined || batch.provider !== "anthropic" || batch.owner !== owner) {
    sendAnthropicError(res, 404, "not_found_error", `Message Batch ${id} not found.`);
    return undefined;
  }
  return batch;
}

/** `GET`, `DELETE /v1/messages/batches/{id}`, `POST .../cancel`, `GET .../results`. */
export function anthropicBatchAction(
  context: BatchContext,
  res: ServerResponse,
  method: string,
  id: string,
  action: "" | "cancel" | "results",
  owner: string,
): void {
  const batch = find(context, res, id, owner);
  if (batch === undefined) return;
  const t = context.now();
  if (action === "cancel") {
    if (batch.timeline.phaseAt(t).phase !== "cancelling") {
      const refused = batch.timeline.cancel(t);
      if (refused !== undefined) {
        sendAnthropicError(
          res,
          400,
          "invalid_request_error",
          `Message Batch ${id} has already ended and cannot be canceled.`,
        );
        return;
      }
      context.stats.cancels += 1;
    }
    sendJson(res, 200, anthropicBatchObject(context, batch));
    return;
  }
  settleAnthropicBatch(context, batch, t);
  if (action === "results") {
    if (batch.ended?.results == null) {
      sendAnthropicError(
        res,
        400,
        "invalid_request_error",
        `Message Batch ${id} has not ended yet: its results are available once processing_status is "ended".`,
      );
      return;
    }
    sendBytes(res, "application/binary", batch.ended.results);
    return;
  }
  if (method === "DELETE") {
    if (batch.ended === undefined) {
      sendAnthropicError(
        res,
        400,
        "invalid_request_error",
        `Message Batch ${id} is still processing: cancel it first, then delete it once it has ended.`,
      );
      return;
    }
    context.batches.delete(id);
    sendJson(res, 200, { id, type: "message_batch_deleted" });
    return;
  }
  sendJson(res, 200, anthropicBatchObject(context, batch));
}

/** `GET /v1/messages/batches?limit=&after_id=&before_id=`: newest first. */
export function listAnthropicBatches(
  context: BatchContext,
  res: ServerResponse,
  query: URLSearchParams,
  owner: string,
): void {
  const limit = limitParam(query.get("limit"), 20, 1000);
  const all = [...context.batches.values()]
    .filter((b) => b.provider === "anthropic" && b.owner === owner)
    .reverse();
  let start = 0;
  let end = all.length;
  const after = query.get("after_id");
  const before = query.get("before_id");
  if (after !== null) start = all.findIndex((b) => b.id === after) + 1 || all.length;
  if (before !== null)
    end = Math.max(
      0,
      all.findIndex((b) => b.id === before),
    );
  let page = all.slice(start, end);
  const hasMore = page.length > limit;
  page = before !== null && after === null ? page.slice(-limit) : page.slice(0, limit);
  sendJson(res, 200, {
    data: page.map((b) => anthropicBatchObject(context, b)),
    has_more: hasMore,
    first_id: page[0]?.id ?? null,
    last_id: page.at(-1)?.id ?? null,
  });
}

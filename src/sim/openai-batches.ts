// The simulator's OpenAI Batch API: `POST /v1/batches` from an uploaded file, retrieve, list and
// cancel, with the real life cycle (validating, in_progress, finalizing, completed, failed,
// cancelling, cancelled, expired), `request_counts` that move as requests finish, validation
// errors in `errors.data`, and output and error files in the real shapes:
//   output: {"id":"batch_req_..","custom_id":..,"response":{"status_code":200,"request_id":..,"body":{..}},"error":null}
//   error:  the same with a non-2xx `response`, or `response: null` and
//           `error: {code: "batch_expired" | "batch_cancelled", message}` for requests never run.

import type { IncomingMessage, ServerResponse } from "node:http";
import { checkOpenAIBatchLine } from "../providers/openai-batch-line.ts";
import { judgeRequest } from "./batch-answers.ts";
import { type BatchContext, endBatch, hexId, type RequestResult } from "./batch-context.ts";
import { limitParam, readBody, sendJson, sendOpenAIError, unixSeconds } from "./batch-http.ts";
import { type SimBatch, wallAt } from "./batch-store.ts";
import { BatchTimeline } from "./batch-timeline.ts";
import { openaiEmbeddingsWire } from "./openai-embeddings-wire.ts";
import { openaiResponsesWire } from "./openai-responses-wire.ts";
import { openaiWire } from "./openai-wire.ts";
import { hashUniform } from "./seeded-random.ts";
import type { Wire } from "./wire.ts";

/** The endpoints a simulated batch may target (the ones the simulator answers in real time). */
export const OPENAI_BATCH_ENDPOINTS: ReadonlyMap<string, Wire> = new Map([
  ["/v1/chat/completions", openaiWire],
  ["/v1/responses", openaiResponsesWire],
  ["/v1/embeddings", openaiEmbeddingsWire],
]);

/** The endpoints the real API lists (the others are refused with a clear message). */
const REAL_ENDPOINTS = [
  "/v1/responses",
  "/v1/chat/completions",
  "/v1/embeddings",
  "/v1/completions",
  "/v1/moderations",
];

const EXPIRED_MESSAGE = "This request could not be executed before the completion window expired.";
const CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled.";
const CREATE_BODY_LIMIT = 1024 * 1024;

type BatchError = NonNullable<SimBatch["openai"]>["errors"][number];

/** Most validation errors a failed batch lists. */
const MAX_ERRORS = 100;

/** Reads the input file's lines into requests and validation errors. */
function validateInput(
  context: BatchContext,
  content: Buffer,
  endpoint: string,
  salt: number,
  wire: Wire,
): { requests: SimBatch["requests"]; errors: BatchError[]; model: string | null } {
  const limits = context.config.batch.limits.openai;
  const errors: BatchError[] = [];
  const fail = (error: BatchError) => {
    if (errors.length < MAX_ERRORS) errors.push(error);
  };
  const requests: SimBatch["requests"] = [];
  let model: string | null = null;
  if (content.length > limits.maxBytes)
    fail({
      code: "file_too_large",
      message: `The batch input file is ${content.length} bytes; the limit is ${limits.maxBytes} bytes.`,
      param: null,
      line: null,
    });
  const text = content.toString("utf8");
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  if (text.trim() === "") {
    fail({
      code: "empty_file",
      message: "The batch input file is empty.",
      param: null,
      line: null,
    });
    return { requests, errors, model };
  }
  const seen = new Set<string>();
  const { pError } = context.config.batch;
  lines.forEach((raw, i) => {
    const line = i + 1;
    const checked = checkOpenAIBatchLine(raw, line, endpoint, seen);
    if (!checked.ok) {
      fail(checked.error);
      return;
    }
    const { customId, body } = checked;
    const lineModel = (body as { model?: unknown }).model;
    if (typeof lineModel === "string") {
      if (model === null) model = lineModel;
      else if (lineModel !== model) {
        fail({
          code: "model_mismatch",
          message: `The model ${JSON.stringify(lineModel)} does not match the model of the other requests in the file (${JSON.stringify(model)}): a batch uses one model.`,
          param: "body.model",
          line,
        });
        return;
      }
    }
    const failDraw = pError > 0 && hashUniform(context.config.seed ^ salt ^ 0x2545f491, i) < pError;
    requests.push({ customId, judged: judgeRequest(wire, body, context.config, failDraw) });
  });
  if (requests.length > limits.maxRequests)
    fail({
      code: "too_many_tasks",
      message: `The batch input file contains ${requests.length} requests; the limit is ${limits.maxRequests}.`,
      param: null,
      line: null,
    });
  return { requests, errors, model };
}

/** `POST /v1/batches`. */
export async function createOpenAIBatch(
  context: BatchContext,
  req: IncomingMessage,
  res: ServerResponse,
  owner: string,
): Promise<void> {
  const raw = await readBody(req, CREATE_BODY_LIMIT);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw?.toString("utf8") ?? "");
  } catch {
    sendOpenAIError(res, 400, "We could not parse the JSON body of your request.");
    return;
  }
  if (typeof body !== "object" || body === null) {
    sendOpenAIError(res, 400, "The request body must be a JSON object.");
    return;
  }
  const { input_file_id: fileId, endpoint, completion_window: window, metadata } = body;
  for (const [name, value] of [
    ["input_file_id", fileId],
    ["endpoint", endpoint],
    ["completion_window", window],
  ] as const)
    if (value === undefined || value === null) {
      sendOpenAIError(
        res,
        400,
        `Missing required parameter: '${name}'.`,
        name,
        "missing_required_parameter",
      );
      return;
    }
  if (typeof endpoint !== "string" || !REAL_ENDPOINTS.includes(endpoint)) {
    sendOpenAIError(
      res,
      400,
      `Invalid value for 'endpoint': ${JSON.stringify(endpoint)}. Supported values are: ${REAL_ENDPOINTS.map((e) => `'${e}'`).join(", ")}.`,
      "endpoint",
      "invalid_value",
    );
    return;
  }
  const wire = OPENAI_BATCH_ENDPOINTS.get(endpoint);
  if (wire === undefined) {
    sendOpenAIError(
      res,
      400,
      `The simulator does not answer ${endpoint}; its batches run ${[...OPENAI_BATCH_ENDPOINTS.keys()].join(", ")}.`,
      "endpoint",
      "invalid_value",
    );
    return;
  }
  if (window !== "24h") {
    sendOpenAIError(
      res,
      400,
      `Invalid value for 'completion_window': ${JSON.stringify(window)}. Supported values are: '24h'.`,
      "completion_window",
      "invalid_value",
    );
    return;
  }
  if (metadata !== undefined && metadata !== null && !validMetadata(metadata)) {
    sendOpenAIError(
      res,
      400,
      "Invalid 'metadata': at most 16 pairs, keys of at most 64 characters, string values of at most 512.",
      "metadata",
      "invalid_value",
    );
    return;
  }
  const file = typeof fileId === "string" ? context.files.get(fileId, owner) : undefined;
  if (file === undefined) {
    sendOpenAIError(res, 404, `No such File object: ${String(fileId)}`, "input_file_id");
    return;
  }
  if (file.purpose !== "batch") {
    sendOpenAIError(
      res,
      400,
      `The input file ${file.id} has purpose '${file.purpose}'; a batch needs a file uploaded with purpose 'batch'.`,
      "input_file_id",
      "invalid_value",
    );
    return;
  }
  const salt = context.nextSalt();
  const { requests, errors, model } = validateInput(context, file.content, endpoint, salt, wire);
  const createdMs = context.now();
  const batch: SimBatch = {
    provider: "openai",
    id: `batch_${hexId(16)}`,
    owner,
    createdWallMs: context.wallNow(),
    timeline: new BatchTimeline(context.config.batch, {
      createdMs,
      requests: requests.length,
      salt,
      seed: context.config.seed,
      invalid: errors.length > 0,
    }),
    requests,
    wire,
    openai: {
      endpoint,
      inputFileId: file.id,
      metadata: (metadata as Record<string, string> | null | undefined) ?? null,
      model,
      errors,
    },
  };
  context.batches.set(batch.id, batch);
  context.stats.submitted.openai += 1;
  context.stats.requests += requests.length;
  sendJson(res, 200, openaiBatchObject(context, batch));
}

function validMetadata(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return (
    entries.length <= 16 &&
    entries.every(([k, v]) => k.length <= 64 && typeof v === "string" && v.length <= 512)
  );
}

/** Writes the output and error files of a batch that has ended (once). */
export function settleOpenAIBatch(context: BatchContext, batch: SimBatch, t: number): void {
  if (batch.ended !== undefined) return;
  const phase = batch.timeline.phaseAt(t);
  if (phase.phase !== "ended") return;
  const output: string[] = [];
  const errors: string[] = [];
  const counts = endBatch(
    context,
    batch,
    phase.outcome,
    batch.timeline.cutoffAt(t),
    (i, result) => {
      const line = outputLine(batch.requests[i]!.customId, result);
      (result.kind === "answered" && result.status < 300 ? output : errors).push(line);
    },
  );
  const file = (lines: string[], kind: string) =>
    lines.length === 0
      ? null
      : context.files.add(
          batch.owner,
          `${batch.id}_${kind}.jsonl`,
          "batch_output",
          Buffer.from(`${lines.join("\n")}\n`),
        ).id;
  const { usage, ...rest } = counts;
  batch.ended = {
    outputFileId: file(output, "output"),
    errorFileId: file(errors, "error"),
    results: null,
    counts: rest,
    usage,
  };
}

function outputLine(customId: string, result: RequestResult): string {
  const id = `batch_req_${hexId(16)}`;
  if (result.kind === "answered")
    return JSON.stringify({
      id,
      custom_id: customId,
      response: { status_code: result.status, request_id: result.requestId, body: result.body },
      error: null,
    });
  const error =
    result.kind === "expired"
      ? { code: "batch_expired", message: EXPIRED_MESSAGE }
      : { code: "batch_cancelled", message: CANCELLED_MESSAGE };
  return JSON.stringify({ id, custom_id: customId, response: null, error });
}

/** The Batch object as the API answers it at the simulator's current time. */
export function openaiBatchObject(context: BatchContext, batch: SimBatch) {
  const t = context.now();
  settleOpenAIBatch(context, batch, t);
  const o = batch.openai!;
  const { timeline } = batch;
  const phase = timeline.phaseAt(t);
  const at = (ms: number | undefined) => (ms === undefined ? null : unixSeconds(wallAt(batch, ms)));
  const ended = phase.phase === "ended" ? phase : undefined;
  const status =
    ended === undefined ? phase.phase : ended.outcome === "completed" ? "completed" : ended.outcome;
  const validated = phase.phase !== "validating" && ended?.outcome !== "failed";
  // request_counts move as requests finish; a request never run counts as failed at the end.
  let completed = 0;
  let failed = 0;
  const usage = { prompt: 0, output: 0 };
  if (validated) {
    const cutoff = timeline.cutoffAt(t);
    batch.requests.forEach((request, i) => {
      if (timeline.doneMs(i) > cutoff) return;
      if (request.judged.ok) {
        completed += 1;
        usage.prompt += request.judged.promptTokens;
        usage.output += request.judged.outputTokens;
      } else failed += 1;
    });
    if (ended !== undefined) failed = batch.requests.length - completed;
  }
  const finalizing = phase.phase === "finalizing" || ended?.outcome === "completed";
  return {
    id: batch.id,
    object: "batch",
    endpoint: o.endpoint,
    model: validated ? o.model : null,
    errors:
      o.errors.length > 0 && ended?.outcome === "failed"
        ? { object: "list", data: o.errors }
        : null,
    input_file_id: o.inputFileId,
    completion_window: "24h",
    status,
    output_file_id: batch.ended?.outputFileId ?? null,
    error_file_id: batch.ended?.errorFileId ?? null,
    created_at: unixSeconds(batch.createdWallMs),
    in_progress_at: validated ? at(timeline.startMs) : null,
    expires_at: at(timeline.expiresMs),
    finalizing_at: finalizing ? at(timeline.lastMs) : null,
    completed_at: ended?.outcome === "completed" ? at(ended.at) : null,
    failed_at: ended?.outcome === "failed" ? at(ended.at) : null,
    expired_at: ended?.outcome === "expired" ? at(ended.at) : null,
    cancelling_at: at(timeline.cancelMs),
    cancelled_at: ended?.outcome === "cancelled" ? at(ended.at) : null,
    request_counts: { total: validated ? batch.requests.length : 0, completed, failed },
    metadata: o.metadata,
    usage: {
      input_tokens: usage.prompt,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.prompt + usage.output,
    },
  };
}

/** The batch if it is an OpenAI batch `owner` may see, else answers 404. */
function find(
  context: BatchContext,
  res: ServerResponse,
  id: string,
  owner: string,
): SimBatch | undefined {
  const batch = context.batches.get(id);
  if (batch === undefined || batch.provider !== "openai" || batch.owner !== owner) {
    sendOpenAIError(res, 404, `No batch found with id '${id}'.`, "batch_id");
    return undefined;
  }
  return batch;
}

/** `GET /v1/batches/{id}`. */
export function retrieveOpenAIBatch(
  context: BatchContext,
  res: ServerResponse,
  id: string,
  owner: string,
): void {
  const batch = find(context, res, id, owner);
  if (batch) sendJson(res, 200, openaiBatchObject(context, batch));
}

/** `POST /v1/batches/{id}/cancel`: validating or in progress -> cancelling -> cancelled. */
export function cancelOpenAIBatch(
  context: BatchContext,
  res: ServerResponse,
  id: string,
  owner: string,
): void {
  const batch = find(context, res, id, owner);
  if (batch === undefined) return;
  const t = context.now();
  const current = batch.timeline.phaseAt(t);
  if (current.phase !== "cancelling") {
    const refused = batch.timeline.cancel(t);
    if (refused !== undefined) {
      const status = refused.phase === "ended" ? refused.outcome : refused.phase;
      sendOpenAIError(
        res,
        400,
        `Cannot cancel a batch with status '${status}'.`,
        null,
        "invalid_state",
      );
      return;
    }
    context.stats.cancels += 1;
  }
  sendJson(res, 200, openaiBatchObject(context, batch));
}

/** `GET /v1/batches?after=&limit=`: newest first. */
export function listOpenAIBatches(
  context: BatchContext,
  res: ServerResponse,
  query: URLSearchParams,
  owner: string,
): void {
  const limit = limitParam(query.get("limit"), 20, 100);
  let batches = [...context.batches.values()]
    .filter((b) => b.provider === "openai" && b.owner === owner)
    .reverse();
  const after = query.get("after");
  if (after !== null) {
    const at = batches.findIndex((b) => b.id === after);
    batches = at < 0 ? [] : batches.slice(at + 1);
  }
  const page = batches.slice(0, limit);
  sendJson(res, 200, {
    object: "list",
    data: page.map((b) => openaiBatchObject(context, b)),
    first_id: page[0]?.id ?? null,
    last_id: page.at(-1)?.id ?? null,
    has_more: batches.length > page.length,
  });
}

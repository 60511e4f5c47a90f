// The gateway's batch APIs, as the official SDKs call them: OpenAI Files (`/v1/files`) and Batch
// (`/v1/batches`), Anthropic Message Batches (`/v1/messages/batches`), with the providers' shapes,
// life cycles and limits. A batch runs through the gateway's schedulers (batch-runner.ts), so it
// is done in minutes, not a day; its state lives in the state directory (batch-store.ts). Every
// file and batch belongs to the tenant whose key made it: another tenant gets a 404.
import type { Hono } from "hono";
import { checkOpenAIBatchLine } from "../providers/openai-batch-line.ts";
import type { BatchRunner } from "./batch-runner.ts";
import type { BatchStore, StoredBatch, StoredFile } from "./batch-store.ts";
import { errorResponse, type Wire, type WireError } from "./wire-errors.ts";

export type BatchApiContext = {
  /** The state directory, once open; undefined: the gateway has none (no batch APIs). */
  store: () => Promise<BatchStore | undefined>;
  runner: () => BatchRunner | undefined;
  /** The tenant a request's key names. */
  tenantOf: (headers: Headers) => { name: string } | undefined;
  /** The 401 for a request without a key of this gateway. */
  unauthorized: (request: Request, wire: Wire) => Response;
};

/** OpenAI: 50,000 requests and 200 MB per batch input file (the gateway keeps the same limits). */
const OPENAI_LIMITS = { maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 };
/** Anthropic: 100,000 requests and 256 MB per Message Batch. */
const ANTHROPIC_LIMITS = { maxRequests: 100_000, maxBytes: 256 * 1024 * 1024 };
/** The endpoints a batch may run: those the gateway answers. */
const OPENAI_ENDPOINTS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
];
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
const DAY_MS = 24 * 60 * 60 * 1000;
const FILE_TTL_S = 30 * 24 * 60 * 60;

const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function fileObject(file: StoredFile) {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: seconds(file.createdAt),
    expires_at: seconds(file.createdAt)! + FILE_TTL_S,
    filename: file.filename,
    purpose: file.purpose,
    status: "processed",
    status_details: null,
  };
}

function openaiBatch(
  batch: StoredBatch,
  progress: { succeeded: number; errored: number } | undefined,
) {
  const ended = batch.endedAt;
  const when = (status: string) => (batch.status === status ? seconds(ended) : null);
  const counts = batch.counts
    ? {
        total: batch.total,
        completed: batch.counts.succeeded,
        failed: batch.total - batch.counts.succeeded,
      }
    : {
        total: batch.status === "validating" ? 0 : batch.total,
        completed: progress?.succeeded ?? 0,
        failed: progress?.errored ?? 0,
      };
  return {
    id: batch.id,
    object: "batch",
    endpoint: batch.endpoint,
    model: batch.model,
    errors: batch.errors.length > 0 ? { object: "list", data: batch.errors } : null,
    input_file_id: batch.inputFileId,
    completion_window: "24h",
    status: batch.status,
    output_file_id: batch.outputFileId,
    error_file_id: batch.errorFileId,
    created_at: seconds(batch.createdAt),
    in_progress_at: seconds(batch.inProgressAt),
    expires_at: seconds(batch.expiresAt),
    finalizing_at: seconds(batch.finalizingAt),
    completed_at: when("completed"),
    failed_at: when("failed"),
    expired_at: when("expired"),
    cancelling_at: seconds(batch.cancellingAt),
    cancelled_at: when("cancelled"),
    request_counts: counts,
    metadata: batch.metadata,
  };
}

function anthropicBatch(batch: StoredBatch, origin: string) {
  const ended = batch.counts !== null;
  return {
    id: batch.id,
    type: "message_batch",
    processing_status: ended
      ? "ended"
      : batch.status === "cancelling"
        ? "canceling"
        : "in_progress",
    // As the API: every request counts as processing until the whole batch has ended.
    request_counts: {
      processing: ended ? 0 : batch.total,
      succeeded: batch.counts?.succeeded ?? 0,
      errored: batch.counts?.errored ?? 0,
      canceled: batch.counts?.cancelled ?? 0,
      expired: batch.counts?.expired ?? 0,
    },
    ended_at: ended ? iso(batch.endedAt) : null,
    created_at: iso(batch.createdAt),
    expires_at: iso(batch.expiresAt),
    archived_at: null,
    cancel_initiated_at: iso(batch.cancellingAt),
    results_url: ended ? `${origin}/v1/messages/batches/${batch.id}/results` : null,
  };
}

function newBatch(
  store: BatchStore,
  tenant: string,
  provider: "openai" | "anthropic",
  total: number,
): StoredBatch {
  const now = Date.now();
  return {
    id: store.newBatchId(provider),
    tenant,
    provider,
    status: "validating",
    createdAt: now,
    expiresAt: now + DAY_MS,
    inProgressAt: null,
    finalizingAt: null,
    endedAt: null,
    cancellingAt: null,
    total,
    endpoint: provider === "anthropic" ? "/v1/messages" : "",
    inputFileId: null,
    outputFileId: null,
    errorFileId: null,
    metadata: null,
    errors: [],
    model: null,
    counts: null,
  };
}

type BatchError = StoredBatch["errors"][number];

/** An OpenAI batch input file, checked as the Batch API checks it, and its requests normalised. */
function readOpenAIInput(
  text: string,
  endpoint: string,
): { lines: string[]; errors: BatchError[]; model: string | null } {
  const errors: BatchError[] = [];
  const lines: string[] = [];
  let model: string | null = null;
  const fail = (error: BatchError) => {
    if (errors.length < 100) errors.push(error);
  };
  if (text.trim() === "")
    return {
      lines,
      errors: [
        { code: "empty_file", message: "The batch input file is empty.", param: null, line: null },
      ],
      model,
    };
  const raw = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  const seen = new Set<string>();
  raw.forEach((source, i) => {
    const checked = checkOpenAIBatchLine(source, i + 1, endpoint, seen);
    if (!checked.ok) {
      fail(checked.error);
      return;
    }
    const { customId: id, body } = checked;
    const lineModel = (body as { model?: unknown }).model;
    if (typeof lineModel === "string") model ??= lineModel;
    lines.push(JSON.stringify({ custom_id: id, body }));
  });
  if (lines.length > OPENAI_LIMITS.maxRequests)
    fail({
      code: "too_many_tasks",
      message: `The batch input file contains ${lines.length} requests; the limit is ${OPENAI_LIMITS.maxRequests}.`,
      param: null,
      line: null,
    });
  return { lines, errors, model };
}

/**
 * One page of an OpenAI list: the items after the one whose id is `after` (none if it is
 * unknown), at most `limit` (`fallback` when absent, never above `max`).
 */
function pageAfter<T extends { id: string }>(
  items: T[],
  after: string | undefined,
  limit: string | undefined,
  fallback: number,
  max: number,
): T[] {
  let rest = items;
  if (after !== undefined) {
    const at = items.findIndex((item) => item.id === after);
    rest = at < 0 ? [] : items.slice(at + 1);
  }
  return rest.slice(0, Math.max(1, Math.min(max, Number(limit) || fallback)));
}

/** Registers the batch and file endpoints on the gateway's app. */
export function batchRoutes(app: Hono, context: BatchApiContext): void {
  const fail = (wire: Wire, error: WireError) => errorResponse(wire, error);
  /** The store and the caller's tenant, or the answer that refuses the request. */
  const open = async (
    request: Request,
    wire: Wire,
  ): Promise<{ store: BatchStore; runner: BatchRunner; tenant: string } | Response> => {
    const tenant = context.tenantOf(request.headers);
    if (tenant === undefined) return context.unauthorized(request, wire);
    let store: BatchStore | undefined;
    try {
      store = await context.store();
    } catch (error) {
      return fail(wire, {
        status: 500,
        message: `salvo gateway: the batch state directory cannot be used: ${(error as Error).message}`,
      });
    }
    const runner = context.runner();
    if (store === undefined || runner === undefined)
      return fail(wire, {
        status: 404,
        code: "unknown_url",
        message: "salvo gateway: the batch APIs need a state directory (salvo serve --state DIR)",
      });
    return { store, runner, tenant: tenant.name };
  };
  const notFound = (wire: Wire, what: string, id: string) =>
    fail(wire, {
      status: 404,
      param: wire === "openai" ? "id" : null,
      message: wire === "openai" ? `No such ${what}: ${id}` : `${what} ${id} not found.`,
    });

  // --- OpenAI Files ---

  app.post("/v1/files", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const declared = Number(c.req.header("content-length") ?? Number.NaN);
    if (declared > OPENAI_LIMITS.maxBytes + 1024 * 1024)
      return fail("openai", {
        status: 413,
        param: "file",
        message: `File too large: the batch API takes files of up to ${OPENAI_LIMITS.maxBytes} bytes.`,
      });
    let form: FormData;
    try {
      form = await c.req.raw.formData();
    } catch {
      return fail("openai", {
        status: 400,
        message: "The request must be multipart/form-data with `file` and `purpose`.",
      });
    }
    const purpose = form.get("purpose");
    const part = form.get("file");
    if (purpose !== "batch")
      return fail("openai", {
        status: 400,
        param: "purpose",
        message: `salvo gateway: only files with purpose 'batch' are kept here, got ${JSON.stringify(purpose)}`,
      });
    if (part === null || typeof part === "string")
      return fail("openai", {
        status: 400,
        param: "file",
        message: "'file' is a required property",
      });
    const filename = part.name || "upload.jsonl";
    if (!filename.endsWith(".jsonl"))
      return fail("openai", {
        status: 400,
        param: "file",
        message: "Invalid file format for Batch API. Must be .jsonl",
      });
    const file = await o.store.addFile(o.tenant, filename, "batch", await part.text());
    return c.json(fileObject(file));
  });

  app.get("/v1/files", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const purpose = c.req.query("purpose");
    const files = o.store
      .files(o.tenant)
      .filter((f) => purpose === undefined || f.purpose === purpose);
    if (c.req.query("order") === "asc") files.reverse();
    const page = pageAfter(files, c.req.query("after"), c.req.query("limit"), 10_000, 10_000);
    return c.json({
      object: "list",
      data: page.map(fileObject),
      first_id: page[0]?.id ?? null,
      last_id: page.at(-1)?.id ?? null,
      has_more: files.length > page.length,
    });
  });

  app.get("/v1/files/:id", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const file = o.store.file(c.req.param("id"), o.tenant);
    return file ? c.json(fileObject(file)) : notFound("openai", "File object", c.req.param("id"));
  });

  app.get("/v1/files/:id/content", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const file = o.store.file(c.req.param("id"), o.tenant);
    if (!file) return notFound("openai", "File object", c.req.param("id"));
    return new Response(new Uint8Array(await o.store.content(file)), {
      headers: { "content-type": "application/octet-stream" },
    });
  });

  app.delete("/v1/files/:id", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const file = o.store.file(c.req.param("id"), o.tenant);
    if (!file) return notFound("openai", "File object", c.req.param("id"));
    await o.store.deleteFile(file);
    return c.json({ id: file.id, object: "file", deleted: true });
  });

  // --- OpenAI Batch ---

  app.post("/v1/batches", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    let body: Record<string, unknown>;
    try {
      body = (await c.req.json()) as Record<string, unknown>;
    } catch {
      return fail("openai", {
        status: 400,
        message: "We could not parse the JSON body of your request.",
      });
    }
    const { input_file_id: fileId, endpoint, completion_window: window, metadata } = body ?? {};
    for (const [name, value] of [
      ["input_file_id", fileId],
      ["endpoint", endpoint],
      ["completion_window", window],
    ] as const)
      if (value === undefined || value === null)
        return fail("openai", {
          status: 400,
          param: name,
          code: "missing_required_parameter",
          message: `Missing required parameter: '${name}'.`,
        });
    if (typeof endpoint !== "string" || !OPENAI_ENDPOINTS.includes(endpoint))
      return fail("openai", {
        status: 400,
        param: "endpoint",
        code: "invalid_value",
        message: `Invalid value for 'endpoint': ${JSON.stringify(endpoint)}. This gateway runs batches for ${OPENAI_ENDPOINTS.map((e) => `'${e}'`).join(", ")}.`,
      });
    if (window !== "24h")
      return fail("openai", {
        status: 400,
        param: "completion_window",
        code: "invalid_value",
        message: `Invalid value for 'completion_window': ${JSON.stringify(window)}. Supported values are: '24h'.`,
      });
    if (metadata !== undefined && metadata !== null && !validMetadata(metadata))
      return fail("openai", {
        status: 400,
        param: "metadata",
        code: "invalid_value",
        message:
          "Invalid 'metadata': at most 16 pairs, keys of at most 64 characters, string values of at most 512.",
      });
    const file = typeof fileId === "string" ? o.store.file(fileId, o.tenant) : undefined;
    if (!file) return notFound("openai", "File object", String(fileId));
    if (file.purpose !== "batch")
      return fail("openai", {
        status: 400,
        param: "input_file_id",
        message: `The input file ${file.id} has purpose '${file.purpose}'; a batch needs a file uploaded with purpose 'batch'.`,
      });
    const content = (await o.store.content(file)).toString("utf8");
    const input = readOpenAIInput(content, endpoint);
    if (file.bytes > OPENAI_LIMITS.maxBytes)
      input.errors.push({
        code: "file_too_large",
        message: `The batch input file is ${file.bytes} bytes; the limit is ${OPENAI_LIMITS.maxBytes}.`,
        param: null,
        line: null,
      });
    const batch = newBatch(
      o.store,
      o.tenant,
      "openai",
      input.errors.length > 0 ? 0 : input.lines.length,
    );
    batch.endpoint = endpoint;
    batch.inputFileId = file.id;
    batch.metadata = (metadata as Record<string, string> | null | undefined) ?? null;
    batch.model = input.model;
    if (input.errors.length > 0) {
      // Refused as the API refuses: a batch that fails when validation ends, with the reasons.
      batch.errors = input.errors;
      batch.status = "failed";
      batch.endedAt = batch.createdAt;
      batch.counts = { succeeded: 0, errored: 0, expired: 0, cancelled: 0 };
      await o.store.addBatch(batch, []);
      return c.json({
        ...openaiBatch(batch, undefined),
        status: "validating",
        failed_at: null,
        errors: null,
      });
    }
    await o.store.addBatch(batch, input.lines);
    const answer = openaiBatch(batch, undefined);
    o.runner.start(batch);
    return c.json(answer);
  });

  app.get("/v1/batches", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const batches = o.store.batches(o.tenant, "openai");
    const page = pageAfter(batches, c.req.query("after"), c.req.query("limit"), 20, 100);
    return c.json({
      object: "list",
      data: page.map((b) => openaiBatch(b, o.runner.progress(b.id))),
      first_id: page[0]?.id ?? null,
      last_id: page.at(-1)?.id ?? null,
      has_more: batches.length > page.length,
    });
  });

  app.get("/v1/batches/:id", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const batch = o.store.batch(c.req.param("id"), o.tenant, "openai");
    if (!batch) return notFound("openai", "batch", c.req.param("id"));
    return c.json(openaiBatch(batch, o.runner.progress(batch.id)));
  });

  app.post("/v1/batches/:id/cancel", async (c) => {
    const o = await open(c.req.raw, "openai");
    if (o instanceof Response) return o;
    const batch = o.store.batch(c.req.param("id"), o.tenant, "openai");
    if (!batch) return notFound("openai", "batch", c.req.param("id"));
    if (batch.status !== "cancelling") {
      const refused = await o.runner.cancel(batch);
      if (refused !== undefined)
        return fail("openai", {
          status: 400,
          code: "invalid_state",
          message: `Cannot cancel a batch with status '${refused}'.`,
        });
    }
    return c.json(openaiBatch(batch, o.runner.progress(batch.id)));
  });

  // --- Anthropic Message Batches ---

  const origin = (request: Request) => new URL(request.url).origin;

  app.post("/v1/messages/batches", async (c) => {
    const o = await open(c.req.raw, "anthropic");
    if (o instanceof Response) return o;
    const text = await c.req.raw.text();
    if (Buffer.byteLength(text) > ANTHROPIC_LIMITS.maxBytes)
      return fail("anthropic", {
        status: 413,
        message: `Request exceeds the maximum allowed number of bytes for a Message Batch (${ANTHROPIC_LIMITS.maxBytes}).`,
      });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return fail("anthropic", { status: 400, message: "The request body is not valid JSON." });
    }
    const requests = (body as { requests?: unknown } | null)?.requests;
    if (!Array.isArray(requests))
      return fail("anthropic", { status: 400, message: "requests: Field required" });
    if (requests.length === 0)
      return fail("anthropic", {
        status: 400,
        message: "requests: List should have at least 1 item after validation, not 0",
      });
    if (requests.length > ANTHROPIC_LIMITS.maxRequests)
      return fail("anthropic", {
        status: 400,
        message: `requests: List should have at most ${ANTHROPIC_LIMITS.maxRequests} items after validation, not ${requests.length}`,
      });
    const seen = new Set<string>();
    const lines: string[] = [];
    for (let i = 0; i < requests.length; i++) {
      const item = requests[i] as { custom_id?: unknown; params?: unknown } | null;
      const id = item?.custom_id;
      if (typeof id !== "string" || !CUSTOM_ID.test(id))
        return fail("anthropic", {
          status: 400,
          message: `requests.${i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`,
        });
      if (seen.has(id))
        return fail("anthropic", {
          status: 400,
          message: `requests.${i}.custom_id: Duplicate custom_id "${id}": each request in a Message Batch needs a unique custom_id.`,
        });
      seen.add(id);
      if (typeof item?.params !== "object" || item.params === null || Array.isArray(item.params))
        return fail("anthropic", { status: 400, message: `requests.${i}.params: Field required` });
      lines.push(JSON.stringify({ custom_id: id, body: item.params }));
    }
    const batch = newBatch(o.store, o.tenant, "anthropic", lines.length);
    const model = (requests[0] as { params: { model?: unknown } }).params.model;
    batch.model = typeof model === "string" ? model : null;
    await o.store.addBatch(batch, lines);
    const answer = anthropicBatch(batch, origin(c.req.raw));
    o.runner.start(batch);
    return c.json(answer);
  });

  app.get("/v1/messages/batches", async (c) => {
    const o = await open(c.req.raw, "anthropic");
    if (o instanceof Response) return o;
    const all = o.store.batches(o.tenant, "anthropic");
    const limit = Math.max(1, Math.min(1000, Number(c.req.query("limit")) || 20));
    const after = c.req.query("after_id");
    const before = c.req.query("before_id");
    let start = 0;
    let end = all.length;
    if (after !== undefined) start = all.findIndex((b) => b.id === after) + 1 || all.length;
    if (before !== undefined)
      end = Math.max(
        0,
        all.findIndex((b) => b.id === before),
      );
    const range = all.slice(start, end);
    const page =
      before !== undefined && after === undefined ? range.slice(-limit) : range.slice(0, limit);
    return c.json({
      data: page.map((b) => anthropicBatch(b, origin(c.req.raw))),
      has_more: range.length > page.length,
      first_id: page[0]?.id ?? null,
      last_id: page.at(-1)?.id ?? null,
    });
  });

  app.get("/v1/messages/batches/:id", async (c) => {
    const o = await open(c.req.raw, "anthropic");
    if (o instanceof Response) return o;
    const batch = o.store.batch(c.req.param("id"), o.tenant, "anthropic");
    if (!batch) return notFound("anthropic", "Message Batch", c.req.param("id"));
    return c.json(anthropicBatch(batch, origin(c.req.raw)));
  });

  app.post("/v1/messages/batches/:id/cancel", async (c) => {
    const o = await open(c.req.raw, "anthropic");
    if (o instanceof Response) return o;
    const batch = o.store.batch(c.req.param("id"), o.tenant, "anthropic");
    if (!batch) return notFound("anthropic", "Message Batch", c.req.param("id"));
    if (batch.status !== "cancelling" && (await o.runner.cancel(batch)) !== undefined)
      return fail("anthropic", {
        status: 400,
        message: `Message Batch ${batch.id} has already ended and cannot be canceled.`,
      });
    return c.json(anthropicBatch(batch, origin(c.req.raw)));
  });

  app.delete("/v1/messages/batches/:id", async (c) => {
    const o = await open(c.req.raw, "anthropic");
    if (o instanceof Response) return o;
    const batch = o.store.batch(c.req.param("id"), o.tenant, "anthropic");
    if (!batch) return notFound("anthropic", "Message Batch", c.req.param("id"));
    if (batch.counts === null)
      return fail("anthropic", {
        status: 400,
        message: `Message Batch ${batch.id} is still processing: cancel it first, then delete it once it has ended.`,
      });
    await o.store.deleteBatch(batch);
    return c.json({ id: batch.id, type: "message_batch_deleted" });
  });

  app.get("/v1/messages/batches/:id/results", async (c) => {
    const o = await open(c.req.raw, "anthropic");
    if (o instanceof Response) return o;
    const batch = o.store.batch(c.req.param("id"), o.tenant, "anthropic");
    if (!batch) return notFound("anthropic", "Message Batch", c.req.param("id"));
    if (batch.counts === null)
      return fail("anthropic", {
        status: 400,
        message: `Message Batch ${batch.id} has not ended yet: its results are available once processing_status is "ended".`,
      });
    const { readLines, readResults } = await import("./batch-runner.ts");
    const ids: string[] = [];
    for await (const line of readLines(o.store.inputPath(batch.id)))
      ids[line.index] = line.customId;
    const out: string[] = [];
    for await (const record of readResults(o.store.resultsPath(batch.id))) {
      const response = record.response;
      const result = response
        ? response.status < 300
          ? { type: "succeeded", message: response.body }
          : { type: "errored", error: response.body }
        : { type: record.not_run === "cancelled" ? "canceled" : "expired" };
      out.push(JSON.stringify({ custom_id: ids[record.i], result }));
    }
    return new Response(out.length === 0 ? "" : `${out.join("\n")}\n`, {
      headers: { "content-type": "application/binary" },
    });
  });
}

function validMetadata(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return (
    entries.length <= 16 &&
    entries.every(([k, v]) => k.length <= 64 && typeof v === "string" && v.length <= 512)
  );
}
